"""Paired-by-seed comparison of two models: per-seed values, the differences, their mean ± std.

    python benchmarks/paired.py --metric pr_auc --metric p@100 \\
        --baseline "PCNN+ATT=runs/nyt10_pcnn_att_s1,runs/nyt10_pcnn_att_s2,runs/nyt10_pcnn_att_s3" \\
        --model "HNRE-PCNN=runs/nyt10_hnre_pcnn_s1,runs/nyt10_hnre_pcnn_s2,runs/nyt10_hnre_pcnn_s3"

Each directory is a ``hiere train`` output directory. Runs are paired by ``trainer.seed`` (from the directory's
``config.yaml``), so the two sides of a pair share their data order and initial draws as far as the models
allow; a seed present on one side only is left out, and said so. A metric is a key of ``test_metrics.json``
(the selected model scored once on test) or ``best_dev`` (the best dev value of the run's ``trainer.metric``,
from ``history.json``) or ``best_epoch``. The difference is *model minus baseline*; its spread over seeds says
whether the gain is larger than what a reseeding moves. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import yaml


def run_seed(directory: Path) -> int:
    path = directory / "config.yaml"
    if not path.exists():
        raise SystemExit(f"{path}: missing (not a hiere train output directory)")
    return int(yaml.safe_load(path.read_text())["trainer"]["seed"])


def selection_metric(model_name: str) -> str:
    """The dev metric that selects a model's best epoch when ``trainer.metric`` is null: its task's primary one."""
    from hiere.models import get_model_class
    from hiere.tasks import get_task

    return get_task(get_model_class(model_name).task).primary_metric


def run_value(directory: Path, metric: str) -> float:
    """One figure of a run directory: a test metric, or its best dev value / epoch."""
    if metric in ("best_dev", "best_epoch"):
        config = yaml.safe_load((directory / "config.yaml").read_text())
        name = config["trainer"].get("metric") or selection_metric(config["model"]["name"])
        history = json.loads((directory / "history.json").read_text())
        scored = [(float(record["dev"][name]), record["epoch"]) for record in history
                  if name in (record.get("dev") or {})]
        if not scored:
            raise SystemExit(f"{directory / 'history.json'}: no dev {name!r} in any epoch")
        best, epoch = max(scored, key=lambda pair: (pair[0], -pair[1]))  # the first epoch reaching the best
        return best if metric == "best_dev" else float(epoch)
    path = directory / "test_metrics.json"
    if not path.exists():
        raise SystemExit(f"{path}: missing (the run has not finished, or had no data.test)")
    metrics = json.loads(path.read_text())
    if metric not in metrics:
        raise SystemExit(f"{path}: no metric {metric!r} (has: {', '.join(sorted(metrics))})")
    return float(metrics[metric])


def parse_group(text: str) -> tuple[str, list[Path]]:
    name, sep, dirs = text.partition("=")
    if not sep or not dirs:
        raise SystemExit(f"--baseline/--model {text!r}: expected NAME=DIR[,DIR...]")
    return name, [Path(part) for part in dirs.split(",") if part]


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def paired(baseline: list[Path], model: list[Path], metrics: list[str]) -> dict:
    """{"seeds": [...], "unpaired": [...], metric: {"baseline": [...], "model": [...], "diff": [...]}}."""
    left = {run_seed(directory): directory for directory in baseline}
    right = {run_seed(directory): directory for directory in model}
    seeds = sorted(set(left) & set(right))
    if not seeds:
        raise SystemExit(f"no seed on both sides (baseline seeds {sorted(left)}, model seeds {sorted(right)})")
    result: dict = {"seeds": seeds, "unpaired": sorted(set(left) ^ set(right))}
    for metric in metrics:
        a = [run_value(left[seed], metric) for seed in seeds]
        b = [run_value(right[seed], metric) for seed in seeds]
        result[metric] = {"baseline": a, "model": b, "diff": [y - x for x, y in zip(a, b, strict=True)]}
    return result


def table(result: dict, names: tuple[str, str], metrics: list[str], digits: int = 3) -> str:
    seeds = result["seeds"]
    lines = [f"| metric | {names[0]} | {names[1]} | difference by seed ({', '.join(map(str, seeds))}) "
             f"| difference mean ± std | seeds with {names[1]} ahead |", "|---|---|---|---|---|---|"]
    for metric in metrics:
        row = result[metric]
        a, b, diff = mean_std(row["baseline"]), mean_std(row["model"]), mean_std(row["diff"])
        ahead = sum(value > 0 for value in row["diff"])
        lines.append(f"| {metric} | {a[0]:.{digits}f} ± {a[1]:.{digits}f} | {b[0]:.{digits}f} ± {b[1]:.{digits}f} "
                     f"| {' / '.join(f'{value:+.{digits}f}' for value in row['diff'])} "
                     f"| {diff[0]:+.{digits}f} ± {diff[1]:.{digits}f} | {ahead} of {len(seeds)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", required=True, metavar="NAME=DIR[,DIR...]")
    parser.add_argument("--model", required=True, metavar="NAME=DIR[,DIR...]")
    parser.add_argument("--metric", action="append", metavar="KEY",
                        help="test_metrics.json key, best_dev or best_epoch (repeatable; default pr_auc)")
    parser.add_argument("--digits", type=int, default=3)
    args = parser.parse_args(argv)
    metrics = args.metric or ["pr_auc"]
    (base_name, base_dirs), (model_name, model_dirs) = parse_group(args.baseline), parse_group(args.model)
    result = paired(base_dirs, model_dirs, metrics)
    if result["unpaired"]:
        print(f"left out (on one side only): seeds {result['unpaired']}", file=sys.stderr)
    print(table(result, (base_name, model_name), metrics, args.digits))
    return 0


if __name__ == "__main__":
    sys.exit(main())
