"""Multiply-accumulates of one forward pass per training document: HIN against BiLSTM-RE (issue 16).

Counted from the data and the configs, not timed: for each document of a config's training split, the
matrix products each model's equations ask for (LSTM gates for every step of every row and both directions,
the bilinear and linear layers over entities, pairs and (pair, sentence) rows), as hiere computes them
(BiLSTM-RE's bilinear once per entity and entity pair: ``hiere.models.layers.EntityPairBilinear``; HIN's
G_s split per sentence and per pair: ``HIN.sentence_inference``). Element-wise work, attention softmaxes and
the word lookups are left out; the backward pass costs about twice the forward for both.

    python benchmarks/hin_cost.py                       # configs/bilstm_redocred.yaml vs configs/hin_glove.yaml
    python benchmarks/hin_cost.py --json hin_cost.json

HIN's BiLSTM_D (eq. 11) runs over every entity pair's sequence of sentence-level vectors I_s1..I_sL, so its
rows are pairs x sentences, where BiLSTM-RE's one LSTM has a row per token.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from harness import machine  # noqa: E402


def lstm_macs(steps: int, input_size: int, hidden: int) -> int:
    """A bidirectional LSTM over ``steps`` (row, position) steps: 4 gates of (input + hidden) x hidden, twice."""
    return steps * 2 * 4 * hidden * (input_size + hidden)


def document_counts(document: dict) -> dict[str, int]:
    entities = len(document["vertexSet"])
    return {"tokens": sum(len(sentence) for sentence in document["sents"]), "entities": entities,
            "pairs": entities * (entities - 1), "sentences": len(document["sents"])}


def bilstm_re(counts: dict[str, int], model: dict, relations: int, word_dim: int) -> dict[str, int]:
    hidden = model["hidden"]
    d, m = 2 * hidden, model["distance_dim"]
    inputs = word_dim + model["type_dim"] + model["coref_dim"]
    return {
        "LSTM over the document": lstm_macs(counts["tokens"], inputs, hidden),
        # e_h W_ee (per entity), then a dot per (entity, entity); the distance blocks are per bucket: negligible
        "bilinear (per entity and pair)": counts["entities"] * d * relations * d
        + counts["entities"] ** 2 * relations * d + 2 * counts["entities"] * relations * d * m,
    }


def hin(counts: dict[str, int], model: dict, relations: int, word_dim: int) -> dict[str, int]:
    hidden = model["hidden"]
    d = 2 * hidden
    inputs = word_dim + model["type_dim"] + model["coref_dim"]
    k, spaces = model.get("subspace_dim", 64), model.get("num_subspaces", 2)
    pairs, rows = counts["pairs"], counts["pairs"] * counts["sentences"]
    per_space = 2 * k + k + k  # [bilinear; translation; head; tail]
    return {
        "BiLSTM_E over the document (eq. 1)": lstm_macs(counts["tokens"], inputs, hidden),
        # E^k of every entity once (gathered per pair since 2c62926), R^k and G_e per pair
        "subspaces, R^k, G_e (eqs. 3-5)": counts["entities"] * spaces * (d * d + d * k)
        + pairs * spaces * k * k * k + pairs * (spaces * per_space + model["distance_dim"]) * d,
        "BiLSTM_S over every sentence (eq. 6)": lstm_macs(counts["tokens"], inputs, hidden),
        "word attention (eqs. 7-9)": counts["tokens"] * d * d,
        "G_s per (pair, sentence) (eq. 10)": counts["sentences"] * d * d + pairs * d * d + rows * d * d,
        "BiLSTM_D over each pair's sentences (eq. 11)": lstm_macs(rows, d, hidden),
        "sentence attention (eqs. 12-14)": rows * d * d,
        "W_r (eq. 15)": pairs * 2 * d * relations,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", default="configs/bilstm_redocred.yaml")
    parser.add_argument("--hin", default="configs/hin_glove.yaml")
    parser.add_argument("--json", type=Path, help="also write the counts here")
    args = parser.parse_args()

    from hiere.config import load_config
    from hiere.encoders.glove import glove_dim
    from hiere.io import write_json_atomic

    configs = {"BiLSTM-RE": load_config(ROOT / args.baseline), "HIN": load_config(ROOT / args.hin)}
    data = configs["HIN"]["data"]
    start, end = data.get("train_slice") or [0, None]
    documents = json.loads(Path(data["train"]).read_text(encoding="utf-8"))[start:end]
    relations = len(json.loads(Path(data["relations"]).read_text(encoding="utf-8"))) + 1  # + NA
    word_dim = glove_dim(configs["HIN"]["model"].get("glove", "default"))
    totals: dict[str, dict[str, float]] = {"BiLSTM-RE": {}, "HIN": {}}
    for document in documents:
        counts = document_counts(document)
        for name, count in (("BiLSTM-RE", bilstm_re), ("HIN", hin)):
            for part, macs in count(counts, configs[name]["model"], relations, word_dim).items():
                totals[name][part] = totals[name].get(part, 0.0) + macs / len(documents)
    averages = {key: sum(document_counts(doc)[key] for doc in documents) / len(documents)
                for key in ("tokens", "entities", "pairs", "sentences")}
    print(f"{len(documents)} training documents of {data['train']}: " +
          ", ".join(f"{value:.1f} {key}" for key, value in averages.items()) + " per document (means)\n")
    print("| model | part | forward MMACs per document | share |\n|---|---|---|---|")
    for name, parts in totals.items():
        whole = sum(parts.values())
        for part, macs in parts.items():
            print(f"| {name} | {part} | {macs / 1e6:,.0f} | {macs / whole:.0%} |")
        print(f"| {name} | **total** | **{whole / 1e6:,.0f}** | |")
    ratio = sum(totals["HIN"].values()) / sum(totals["BiLSTM-RE"].values())
    print(f"\nHIN / BiLSTM-RE forward work per document: {ratio:.1f}x")
    if args.json:
        write_json_atomic(args.json, {"machine": machine(), "documents": len(documents), "means": averages,
                                      "forward_macs_per_document": totals, "ratio": ratio}, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
