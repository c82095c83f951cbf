"""HIN training steps in fp32 and in bf16 autocast, timed by the trainer (``trainer.profile_steps``).

    python benchmarks/hin_step.py [--config configs/hin_glove.yaml] [--threads 1] [--steps 3] \\
        [--precisions fp32 bf16] [--out runs/hin_step]

Per precision, ``hiere train CONFIG --set trainer.precision=P --set trainer.profile_steps=STEPS`` on the first
documents of Re-DocRED dev_revised.json (one warm-up optimizer step, then STEPS profiled ones, each of the
config's ``batch_size`` x ``grad_accumulation`` documents: 12 for HIN), one epoch, ``--threads`` threads.
Prints seconds per step (= per 12 documents) and documents per second, with the machine, and writes them to
OUT/hin_step.json. A finished run (its ``profile.json`` exists) is not run again.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml
from harness import ROOT, machine, profile_overrides, profile_runs, train_command

from hiere.io import write_json_atomic


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "hin_glove.yaml")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", "--repeats", type=int, default=3, help="profiled optimizer steps per precision")
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "hin_step")
    args = parser.parse_args(argv)
    args.out = args.out.resolve()  # the runs start in ROOT
    trainer = yaml.safe_load(args.config.read_text())["trainer"]
    per_step = int(trainer["batch_size"]) * int(trainer.get("grad_accumulation", 1))  # documents per update
    slice_ = f"data.train_slice=[0,{per_step * (args.steps + 1)}]"
    commands = {
        f"{args.config.stem}_{precision}": train_command(args.config, args.out / f"{args.config.stem}_{precision}", [
            slice_, "data.dev_slice=[450,452]", f"trainer.precision={precision}",
            *profile_overrides(args.steps, args.threads)])
        for precision in args.precisions
    }
    profiles = profile_runs(commands, args.out)
    rows = []
    print(f"{args.config.name}: {per_step} documents per step, {args.steps} profiled steps, {args.threads} thread(s)")
    for (key, profile), precision in zip(profiles.items(), args.precisions, strict=True):
        if profile is None:
            print(f"{precision}: no profile, see {args.out / key}.train.log")
            continue
        seconds = profile["seconds_per_step"]
        rows.append({"precision": precision, "documents_per_step": per_step, "seconds_per_step": seconds,
                     "documents_per_second": round(per_step / seconds, 2), "profile": profile})
        print(f"{precision}: {seconds:.2f} s per {per_step} documents ({per_step / seconds:.1f} documents/s)")
    write_json_atomic(args.out / "hin_step.json", {
        "command": " ".join(["python", "benchmarks/hin_step.py", *(argv if argv is not None else sys.argv[1:])]),
        "machine": machine(), "config": str(args.config), "threads": args.threads, "results": rows}, indent=1)
    return 0 if len(rows) == len(args.precisions) else 1


if __name__ == "__main__":
    sys.exit(main())
