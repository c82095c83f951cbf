"""Bag metrics straight from a score matrix (``score_bag_matrix``) equal the metrics of ``BagTask.decode``'s records.

Real NYT10 test bags, seeded random score matrices with deliberate ties (rounded scores, ``-0.0`` next to
``0.0``), rows in ``run_model``'s shuffled order, repeated entity pairs; equality is exact (``==`` and the
same JSON text), not approximate.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import REL_INFO
from hiere.data.bags import read_bags, read_long_tail, read_relation_map
from hiere.data.relations import RelationMap
from hiere.metrics.bag import score_bag_matrix, score_bags
from hiere.tasks import get_task
from hiere.tasks.bag import TASK

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
NYT_TEST = DATA / "nyt10" / "nyt10sub_test.txt"
REL100 = DATA / "hnre" / "rel100.txt"
CONTAINS = "/location/location/contains"


@pytest.fixture(scope="module")
def relations() -> RelationMap:
    return read_relation_map(DATA / "nyt10" / "nyt10_rel2id.json")


@pytest.fixture(scope="module")
def mixed_bags(relations):
    """400 test bags: NA pairs, then positive ones (some with several relations, some long-tail)."""
    return read_bags(NYT_TEST, relations, require_labels=True)[3100:3500]


def score_matrix(bags, relations, seed: int, decimals: int | None, centred: bool = False) -> torch.Tensor:
    """Random scores, gold relations higher on average; rounding to ``decimals`` makes many ties."""
    generator = np.random.default_rng(seed)
    scores = generator.random((len(bags), len(relations)))
    for row, bag in enumerate(bags):
        scores[row, bag.relation_indices(relations)] += generator.random()
    scores /= scores.max()
    if centred:
        scores -= 0.5  # rounds to -0.0 as well as 0.0
    if decimals is not None:
        scores = np.round(scores, decimals)
    return torch.tensor(scores, dtype=torch.float32)


def both_ways(bags, rows, scores, relations, long_tail=None) -> tuple[dict, dict]:
    """(metrics of decode's records, metrics of the matrix) for score ``rows`` ``(bag index, None)``."""
    records = TASK.decode(bags, rows, scores, relations)
    from_records = score_bags(bags, records, long_tail)
    from_matrix = score_bag_matrix(bags, scores, relations.relations, long_tail, row_bags=[i for i, _ in rows])
    return from_records, from_matrix


def assert_identical(expected: dict, actual: dict) -> None:
    assert actual == expected
    assert json.dumps(actual) == json.dumps(expected)  # same keys in the same order, same float text


@pytest.mark.parametrize("decimals, centred", [(None, False), (2, False), (1, False), (1, True), (0, False)])
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("shuffled", [False, True])
def test_matrix_metrics_equal_record_metrics_exactly(mixed_bags, relations, decimals, centred, seed, shuffled):
    order = list(range(len(mixed_bags)))
    if shuffled:  # run_model's rows come in length order, not bag order
        order = np.random.default_rng(seed + 10).permutation(len(mixed_bags)).tolist()
    rows = [(index, None) for index in order]
    scores = score_matrix(mixed_bags, relations, seed, decimals, centred)
    long_tail = read_long_tail(REL100)
    for tail in (None, long_tail):
        from_records, from_matrix = both_ways(mixed_bags, rows, scores, relations, tail)
        assert_identical(from_records, from_matrix)
    assert from_matrix["n_long_tail_bags"] > 0 and from_matrix["n_correct"] > 0


def test_ties_break_in_row_order_as_the_records_do(mixed_bags, relations):
    """Rounded scores tie across right and wrong facts: the row order changes the metrics, in both paths."""
    scores = score_matrix(mixed_bags, relations, 3, 1)
    forward = [(index, None) for index in range(len(mixed_bags))]
    backward = forward[::-1]
    records_forward, matrix_forward = both_ways(mixed_bags, forward, scores, relations)
    records_backward, matrix_backward = both_ways(mixed_bags, backward, scores.flip(0), relations)
    assert matrix_forward != matrix_backward  # the ties matter
    assert_identical(records_forward, matrix_forward)
    assert_identical(records_backward, matrix_backward)
    as_array = score_bag_matrix(mixed_bags, scores.numpy(), relations.relations)  # an array works as a tensor
    assert_identical(matrix_forward, as_array)


def test_repeated_entity_pairs(relations):
    """OpenNRE training bags split a pair by relation: several bags share an entity pair."""
    bags = read_bags(NYT_TEST, relations, mode="pair_relation", require_labels=True)[3300:3700]
    pairs = [bag.pair for bag in bags]
    assert len(set(pairs)) < len(pairs)
    scores = score_matrix(bags, relations, 4, 1)
    every_bag = [(index, None) for index in range(len(bags))]
    with pytest.raises(ValueError, match="more than once") as from_records:
        score_bags(bags, TASK.decode(bags, every_bag, scores, relations))
    with pytest.raises(ValueError, match="more than once") as from_matrix:
        score_bag_matrix(bags, scores, relations.relations)
    assert str(from_matrix.value) == str(from_records.value)

    first_of_pair = [(pairs.index(pair), None) for pair in dict.fromkeys(pairs)]  # one row per pair, as gold
    rows_scores = scores[[index for index, _ in first_of_pair]]
    for tail in (None, read_long_tail(REL100)):
        from_records, from_matrix = both_ways(bags, first_of_pair, rows_scores, relations, tail)
        assert_identical(from_records, from_matrix)
    assert from_matrix["n_correct"] == from_matrix["n_facts"] > 0  # a pair's one row holds the facts of all its bags


def test_nan_scores_rank_as_the_records_do(mixed_bags, relations):
    scores = score_matrix(mixed_bags, relations, 5, 2)
    scores[3, 7] = scores[50, 2] = float("nan")
    rows = [(index, None) for index in range(len(mixed_bags))]
    from_records, from_matrix = both_ways(mixed_bags, rows, scores, relations, read_long_tail(REL100))
    assert json.dumps(from_matrix) == json.dumps(from_records)


def test_small_case_by_hand(mixed_bags):
    first = next(b for b in mixed_bags if b.relations == [CONTAINS])
    second = next(b for b in mixed_bags if len(b.relations) == 1 and not b.is_na and b.relations != [CONTAINS])
    na = next(b for b in mixed_bags if b.is_na)
    other = second.relations[0]
    names = ["NA", CONTAINS, other]
    scores = np.array([[0.0, 0.9, 0.5], [0.0, 0.6, 0.7], [0.99, 0.8, 0.4]])  # rows: first, second, na
    result = score_bag_matrix([first, second, na], scores, names, long_tail=[other])
    # ranked: first/CONTAINS .9 (right), na/CONTAINS .8, second/other .7 (right), .6, .5, .4; NA never ranked
    # precision 1, 1/2, 2/3, 2/4, 2/5, 2/6; recall .5, .5, 1, 1, 1, 1
    assert result["pr_auc"] == pytest.approx(0.5 * (0.5 + 2 / 3) / 2)
    assert result["micro_f1"] == pytest.approx(0.8) and result["micro_f1_threshold"] == 0.7
    assert result["macro_f1"] == pytest.approx((2 / 3 + 1) / 2)  # CONTAINS: 1 of 2 right; other: 1 of 1
    assert result["p@100"] == pytest.approx(0.02)
    assert (result["n_bags"], result["n_facts"], result["n_predictions"], result["n_correct"]) == (3, 2, 6, 2)
    # the second bag's gold relation is the long-tail one, nothing above it: a hit at every K
    assert (result["n_long_tail_bags"], result["hits@10_micro"], result["hits@10_macro"]) == (1, 1.0, 1.0)
    unscored = score_bag_matrix([first, second, na], scores[:, :2], names[:2], long_tail=[other])
    assert (unscored["n_long_tail_bags"], unscored["hits@20_micro"]) == (1, 0.0)  # no score: a miss
    # a tie at .5: the right fact first (row order first, na) gives F1 1, the wrong one first 2 * .5 / 1.5
    tied = np.array([[0.0, 0.5], [0.0, 0.5]])
    assert score_bag_matrix([first, na], tied, names[:2])["micro_f1"] == 1.0
    assert score_bag_matrix([first, na], tied, names[:2], row_bags=[1, 0])["micro_f1"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="scores of shape"):
        score_bag_matrix([first, na], tied, names)


def test_bag_task_metrics_from_scores_and_threshold_match_the_records(mixed_bags, relations, tmp_path):
    order = np.random.default_rng(6).permutation(len(mixed_bags)).tolist()
    rows = [(index, None) for index in order]
    scores = score_matrix(mixed_bags, relations, 6, 1)
    records = TASK.decode(mixed_bags, rows, scores, relations)
    expected = TASK.metrics(mixed_bags, records, long_tail=REL100)
    assert_identical(expected, TASK.metrics_from_scores(mixed_bags, rows, scores, relations, 0.5, long_tail=REL100))
    plot = tmp_path / "pr.png"
    with_plot = TASK.metrics_from_scores(mixed_bags, rows, scores, relations, 0.5, long_tail=REL100, plot=plot)
    assert_identical(expected, with_plot)
    assert plot.read_bytes()[:4] == b"\x89PNG"
    threshold, f1 = TASK.tune_threshold(mixed_bags, rows, scores, relations)
    tuned = score_bags(mixed_bags, records)
    assert (threshold, f1) == (tuned["micro_f1_threshold"], tuned["micro_f1"])


def test_document_task_metrics_from_scores_decode_as_before(redocred_docs):
    task = get_task("doc")
    relations = RelationMap.from_rel_info(REL_INFO)
    docs, train = redocred_docs[:3], redocred_docs[3:6]
    rows = [(i, (h, t)) for i, doc in enumerate(docs) for h in range(len(doc.entities))
            for t in range(len(doc.entities)) if h != t]
    scores = torch.rand(len(rows), len(relations), generator=torch.Generator().manual_seed(7))
    expected = task.metrics(docs, task.decode(docs, rows, scores, relations, 0.9), train=train)
    assert task.metrics_from_scores(docs, rows, scores, relations, 0.9, train=train) == expected


def test_metrics_do_not_depend_on_the_hash_seed() -> None:
    """Macro-F1 sums per-relation F1 in relation-name order, not in a set's (hash-seeded) order."""
    import os
    import subprocess
    import sys

    script = (
        "import numpy as np, json; from hiere.data.bags import read_bags, read_relation_map; "
        "from hiere.metrics.bag import score_bag_matrix; "
        f"rel = read_relation_map({str(DATA / 'nyt10' / 'nyt10_rel2id.json')!r}); "
        f"bags = read_bags({str(NYT_TEST)!r}, rel, offset=3000, limit=1500); names = list(rel.relations); "
        "scores = np.random.default_rng(3).random((len(bags), len(names))); "
        "[scores.__setitem__((i, names.index(r)), scores[i, names.index(r)] + 0.6) "
        "for i, bag in enumerate(bags) for r in bag.relations]; "
        "print(repr(score_bag_matrix(bags, scores, names)['macro_f1']))"
    )
    outputs = {
        subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                       env={**os.environ, "PYTHONHASHSEED": seed}).stdout
        for seed in ("0", "1", "2")
    }
    assert len(outputs) == 1 and float(outputs.pop()) > 0
