"""Training and prediction throughput of the transformer document models (ATLOP, KMGRE) vs matmul peak.

    python benchmarks/doc_transformer_benchmark.py --models atlop kmgre --precisions fp32 bf16 \\
        --docs 16 --batch-size 4 --steps 4 --threads 2

Takes the first ``--docs`` training documents of the Re-DocRED benchmark split (first 450 of
dev_revised.json), batches them by length (length-bucketed: sorted, then cut into batches), and
times ``--steps`` optimizer steps (forward, backward, AdamW) per model and precision after one
warm-up step; then times prediction (``no_grad``, eval mode) over the same documents. FLOPs of one
training step are counted with ``torch.utils.flop_counter`` (matmuls of the transformer and the
head, forward + backward), which gives achieved GFLOP/s and the fraction of the matmul peak that
:mod:`matmul_peak` measures in the same run (fp32 peak for fp32, bf16 peak for bf16 autocast).
Peak memory is the process's max RSS (monotone: read it per model by running one model a run).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from matmul_peak import best, command_line, cpu_name, measure_peak  # noqa: E402

from hiere.data.docred import read_docred  # noqa: E402
from hiere.data.relations import RelationMap  # noqa: E402
from hiere.models import get_model_class  # noqa: E402
from hiere.models.base import Resources  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "redocred"


def build(name: str, max_length: int, overrides: dict) -> torch.nn.Module:
    relations = RelationMap.from_rel_info(DATA / "rel_info.json")
    model_class = get_model_class(name)
    config = model_class.Config.from_dict({"max_length": max_length, **overrides})
    model = model_class(config, Resources(relations))
    model.init_pretrained()
    return model


def bucketed_batches(features: list[dict], batch_size: int) -> list[list[dict]]:
    ordered = sorted(features, key=lambda f: len(f["input_ids"]))
    return [ordered[i : i + batch_size] for i in range(0, len(ordered), batch_size)]


def autocast(precision: str):
    if precision == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


def train_step(model, optimizer, batch, precision: str) -> float:
    with autocast(precision):
        loss = model(batch)["loss"]
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return float(loss)


def benchmark(name: str, precision: str, documents, args, peak) -> dict:
    torch.manual_seed(0)
    model = build(name, args.max_length, json.loads(args.model_options))
    features = [model.featurize(doc) for doc in documents]
    batches = [model.collate(chunk) for chunk in bucketed_batches(features, args.batch_size)]
    tokens = [int(b["attention_mask"].sum()) for b in batches]
    padded = [b["attention_mask"].numel() for b in batches]
    model.train()
    optimizer = torch.optim.AdamW(model.parameter_groups(1e-4, 5e-5, 0.0))
    train_step(model, optimizer, batches[0], precision)  # warm-up
    with FlopCounterMode(display=False) as counter:
        train_step(model, optimizer, batches[0], precision)
    flops_per_token = counter.get_total_flops() / tokens[0]
    spent, spent_cpu, seen = 0.0, 0.0, 0
    for step in range(args.steps):
        index = step % len(batches)
        start, start_cpu = time.perf_counter(), time.process_time()
        train_step(model, optimizer, batches[index], precision)
        spent += time.perf_counter() - start
        spent_cpu += (time.process_time() - start_cpu) / torch.get_num_threads()
        seen += tokens[index]
    model.eval()
    start, start_cpu = time.perf_counter(), time.process_time()
    with torch.no_grad(), autocast(precision):
        for batch in batches:
            model(batch)
    predict_seconds = time.perf_counter() - start
    predict_cpu = (time.process_time() - start_cpu) / torch.get_num_threads()
    tokens_per_doc = sum(tokens) / len(documents)
    result = {"model": name, "precision": precision}
    # "wall": per wall-clock second; "cpu": per second of this process's CPU time per thread (what the
    # machine would give with the cores to itself); the peak is taken on the same clock
    for clock, train_seconds, predict_time in (
        ("wall", spent, predict_seconds),
        ("cpu", spent_cpu, predict_cpu),
    ):
        achieved = flops_per_token * seen / train_seconds / 1e9
        peak_gflops = best(peak, precision, clock)
        result[clock] = {
            "train_tokens_per_s": round(seen / train_seconds, 1),
            "train_docs_per_s": round(seen / train_seconds / tokens_per_doc, 3),
            "seconds_per_step": round(train_seconds / args.steps, 3),
            "achieved_gflops": round(achieved, 1),
            "peak_gflops": peak_gflops,
            "fraction_of_peak": round(achieved / peak_gflops, 4),
            "predict_docs_per_s": round(len(documents) / predict_time, 2),
            "predict_tokens_per_s": round(sum(tokens) / predict_time, 1),
        }
    return {
        **result,
        "train_gflop_per_token": round(flops_per_token / 1e9, 4),
        "padding_fraction": round(1 - sum(tokens) / sum(padded), 3),
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["atlop", "kmgre"])
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    parser.add_argument("--docs", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--peak-seconds", type=float, default=2.0)
    parser.add_argument("--model-options", default="{}", help="JSON dict of model config overrides")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.threads:
        torch.set_num_threads(args.threads)
    peak = measure_peak([1024, 2048], args.peak_seconds)
    documents = read_docred(DATA / "dev_revised.json", limit=args.docs)
    report = {
        "command": "python benchmarks/doc_transformer_benchmark.py " + command_line(args),
        "data": f"Re-DocRED dev_revised.json documents 0-{args.docs - 1} (training split)",
        "machine": cpu_name(),
        "threads": torch.get_num_threads(),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "torch": torch.__version__,
        "matmul_peak_gflops": peak,
        "results": [],
    }
    for name in args.models:
        for precision in args.precisions:
            report["results"].append(benchmark(name, precision, documents, args, peak))
            print(json.dumps(report["results"][-1]), file=sys.stderr, flush=True)
    report["load_average_1min_end"] = round(os.getloadavg()[0], 2)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
