"""Dev curves of two (or more) models in one plot: mean over seeds per epoch, with the seeds' spread.

    python benchmarks/dev_curves.py --metric pr_auc -o docs/img/hnre_vs_pcnn_nyt10.png \\
        --title "NYT10 subset: HNRE-PCNN vs PCNN+ATT" \\
        --group "PCNN+ATT=runs/pcnn_s1,runs/pcnn_s2,runs/pcnn_s3" \\
        --group "HNRE-PCNN=runs/hnre_s1,runs/hnre_s2,runs/hnre_s3"

Each ``--group NAME=DIR[,DIR...]`` names ``hiere train`` output directories (one per seed); their
``history.json`` gives the dev metric after every epoch. The plot shows, per group, the mean over the seeds
that reached that epoch (a line), the min-max band of those seeds, and each seed's best epoch (the model
kept) as a marker. A run stopped early by ``trainer.patience`` simply ends its curve. Also prints, per group,
the mean ± std of the best dev value and the epochs it took, as a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path


def curves(directory: Path, metric: str) -> list[tuple[int, float]]:
    path = directory / "history.json"
    if not path.exists():
        raise SystemExit(f"{path}: no history.json (not a hiere train output directory, or not started)")
    history = json.loads(path.read_text())
    points = [(record["epoch"], float(record["dev"][metric])) for record in history
              if metric in (record.get("dev") or {})]
    if not points:
        raise SystemExit(f"{path}: no dev {metric!r} in any epoch (metrics there: "
                         f"{sorted((history[0].get('dev') or {}) if history else [])})")
    return points


def parse_group(text: str) -> tuple[str, list[Path]]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--group {text!r}: expected NAME=DIR[,DIR...]")
    name, dirs = text.split("=", 1)
    return name, [Path(d) for d in dirs.split(",") if d]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--group", type=parse_group, action="append", required=True,
                        help="NAME=DIR[,DIR...]: one model, one hiere train directory per seed")
    parser.add_argument("--metric", default="pr_auc", help="dev metric of history.json (pr_auc, f1, ign_f1, ...)")
    parser.add_argument("-o", "--out", type=Path, required=True, help="PNG to write")
    parser.add_argument("--title", default="")
    args = parser.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    figure, axis = plt.subplots(figsize=(7, 4.2))
    rows = ["| model | seeds | best dev " + args.metric + " | best epoch | epochs run |", "|---|---|---|---|---|"]
    for name, directories in args.group:
        runs = [dict(curves(d, args.metric)) for d in directories]
        epochs = sorted({epoch for run in runs for epoch in run})
        means = [statistics.mean(run[e] for run in runs if e in run) for e in epochs]
        low = [min(run[e] for run in runs if e in run) for e in epochs]
        high = [max(run[e] for run in runs if e in run) for e in epochs]
        line, = axis.plot(epochs, means, label=f"{name} ({len(runs)} seed{'s' if len(runs) > 1 else ''})")
        axis.fill_between(epochs, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
        best = [max(run.items(), key=lambda item: item[1]) for run in runs]
        axis.scatter([e for e, _ in best], [v for _, v in best], color=line.get_color(), marker="o", s=18, zorder=3)
        values = [v for _, v in best]
        spread = f" ± {statistics.stdev(values):.4f}" if len(values) > 1 else ""
        rows.append(f"| {name} | {len(runs)} | {statistics.mean(values):.4f}{spread} | "
                    f"{', '.join(str(e) for e, _ in best)} | {', '.join(str(max(run)) for run in runs)} |")
    axis.set_xlabel("epoch")
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.set_ylabel(f"dev {args.metric}")
    if args.title:
        axis.set_title(args.title)
    axis.grid(alpha=0.3)
    axis.legend(loc="lower right")
    figure.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out, dpi=120)
    print("\n".join(rows))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
