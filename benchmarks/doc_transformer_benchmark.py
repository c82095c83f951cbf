"""Training and prediction throughput of the transformer document models (ATLOP, KMGRE) vs matmul peak.

    python benchmarks/doc_transformer_benchmark.py --models atlop kmgre --precisions fp32 bf16 \\
        --docs 16 --batch-size 4 --steps 4 --threads 1 [--out runs/doc_transformer_benchmark]

Training: per model and precision, ``hiere train configs/{model}_redocred.yaml`` with
``trainer.profile_steps=STEPS`` (the trainer's own timing, :mod:`hiere.training.profile`) on the first
``--batch-size`` x (STEPS + 1) training documents of the Re-DocRED benchmark split (dev_revised.json 0-449, the
config's random batches): one warm-up optimizer step, then STEPS profiled ones (forward, backward, AdamW), each
in its own process (peak RSS per run from ``os.wait4``). FLOPs of a training step are *counted* (not timed) with
``torch.utils.flop_counter`` on one forward + backward of the trained model over the first batch (matmuls of the
transformer and the head), per real token; times the average real tokens of a step this gives achieved GFLOP/s,
and its fraction of the matmul peak that :mod:`matmul_peak` measures in the same run (fp32 peak for fp32, bf16
peak for bf16 autocast). Prediction: ``Predictor.predict`` of the trained model over the first ``--docs``
documents. Wall-clock figures, with the machine and its load; written to OUT/doc_transformer_benchmark.json.
A finished training run (its ``profile.json`` exists) is not run again.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch
from harness import ROOT, machine, profile_overrides, profile_runs, self_peak_rss_mb, train_command
from matmul_peak import best, command_line, measure_peak
from torch.utils.flop_counter import FlopCounterMode

import hiere
from hiere.data.docred import read_docred
from hiere.io import write_json_atomic

DATA = ROOT.parent / "shared" / "data" / "redocred"


def autocast(precision: str):
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")


def flops_per_token(model: torch.nn.Module, features: list[dict], precision: str) -> float:
    """Matmul FLOPs of one training forward + backward over ``features`` (one batch), per real token."""
    model.train()
    batch = model.collate(features)
    with FlopCounterMode(display=False) as counter:
        with autocast(precision):
            loss = model(batch)["loss"]
        loss.float().backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / sum(len(f["input_ids"]) for f in features)


def measure(name: str, precision: str, profile: dict, run_dir: Path, args, peak: dict) -> dict:
    """Throughput of one trained run: the trainer's step time, counted FLOPs, prediction time."""
    predictor = hiere.load(run_dir, device="cpu")
    model = predictor.model
    trained = read_docred(DATA / "dev_revised.json", limit=args.batch_size * (args.steps + 1))
    features = [model.featurize(doc) for doc in trained]
    per_token = flops_per_token(model, features[: args.batch_size], precision)
    step_tokens = sum(len(f["input_ids"]) for f in features) / (args.steps + 1)  # average real tokens per step
    seconds = profile["seconds_per_step"]
    achieved = per_token * step_tokens / seconds / 1e9
    peak_gflops = best(peak, precision, "wall")
    predicted = read_docred(DATA / "dev_revised.json", limit=args.docs)
    predict_tokens = sum(len(model.featurize(doc)["input_ids"]) for doc in predicted)
    model.eval()
    started = time.perf_counter()
    predictor.predict(predicted, explain=False)
    predict_seconds = time.perf_counter() - started
    return {
        "model": name, "precision": precision,
        "seconds_per_step": seconds, "steps_profiled": profile["steps"], "docs_per_step": args.batch_size,
        "phases": {phase: entry["share"] for phase, entry in profile["phases"].items()},
        "train_tokens_per_s": round(step_tokens / seconds, 1),
        "train_docs_per_s": round(args.batch_size / seconds, 3),
        "train_gflop_per_token": round(per_token / 1e9, 4),
        "achieved_gflops": round(achieved, 1),
        "peak_gflops": peak_gflops,
        "fraction_of_peak": round(achieved / peak_gflops, 4),
        "predict_docs_per_s": round(len(predicted) / predict_seconds, 2),
        "predict_tokens_per_s": round(predict_tokens / predict_seconds, 1),
        "train_peak_rss_mb": (profile["process"] or {}).get("peak_rss_mb"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["atlop", "kmgre"], choices=["atlop", "kmgre"])
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    parser.add_argument("--docs", type=int, default=16, help="documents predicted (the first of the split)")
    parser.add_argument("--batch-size", type=int, default=4, help="training documents per step")
    parser.add_argument("--steps", type=int, default=4, help="profiled training steps after one warm-up step")
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--peak-seconds", type=float, default=2.0)
    parser.add_argument("--model-options", default="{}", help="JSON dict of model config overrides")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "doc_transformer_benchmark")
    args = parser.parse_args(argv)
    args.out = args.out.resolve()  # the runs start in ROOT
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(args.threads)
    options = {"max_length": args.max_length, **json.loads(args.model_options)}
    overrides = [f"data.train_slice=[0,{args.batch_size * (args.steps + 1)}]", "data.dev_slice=[450,452]",
                 f"trainer.batch_size={args.batch_size}", *profile_overrides(args.steps, args.threads),
                 *[f"model.{key}={json.dumps(value)}" for key, value in options.items()]]
    runs = {(name, precision): f"{name}_{precision}" for name in args.models for precision in args.precisions}
    commands = {key: train_command(ROOT / "configs" / f"{name}_redocred.yaml", args.out / key,
                                   [*overrides, f"trainer.precision={precision}"])
                for (name, precision), key in runs.items()}
    profiles = profile_runs(commands, args.out)
    peak = measure_peak([1024, 2048], args.peak_seconds)  # after the trainings: the cores are this process's
    report = {
        "command": "python benchmarks/doc_transformer_benchmark.py " + command_line(args),
        "data": f"Re-DocRED dev_revised.json documents 0-{args.batch_size * (args.steps + 1) - 1} trained on, "
                f"0-{args.docs - 1} predicted (training split)",
        "machine": machine(), "threads": args.threads, "matmul_peak_gflops": peak, "results": [],
    }
    for (name, precision), key in runs.items():
        if profiles[key] is None:
            print(f"{key}: no profile, see {args.out / key}.train.log", file=sys.stderr)
            continue
        report["results"].append(measure(name, precision, profiles[key], args.out / key, args, peak))
        print(json.dumps(report["results"][-1]), file=sys.stderr, flush=True)
    report["load_average_end"] = os.getloadavg()
    report["this_process_peak_rss_mb"] = round(self_peak_rss_mb(), 1)
    write_json_atomic(args.out / "doc_transformer_benchmark.json", report, indent=1)
    print(json.dumps(report, indent=1))
    return 0 if len(report["results"]) == len(runs) else 1


if __name__ == "__main__":
    sys.exit(main())
