"""Evi F1 of each trained document model's explanations on the Re-DocRED dev split, next to two baselines.

    python benchmarks/evidence_table.py runs/atlop runs/kmgre runs/hin runs/bilstm \\
        [--dev ../shared/data/redocred/dev_revised.json] [--slice 450 500] [--tune-docs 25] [--json out.json]

The documents are ``--slice`` of ``--dev``: by default 450-499 of Re-DocRED dev_revised.json, the dev split
of hiere's Re-DocRED configs (they train on 0-449). They are cut in two: the first ``--tune-docs``
choose each model's evidence rule (top-k in 1/2/3/all crossed with a score cut-off, best Evi F1 there),
the others report every figure, so no rule is chosen on the documents it is scored on
(``--tune-docs 0``: tune and report on all of them, which the output marks as optimistic). No test
data is read. Per model, on
the model's own predicted facts: Evi P / R / F1 of its explanations with top-1/2/3 sentences and with
the tuned rule, and of the two baselines put on the same facts (``mentions``: all sentences mentioning
head or tail; ``closest``: the sentence pair of the closest head and tail mentions). A last row puts the
baselines on the gold facts (relation extraction perfect), the ceiling of each baseline.
With no model directory only that last row is printed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402
from harness import ROOT, machine  # noqa: E402

from hiere.data.docred import Document, read_docred  # noqa: E402
from hiere.evidence import EvidenceRule, apply_rule, attach_baseline_evidence  # noqa: E402
from hiere.metrics.doc import score_documents  # noqa: E402

DEFAULT_DEV = ROOT.parent / "shared" / "data" / "redocred" / "dev_revised.json"
TOP_KS = (1, 2, 3, None)


def with_rule(records: list[dict[str, Any]], rule: EvidenceRule) -> list[dict[str, Any]]:
    return [apply_rule(dict(record), rule) for record in records]


def sentence_table(documents: list[Document], records: list[dict[str, Any]]) -> tuple[np.ndarray, ...]:
    """One row per (kept prediction of a gold title, sentence): score, rank in its record, whether it is
    gold evidence of a correct fact; and the gold evidence total (as :func:`score_documents` counts)."""
    gold = {(d.title, f.h, f.t, f.r): set(f.evidence) for d in documents for f in d.facts}
    titles = {d.title for d in documents}
    seen: set[tuple] = set()
    scores, ranks, hits = [], [], []
    for record in records:
        key = (record["title"], int(record["h_idx"]), int(record["t_idx"]), record["r"])
        if key in seen or key[0] not in titles:
            continue
        seen.add(key)
        values = record.get("sentence_scores", [])
        order = sorted(range(len(values)), key=lambda sent_id: (-values[sent_id], sent_id))
        evidence = gold.get(key, set())
        for rank, sent_id in enumerate(order):
            if values[sent_id] <= 0:  # never evidence (EvidenceRule)
                break
            scores.append(values[sent_id])
            ranks.append(rank)
            hits.append(sent_id in evidence)
    n_gold = sum(len(f.evidence) for d in documents for f in d.facts)
    return np.array(scores, dtype=float), np.array(ranks), np.array(hits, dtype=bool), n_gold


def tune_rule(documents: list[Document], records: list[dict[str, Any]], n_cut_offs: int = 40
              ) -> tuple[EvidenceRule, float]:
    """The (top_k, min_score) with the best Evi F1 on ``documents``: top_k in 1/2/3/all crossed with no
    cut-off and ``n_cut_offs`` quantiles of the positive sentence scores (counted as the scorer counts)."""
    scores, ranks, hits, n_gold = sentence_table(documents, records)
    positive = np.sort(scores[scores > 0])
    cut_offs: list[float | None] = [None]
    if len(positive):
        cut_offs += sorted({float(positive[(len(positive) * q) // n_cut_offs]) for q in range(n_cut_offs)})
    best_rule, best_f1 = EvidenceRule(), -1.0
    for top_k in TOP_KS:
        within = ranks < top_k if top_k is not None else np.ones_like(hits)
        for cut_off in cut_offs:
            selected = within & (scores >= cut_off) if cut_off is not None else within
            n_pred, n_correct = int(selected.sum()), int((selected & hits).sum())
            precision = n_correct / n_pred if n_pred else 0.0
            recall = n_correct / n_gold if n_gold else 0.0
            f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
            if f1 > best_f1:
                best_rule, best_f1 = EvidenceRule(top_k, cut_off), f1
    return best_rule, best_f1


def evi(documents: list[Document], records: list[dict[str, Any]]) -> dict[str, float]:
    result = score_documents(documents, records)
    return {key: round(result.get(key, 0.0), 4) for key in ("f1", "evi_precision", "evi_recall", "evi_f1")}


def model_rows(model_dir: str, tune: list[Document], report: list[Document], device: str) -> dict[str, Any]:
    from hiere import load

    predictor = load(model_dir, device)

    def raw(documents: list[Document]) -> list[dict[str, Any]]:
        rows, scores, explanations = predictor.scores(documents)
        return predictor.task.decode(documents, rows, scores, predictor.relations, predictor.threshold,
                                     explanations, evidence_rule=None)  # keep the sentence scores

    report_records = raw(report)
    result: dict[str, Any] = {"model": predictor.model.name, "model_dir": model_dir}
    if not any("sentence_scores" in record for record in report_records):
        result["note"] = "the model gave no sentence scores (an ablation without sentence attention?)"
    for top_k in (1, 2, 3):
        result[f"top{top_k}"] = evi(report, with_rule(report_records, EvidenceRule(top_k, None)))
    if tune:
        rule, tune_f1 = tune_rule(tune, raw(tune))
        result["tuned"] = {**evi(report, with_rule(report_records, rule)), "top_k": rule.top_k,
                           "min_score": rule.min_score, "tune_evi_f1": round(tune_f1, 4)}
    for baseline in ("mentions", "closest"):
        result[baseline] = evi(report, attach_baseline_evidence(report_records, report, baseline))
    return result


def gold_rows(report: list[Document]) -> dict[str, Any]:
    records = [{"title": d.title, "h_idx": f.h, "t_idx": f.t, "r": f.r} for d in report for f in d.facts]
    return {baseline: evi(report, attach_baseline_evidence(records, report, baseline))
            for baseline in ("mentions", "closest")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dirs", nargs="*", help="trained document-model directories (hiere train)")
    parser.add_argument("--dev", default=str(DEFAULT_DEV), help="Re-DocRED dev file (default: dev_revised.json)")
    parser.add_argument("--slice", type=int, nargs=2, default=[450, 500], metavar=("START", "END"),
                        help="documents [START, END) of --dev (default 450 500: the configs' dev split)")
    parser.add_argument("--tune-docs", type=int, default=25,
                        help="the first N documents of the slice choose the rule, the rest report "
                        "(0: tune and report on the whole slice, optimistic)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", help="also write the figures as JSON here")
    args = parser.parse_args(argv)

    start, end = args.slice
    documents = read_docred(args.dev, require_labels=True)[start:end]
    end = start + len(documents)
    if args.tune_docs > 0:
        tune, report = documents[: args.tune_docs], documents[args.tune_docs :]
        where = f"tune on documents [{start}, {start + len(tune)}), report on [{start + len(tune)}, {end})"
    else:
        tune, report = documents, documents
        where = f"tune and report on documents [{start}, {end}) (the tuned column is optimistic)"
    print("command:", " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]))
    print(f"data: {args.dev}: {where}")
    print("machine:", json.dumps(machine()))
    results = [model_rows(model_dir, tune, report, args.device) for model_dir in args.model_dirs]
    gold = gold_rows(report)

    print("\n| model | rel F1 | Evi F1 top-1 | top-2 | top-3 | tuned (k, cut-off): Evi P / R / F1 "
          "| mentions baseline Evi F1 | closest baseline Evi F1 |")
    print("|---|---|---|---|---|---|---|---|")
    for row in results:
        tuned = row.get("tuned")
        tuned_text = (f"({tuned['top_k'] or 'all'}, {tuned['min_score']}): {tuned['evi_precision']:.4f} / "
                      f"{tuned['evi_recall']:.4f} / {tuned['evi_f1']:.4f}" if tuned else "-")
        print(f"| {row['model']} ({row['model_dir']}) | {row['top1']['f1']:.4f} | {row['top1']['evi_f1']:.4f} "
              f"| {row['top2']['evi_f1']:.4f} | {row['top3']['evi_f1']:.4f} | {tuned_text} "
              f"| {row['mentions']['evi_f1']:.4f} | {row['closest']['evi_f1']:.4f} |")
        if "note" in row:
            print(f"|   note: {row['note']} |")
    print(f"| gold facts (baselines only) | 1.0000 | - | - | - | - | {gold['mentions']['evi_f1']:.4f} "
          f"| {gold['closest']['evi_f1']:.4f} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"models": results, "gold_facts": gold}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
