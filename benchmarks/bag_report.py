"""Markdown tables shared by the bag-level benchmarks (bag_benchmark.py, hiclre_benchmark.py)."""

from __future__ import annotations

import statistics
from collections.abc import Iterable

RANKING_KEYS = (
    ("pr_auc", "PR-AUC"),
    ("p@100", "P@100"),
    ("p@200", "P@200"),
    ("p@300", "P@300"),
    ("micro_f1", "micro-F1"),
    ("macro_f1", "macro-F1"),
)
COST_KEYS = ("train_sentences_per_s", "inference_sentences_per_s", "peak_rss_mb")


def mean_std(values: list[float | None], digits: int = 3) -> str:
    """``mean ± sample std`` of the values that are not None; ``digits=1`` prints percentages."""
    values = [v for v in values if v is not None]
    if not values:
        return "n/a"
    scale = 100.0 if digits == 1 else 1.0
    mean = statistics.mean(values) * scale
    spread = statistics.stdev(values) * scale if len(values) > 1 else 0.0
    return f"{mean:.{digits}f} ± {spread:.{digits}f}"


def mean_of(values: list[float | None], digits: int) -> str:
    """Mean of the values that are not None (``n/a`` when there are none)."""
    values = [v for v in values if v is not None]
    return f"{statistics.mean(values):.{digits}f}" if values else "n/a"


def print_ranking_table(rows: list[dict], models: Iterable[str], cost_digits: int = 0) -> None:
    """One line per model: seeds, test ranking metrics (mean ± std), best epochs, throughput, memory."""
    header = ["model", "seeds", *(name for _, name in RANKING_KEYS), "best epoch", "train sent/s", "infer sent/s",
              "peak RSS MB"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for model_key in models:
        runs = sorted((r for r in rows if r["model"] == model_key), key=lambda r: r["seed"])
        if not runs:
            continue
        cells = [model_key, ",".join(str(r["seed"]) for r in runs)]
        cells += [mean_std([r["test"].get(key) for r in runs]) for key, _ in RANKING_KEYS]
        cells.append(",".join(str(r["best_epoch"]) for r in runs))
        cells += [mean_of([r.get(key) for r in runs], cost_digits) for key in COST_KEYS]
        print("| " + " | ".join(cells) + " |")
