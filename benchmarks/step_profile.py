"""Where one training step's time goes, for every shipped model: ``hiere train`` with ``trainer.profile_steps``.

    python benchmarks/step_profile.py [--out runs/step_profile] [--steps 5] [--jobs 1] [--only atlop,hin]

For each config below, ``hiere train CONFIG --set trainer.profile_steps=STEPS`` on a small training slice
(featurization of the whole file is not what is profiled), one epoch capped at STEPS + 1 optimizer steps, one
thread, the config's own batch size and precision. Each run writes ``profile.json`` / ``profile.txt``
(hiere.training.profile); this script prints one Markdown table of them (seconds per step; shares of
collate, forward, of which the encoder, backward, optimizer, the rest) and writes it to OUT/profile.md,
with the machine. A finished run (its ``profile.json`` exists) is not run again.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml
from harness import ROOT, Outcome, Run, machine, run_queue, train_command

DOC = ["data.train_slice=[0,48]", "data.dev_slice=[450,454]"]
BAG = ["data.train_slice=[0,2000]", "data.dev_slice=[0,50]", "data.test=null"]
RUNS = {  # key: (config, overrides on top of the slice)
    "pcnn_att": ("configs/pcnn_att_nyt10.yaml", BAG),
    "cnn_att": ("configs/cnn_att_nyt10.yaml", BAG),
    "hnre_pcnn": ("configs/hnre_pcnn_nyt10.yaml", BAG),
    "bert_att": ("configs/bert_att_nyt10.yaml", BAG),
    "hiclre": ("configs/hiclre_nyt10.yaml", BAG),
    "bilstm": ("configs/bilstm_redocred.yaml", DOC),
    "hin_glove": ("configs/hin_glove.yaml", DOC),
    "hin_transformer": ("configs/hin_transformer.yaml", DOC),
    "atlop": ("configs/atlop_redocred.yaml", DOC),
    "kmgre": ("configs/kmgre_redocred.yaml", DOC),
}


def table(out: Path, keys: list[str]) -> str:
    lines = ["| model | precision | examples / step | s / step | s / example | collate | forward | (encoder) | "
             "backward | optimizer | other |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for key in keys:
        path = out / key / "profile.json"
        if not path.exists():
            lines.append(f"| {key} | (no profile: see {out / key}.train.log) | | | | | | | | | |")
            continue
        report = json.loads(path.read_text())
        shares = [f"{report['phases'][name]['share']:.0%}" for name in
                  ("collate", "forward", "encoder", "backward", "optimizer")]
        trainer = yaml.safe_load((out / key / "config.yaml").read_text())["trainer"]
        batch = trainer["batch_size"] * trainer.get("grad_accumulation", 1)  # examples per optimizer step
        step = report["seconds_per_step"]
        lines.append(f"| {key} | {report['precision']} | {batch} | {step:.3f} | {step / batch:.3f} | "
                     + " | ".join(shares) + f" | {report['other']['share']:.0%} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "step_profile")
    parser.add_argument("--steps", type=int, default=5, help="profiled steps after one warm-up step")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once (one thread each)")
    parser.add_argument("--only", default="", help="comma-separated keys of RUNS (default: all)")
    args = parser.parse_args(argv)
    keys = [k for k in RUNS if not args.only or k in args.only.split(",")]
    unknown = set(args.only.split(",")) - set(RUNS) if args.only else set()
    if unknown:
        parser.error(f"unknown --only keys {sorted(unknown)}; known: {', '.join(RUNS)}")
    runs = []
    for key in keys:
        if (args.out / key / "profile.json").exists():
            continue
        config, slice_overrides = RUNS[key]
        overrides = [*slice_overrides, "trainer.epochs=1", f"trainer.max_steps={args.steps + 1}",
                     f"trainer.profile_steps={args.steps}", "trainer.num_threads=1", "trainer.progress=false",
                     "trainer.patience=0"]
        runs.append(Run(key, args.out, [("train", train_command(config, args.out / key, overrides))]))

    def done(run: Run, outcome: Outcome) -> bool:
        if outcome.exit_code:
            print(f"{run.key}: exit {outcome.exit_code}, see {run.log('train')}", file=sys.stderr)
        return False

    run_queue(runs, args.jobs, done)
    report = f"Machine: {json.dumps(machine())}\n\n{table(args.out, keys)}\n"
    (args.out / "profile.md").write_text(report)
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
