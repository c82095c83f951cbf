"""benchmarks/hin_cost.py: the multiply-accumulate counts, checked by hand on a tiny document."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from hin_cost import bilstm_re, document_counts, hin, lstm_macs  # noqa: E402

DOCUMENT = {"sents": [["a", "b", "c"], ["d", "e"]], "vertexSet": [[{}], [{}], [{}]]}
MODEL = {"hidden": 2, "type_dim": 1, "coref_dim": 1, "distance_dim": 1, "subspace_dim": 2, "num_subspaces": 1}


def test_counts_of_a_tiny_document():
    counts = document_counts(DOCUMENT)
    assert counts == {"tokens": 5, "entities": 3, "pairs": 6, "sentences": 2}
    assert lstm_macs(5, 3, 2) == 5 * 2 * 4 * 2 * (3 + 2)  # steps x directions x gates x hidden x (in + hidden)


def test_hin_lstm_rows_are_pairs_times_sentences():
    counts = document_counts(DOCUMENT)
    parts = hin(counts, MODEL, relations=4, word_dim=2)
    assert parts["BiLSTM_D over each pair's sentences (eq. 11)"] == lstm_macs(6 * 2, 4, 2)  # d = 2 * hidden
    assert parts["BiLSTM_E over the document (eq. 1)"] == lstm_macs(5, 2 + 1 + 1, 2)
    assert parts["W_r (eq. 15)"] == 6 * 2 * 4 * 4
    baseline = bilstm_re(counts, MODEL, relations=4, word_dim=2)
    assert baseline["LSTM over the document"] == parts["BiLSTM_E over the document (eq. 1)"]
    assert baseline["bilinear (per entity and pair)"] == 3 * 4 * 4 * 4 + 9 * 4 * 4 + 2 * 3 * 4 * 4 * 1
