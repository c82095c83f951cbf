"""benchmarks/nyt10_longtail_split.py: pairs move whole, nothing is lost or duplicated, rare relations get training."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NYT = REPO.parent / "shared" / "data" / "nyt10"
sys.path.insert(0, str(REPO / "benchmarks"))

from nyt10_longtail_split import build, pair_of  # noqa: E402


def test_split_moves_whole_pairs_and_keeps_every_line(tmp_path):
    report = build(NYT, tmp_path)
    old = Counter((NYT / "nyt10sub_train90.txt").read_text().splitlines()
                  + (NYT / "nyt10sub_test.txt").read_text().splitlines())
    train, test = ((tmp_path / name).read_text().splitlines() for name in ("train.txt", "test.txt"))
    assert Counter(train + test) == old  # every line once, none changed
    moved = {tuple(pair.split("\t")) for pair in report["moved"]}
    assert len(moved) == report["moved_pairs"] > 0
    assert moved <= {pair_of(json.loads(line)) for line in train}
    assert not moved & {pair_of(json.loads(line)) for line in test}  # a moved pair left test entirely
    assert (tmp_path / "val.txt").read_bytes() == (NYT / "nyt10sub_val10.txt").read_bytes()
    for relation, entry in report["relations"].items():
        before, after = entry["test_pairs"]
        assert after >= 1  # every relation keeps a test pair
        assert (entry["train_sentences"][1] > 0) == (before >= 2), relation
    assert build(NYT, tmp_path / "again") == {**report, "source": report["source"]}  # deterministic
    assert (tmp_path / "again" / "train.txt").read_bytes() == (tmp_path / "train.txt").read_bytes()


def test_bag_benchmark_finds_the_moved_relations_of_a_split(tmp_path):
    from bag_benchmark import moved_relations

    report = build(NYT, tmp_path)
    moved = moved_relations({"data": {"train": str(tmp_path / "train.txt")}})
    assert moved == sorted(r for r, e in report["relations"].items() if e["train_sentences"][1] > 0)
    assert "/location/us_state/capital" in moved and "/business/company/advisors" not in moved  # 9 pairs / 1 pair
    assert moved_relations({"data": {"train": "../shared/data/nyt10/nyt10sub_train90.txt"}}) == []  # not a split
