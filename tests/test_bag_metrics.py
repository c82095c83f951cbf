"""Bag-level metrics (OpenNRE PR protocol, HNRE Hits@K) by hand on real NYT10 bags; the bag task."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from hiere.data.bags import read_bags, read_long_tail, read_relation_map
from hiere.errors import HiereInputError
from hiere.metrics.bag import (
    gold_facts,
    hits_at_k,
    plot_pr_curves,
    pr_auc,
    pr_curve,
    precision_at,
    precision_recall,
    rank_records,
    score_bags,
)
from hiere.tasks import get_task
from hiere.tasks.bag import TASK, read_predictions, score_files

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
NYT_TEST = DATA / "nyt10" / "nyt10sub_test.txt"
CONTAINS = "/location/location/contains"
COUNTY_SEAT = "/location/us_county/county_seat"
FILM_LOCATIONS = "/film/film/featured_film_locations"
ETHNICITY = "/people/person/ethnicity"


@pytest.fixture(scope="module")
def test_bags():
    return read_bags(NYT_TEST, require_labels=True)


@pytest.fixture(scope="module")
def relations():
    return read_relation_map(DATA / "nyt10" / "nyt10_rel2id.json")


def record(bag, relation, score):
    return {"h": bag.head_id, "t": bag.tail_id, "relation": relation, "score": score}


@pytest.fixture(scope="module")
def tiny(test_bags):
    """Two positive bags with different relations and one NA bag of the real test file."""
    first = next(b for b in test_bags if b.relations == [CONTAINS])
    second = next(b for b in test_bags if len(b.relations) == 1 and not b.is_na and b.relations != [CONTAINS])
    na = test_bags[0]
    other = second.relations[0]
    records = [
        record(first, CONTAINS, 0.9),  # rank 1, correct
        record(na, CONTAINS, 0.8),  # rank 2
        record(second, other, 0.7),  # rank 3, correct
        record(second, CONTAINS, 0.6),
        record(first, other, 0.5),
        record(na, other, 0.4),
        record(na, "NA", 0.99),  # NA scores are never ranked
    ]
    return [first, second, na], records


def test_tiny_case_by_hand(tiny):
    bags, records = tiny
    result = score_bags(bags, records)
    # precision 1, 1/2, 2/3, 2/4, 2/5, 2/6; recall .5, .5, 1, 1, 1, 1
    # area: only the step .5 -> 1 counts: .5 * (1/2 + 2/3) / 2
    assert result["pr_auc"] == pytest.approx(0.5 * (0.5 + 2 / 3) / 2)
    assert result["micro_f1"] == pytest.approx(0.8)  # rank 3: 2 * (2/3) * 1 / (2/3 + 1)
    assert result["micro_f1_threshold"] == 0.7
    # at score >= .7: CONTAINS predicted twice, once right (F1 2/3); the other relation once, right (F1 1)
    assert result["macro_f1"] == pytest.approx((2 / 3 + 1) / 2)
    assert result["p@100"] == pytest.approx(0.02)  # 2 correct, the 94 missing records count as wrong
    assert result["p@300"] == pytest.approx(2 / 300)
    assert result["p@m"] == pytest.approx((0.02 + 0.01 + 2 / 300) / 3)
    assert (result["n_bags"], result["n_facts"], result["n_predictions"], result["n_correct"]) == (3, 2, 6, 2)


def test_curve_functions_by_hand():
    precision, recall = precision_recall([True, False, True, True], 4)
    np.testing.assert_allclose(precision, [1, 0.5, 2 / 3, 0.75])
    np.testing.assert_allclose(recall, [0.25, 0.25, 0.5, 0.75])
    assert pr_auc(precision, recall) == pytest.approx(0.25 * (0.5 + 2 / 3) / 2 + 0.25 * (2 / 3 + 0.75) / 2)
    assert precision_at([True, False, True, True], 2) == 0.5
    assert pr_auc(np.array([1.0]), np.array([0.5])) == 0.0


def test_ties_keep_input_order(tiny):
    bags, _ = tiny
    first, second, na = bags
    correct_first = [record(first, CONTAINS, 0.5), record(na, CONTAINS, 0.5)]
    wrong_first = correct_first[::-1]
    assert [key for key, _ in rank_records(correct_first)][0][0] == first.head_id
    assert score_bags(bags[:1], correct_first)["micro_f1"] == pytest.approx(1.0)
    assert score_bags(bags[:1], wrong_first)["micro_f1"] == pytest.approx(2 * 0.5 / 1.5)
    assert score_bags(bags[:1], wrong_first) == score_bags(bags[:1], list(wrong_first))  # deterministic


def test_duplicate_facts_are_rejected(tiny):
    bags, records = tiny
    with pytest.raises(ValueError, match="more than once"):
        rank_records(records + records[:1])


def test_gold_fact_without_any_score_still_counts_in_recall(tiny):
    bags, records = tiny
    only_first = [r for r in records if r["h"] == bags[0].head_id]
    result = score_bags(bags, only_first)
    assert result["n_facts"] == 2
    assert result["micro_f1"] == pytest.approx(2 * 1 * 0.5 / 1.5)


def oracle_records(bags, relations, reverse=False):
    """Gold relations score 1 (0 with ``reverse``), every other relation a distinct lower (higher) score."""
    records, rank = [], 0
    for bag in bags:
        for relation in relations.relations[1:]:
            rank += 1
            gold = relation in bag.relations
            if reverse:
                score = 0.0 if gold else 0.5 + rank * 1e-7
            else:
                score = 1.0 if gold else 0.5 - rank * 1e-7
            records.append(record(bag, relation, score))
    return records


def test_real_slice_oracle_and_worst_ranking(test_bags, relations):
    bags = test_bags[3600:3800]  # mixed NA and positive entity pairs
    n_facts = len(gold_facts(bags))
    assert n_facts == sum(len(b.relations) for b in bags if not b.is_na) == 233
    best = score_bags(bags, oracle_records(bags, relations))
    assert best["pr_auc"] == pytest.approx(1 - 1 / n_facts)  # precision 1 from recall 1/n to 1
    assert best["micro_f1"] == best["macro_f1"] == best["p@100"] == 1.0
    assert best["p@200"] == 1.0
    assert best["p@300"] == pytest.approx(233 / 300)
    n_records = len(bags) * (len(relations) - 1)
    worst = score_bags(bags, oracle_records(bags, relations, reverse=True))
    assert worst["p@100"] == 0.0
    assert worst["micro_f1"] == pytest.approx(2 * n_facts / (n_records + n_facts))
    # recall stays 0 until rank n_records - n_facts (k' = 0), then the last ranks hold the k' = 1..n_facts
    # correct records: precision k'/(n_records - n_facts + k'), recall k'/n_facts
    k = np.arange(0, n_facts + 1)
    precision = k / (n_records - n_facts + k)
    expected = np.sum(np.diff(k / n_facts) * (precision[1:] + precision[:-1]) / 2)
    assert worst["pr_auc"] == pytest.approx(expected)


def test_hits_at_k_by_hand(test_bags, relations):
    film_a, film_b = [b for b in test_bags if b.relations == [FILM_LOCATIONS]][:2]
    ethnic = next(b for b in test_bags if b.relations == [ETHNICITY])
    seat = next(b for b in test_bags if b.relations == [CONTAINS, COUNTY_SEAT])
    common = next(b for b in test_bags if b.relations == [CONTAINS])
    bags = [film_a, film_b, ethnic, seat, common]
    names = relations.relations[1:]

    def ranked(bag, gold, rank):
        """Scores with exactly ``rank`` relations above ``gold``."""
        others = [r for r in names if r != gold]
        scores = {r: 0.9 - 0.01 * i for i, r in enumerate(others[:rank])}
        scores.update({r: 0.1 - 0.001 * i for i, r in enumerate(others[rank:])})
        scores[gold] = 0.5
        return [record(bag, r, scores[r]) for r in names]

    records = ranked(film_a, FILM_LOCATIONS, 11) + ranked(film_b, FILM_LOCATIONS, 0)
    records += ranked(ethnic, ETHNICITY, 25) + ranked(seat, COUNTY_SEAT, 14) + ranked(common, CONTAINS, 0)
    long_tail = read_long_tail(DATA / "hnre" / "rel200.txt")
    assert CONTAINS not in long_tail and COUNTY_SEAT in long_tail
    result = hits_at_k(bags, records, long_tail)
    # county_seat (index 13) comes before contains (48) in the map: the seat bag counts, rank 14
    assert (result["n_long_tail_bags"], result["n_long_tail_relations"]) == (4, 3)
    assert result["hits@10_micro"] == pytest.approx(1 / 4)
    assert result["hits@15_micro"] == pytest.approx(3 / 4)
    assert result["hits@20_micro"] == pytest.approx(3 / 4)
    # per relation (film, ethnicity, county seat): @10 (1/2, 0, 0), @15 (1, 0, 1)
    assert result["hits@10_macro"] == pytest.approx((0.5 + 0 + 0) / 3)
    assert result["hits@15_macro"] == pytest.approx((1 + 0 + 1) / 3)
    # in name order contains comes first, so the seat bag drops out
    by_name = hits_at_k(bags, records, long_tail, relation_order=sorted(names))
    assert by_name["n_long_tail_bags"] == 3
    assert by_name["hits@15_micro"] == pytest.approx(2 / 3)
    # a long-tail gold relation the model cannot score is a miss
    missing = [r for r in records if not (r["h"] == film_b.head_id and r["relation"] == FILM_LOCATIONS)]
    assert hits_at_k(bags, missing, long_tail)["hits@10_micro"] == 0.0


def test_task_decode_tune_and_metrics(test_bags, relations, tmp_path):
    task = get_task("bag")
    assert task is TASK and task.primary_metric == "pr_auc" and task.unit == "bags"
    bags = test_bags[3600:3640]
    generator = torch.Generator().manual_seed(0)
    scores = torch.rand(len(bags), len(relations), generator=generator)
    rows = [(i, bag.pair) for i, bag in enumerate(bags)]
    explanations = [{"attention": [1.0] * bag.size, "by_relation": {CONTAINS: {"level": 2}}} for bag in bags]
    records = task.decode(bags, rows, scores, relations, 0.5, explanations)
    assert len(records) == len(bags) * (len(relations) - 1)
    assert records[0] == {
        "h": bags[0].head_id,
        "t": bags[0].tail_id,
        "relation": relations.relations[1],
        "score": pytest.approx(float(scores[0, 1])),
        "attention": [1.0] * bags[0].size,
    }
    assert all(("level" in r) == (r["relation"] == CONTAINS) for r in records)
    threshold, f1 = task.tune_threshold(bags, rows, scores, relations)
    plot = tmp_path / "dev_pr.png"
    result = task.metrics(bags, records, long_tail=DATA / "hnre" / "rel200.txt", plot=plot)
    assert (threshold, f1) == (result["micro_f1_threshold"], result["micro_f1"])
    assert plot.read_bytes()[:4] == b"\x89PNG"
    assert {"pr_auc", "p@100", "p@m", "macro_f1", "hits@10_micro", "hits@20_macro", "n_facts"} <= set(result)
    assert task.relation_ids(bags) == {r for b in bags for r in b.relations} - {"NA"}


def write_slice(path: Path, count: int, start: int) -> Path:
    with NYT_TEST.open(encoding="utf-8") as handle:
        lines = list(handle)[start : start + count]
    path.write_text("".join(lines), encoding="utf-8")
    return path


def test_score_files_with_plot(tmp_path, relations):
    gold_path = write_slice(tmp_path / "gold.txt", 300, 6500)
    bags = read_bags(gold_path)
    good = oracle_records(bags, relations)
    bad = oracle_records(bags, relations, reverse=True)
    (tmp_path / "good.json").write_text(json.dumps(good))
    (tmp_path / "bad.jsonl").write_text("".join(json.dumps(r) + "\n" for r in bad))
    single = score_files(gold_path, tmp_path / "good.json")
    assert single == score_bags(bags, good)
    plot = tmp_path / "plots" / "pr.png"
    both = score_files(
        gold_path, [tmp_path / "good.json", tmp_path / "bad.jsonl"], DATA / "hnre" / "rel100.txt", plot=plot
    )
    assert both[str(tmp_path / "good.json")]["micro_f1"] == 1.0
    assert both[str(tmp_path / "bad.jsonl")]["p@100"] == 0.0
    assert "hits@10_micro" in both[str(tmp_path / "good.json")]
    names = read_long_tail(DATA / "hnre" / "rel100.txt")  # the CLI passes the names
    assert score_files(gold_path, [tmp_path / "good.json", tmp_path / "bad.jsonl"], names) == both
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in plot.parent.iterdir()] == ["pr.png"]  # atomic write leaves no temp file


def test_plot_pr_curves_of_real_curves(tmp_path, test_bags, relations):
    bags = test_bags[3600:3700]
    curve = pr_curve(bags, oracle_records(bags, relations))
    path = tmp_path / "curve.png"
    plot_pr_curves({"oracle": curve}, path)
    assert path.stat().st_size > 1000


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda r: r.pop("score"), "record 2, field score: must be a finite number, got None"),
        (lambda r: r.update(score="high"), "record 2, field score: must be a finite number"),
        (lambda r: r.pop("h"), "record 2, field h: missing or not an entity id"),
        (lambda r: r.update(relation=None), "record 2, field relation: missing or not a string"),
    ],
)
def test_bad_prediction_files(tmp_path, relations, edit, message):
    bags = read_bags(write_slice(tmp_path / "gold.txt", 5, 0))
    records = oracle_records(bags, relations)[:3]
    edit(records[1])
    path = tmp_path / "pred.json"
    path.write_text(json.dumps(records))
    with pytest.raises(HiereInputError) as caught:
        read_predictions(path)
    assert str(caught.value).startswith(f"{path}: {message}")


def test_duplicate_and_missing_prediction_files(tmp_path, relations):
    gold_path = write_slice(tmp_path / "gold.txt", 5, 0)
    records = oracle_records(read_bags(gold_path), relations)[:3]
    path = tmp_path / "pred.json"
    path.write_text(json.dumps(records + records[:1]))
    with pytest.raises(HiereInputError, match="record 4: .* is scored twice"):
        score_files(gold_path, path)
    with pytest.raises(HiereInputError, match="file does not exist"):
        score_files(gold_path, tmp_path / "missing.json")
    with pytest.raises(HiereInputError, match="long-tail relation file does not exist"):
        score_files(gold_path, tmp_path / "pred.json", long_tail=tmp_path / "rel.txt")
