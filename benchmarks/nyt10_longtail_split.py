"""A split of the NYT10 subset in which every long-tail test relation has some training instances.

    python benchmarks/nyt10_longtail_split.py --out runs/nyt10_longtail [--data ../shared/data/nyt10]

In ``nyt10sub_train90.txt`` 13 of the test relations have no training sentence at all, so HNRE's long-tail
Hits@K (its rel100 / rel200 lists) is empty on the subset. This script moves, for each relation of the
test file that has fewer than ``--min-train`` (default 1) training sentences, half of its test entity pairs
(every other pair in sorted pair order, rounded up, at least one pair left in test) with *all* their sentences
into training. A moved pair leaves the test file entirely (the subset's own train90 and test files already
share 82 of their 1,561 / 5,424 entity pairs; this script does not change that); the dev file
(``nyt10sub_val10.txt``) is copied unchanged, and no line is changed or duplicated. Relations with a single
test pair cannot be in both and stay test-only (listed in the report).

Writes ``OUT/train.txt``, ``OUT/val.txt``, ``OUT/test.txt`` (OpenNRE jsonl) and ``OUT/split.json`` (what moved,
per relation: training sentences before / after, test pairs before / after). Deterministic: no randomness.
Use it with any bag config, e.g.
``hiere train configs/hnre_pcnn_nyt10.yaml -o OUT --set data.train=OUT/train.txt --set data.dev=OUT/val.txt
--set data.test=OUT/test.txt``.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
from collections import Counter, defaultdict
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "nyt10"
NA = "NA"


def pair_of(record: dict) -> tuple[str, str]:
    return record["h"]["id"], record["t"]["id"]


def read_lines(path: Path) -> list[tuple[str, dict]]:
    with path.open(encoding="utf-8") as handle:
        return [(line, json.loads(line)) for line in handle if line.strip()]


def build(data: Path, out: Path, min_train: int = 1) -> dict:
    train = read_lines(data / "nyt10sub_train90.txt")
    test = read_lines(data / "nyt10sub_test.txt")
    train_counts = Counter(record["relation"] for _, record in train)
    test_pairs: dict[str, set[tuple[str, str]]] = defaultdict(set)  # relation -> its test entity pairs
    for _, record in test:
        if record["relation"] != NA:
            test_pairs[record["relation"]].add(pair_of(record))
    rare = sorted(r for r in test_pairs if train_counts[r] < min_train)
    moved: set[tuple[str, str]] = set()
    for relation in rare:
        pairs = sorted(test_pairs[relation] - moved)
        if len(test_pairs[relation]) < 2:
            continue
        wanted = math.ceil(len(test_pairs[relation]) / 2) - len(test_pairs[relation] & moved)
        moved.update(pairs[::2][: max(0, min(wanted, len(pairs) - 1))])
    new_train = [line for line, _ in train] + [line for line, record in test if pair_of(record) in moved]
    new_test = [line for line, record in test if pair_of(record) not in moved]
    out.mkdir(parents=True, exist_ok=True)
    (out / "train.txt").write_text("".join(line if line.endswith("\n") else line + "\n" for line in new_train))
    (out / "test.txt").write_text("".join(line if line.endswith("\n") else line + "\n" for line in new_test))
    shutil.copyfile(data / "nyt10sub_val10.txt", out / "val.txt")
    after_train = Counter(json.loads(line)["relation"] for line in new_train)
    after_pairs: dict[str, set] = defaultdict(set)
    for line in new_test:
        record = json.loads(line)
        if record["relation"] != NA:
            after_pairs[record["relation"]].add(pair_of(record))
    report = {
        "source": str(data), "min_train": min_train, "moved_pairs": len(moved),
        "moved": sorted(f"{h}\t{t}" for h, t in moved),
        "moved_sentences": len(new_train) - len(train),
        "relations": {r: {"train_sentences": [train_counts[r], after_train[r]],
                          "test_pairs": [len(test_pairs[r]), len(after_pairs[r])]} for r in rare},
        "test_only": [r for r in rare if after_train[r] == 0],
    }
    (out / "split.json").write_text(json.dumps(report, indent=1) + "\n")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=DATA, help="folder with the nyt10sub_*.txt files")
    parser.add_argument("--min-train", type=int, default=1,
                        help="move test pairs of relations with fewer training sentences than this (default 1)")
    args = parser.parse_args(argv)
    report = build(args.data, args.out, args.min_train)
    print(json.dumps({k: v for k, v in report.items() if k not in ("relations", "moved")}, indent=1))
    for relation, entry in report["relations"].items():
        print(f"{relation}: train sentences {entry['train_sentences'][0]} -> {entry['train_sentences'][1]}, "
              f"test pairs {entry['test_pairs'][0]} -> {entry['test_pairs'][1]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
