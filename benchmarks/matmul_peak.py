"""Matrix-multiply peak of this machine in fp32 and bf16 (GFLOP/s), the yardstick for training throughput.

    python benchmarks/matmul_peak.py [--threads N] [--sizes 1024 2048] [--seconds 3]

Prints one JSON object: machine, torch version, threads, and for each dtype and size the best
GFLOP/s over repeated ``a @ b`` (2 n^3 flops each). :func:`measure_peak` is reused by
``doc_transformer_benchmark.py`` so both figures come from the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402


def cpu_name() -> str:
    """The CPU's model name (:func:`harness.machine`)."""
    return harness.machine()["cpu"]


def matmul_gflops(size: int, dtype: torch.dtype, seconds: float, device: str = "cpu") -> dict[str, float]:
    """Best GFLOP/s of ``size x size`` matmuls over about ``seconds`` of repetitions, per wall-clock
    second and per second of this process's CPU time (robust when other jobs share the cores)."""
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    for _ in range(2):  # warm up (oneDNN/AMX kernel selection)
        a @ b
    best_wall, best_cpu, spent = 0.0, 0.0, 0.0
    while spent < seconds:
        if device != "cpu":
            torch.cuda.synchronize()
        start, start_cpu = time.perf_counter(), time.process_time()
        a @ b
        if device != "cpu":
            torch.cuda.synchronize()
        elapsed, elapsed_cpu = time.perf_counter() - start, time.process_time() - start_cpu
        spent += elapsed
        best_wall = max(best_wall, 2 * size**3 / elapsed / 1e9)
        if elapsed_cpu > 0:
            best_cpu = max(best_cpu, 2 * size**3 / elapsed_cpu / 1e9 / torch.get_num_threads())
    return {"wall": round(best_wall, 1), "cpu": round(best_cpu, 1)}


def measure_peak(
    sizes: list[int], seconds: float, device: str = "cpu"
) -> dict[str, dict[str, dict[str, float]]]:
    """``{"fp32": {"1024": {"wall": GFLOP/s, "cpu": GFLOP/s per CPU-second per thread}}, "bf16": ...}``."""
    return {
        name: {str(size): matmul_gflops(size, dtype, seconds, device) for size in sizes}
        for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16))
    }


def best(peak: dict, precision: str, clock: str) -> float:
    return max(value[clock] for value in peak[precision].values())


def command_line(args: argparse.Namespace) -> str:
    parts = []
    for key, value in vars(args).items():
        if value is None or value is False:
            continue
        flag = "--" + key.replace("_", "-")
        if value is True:
            parts.append(flag)
        elif isinstance(value, list):
            parts.append(flag + " " + " ".join(map(str, value)))
        else:
            parts.append(f"{flag} {value}")
    return " ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    peak = measure_peak(args.sizes, args.seconds, args.device)
    print(
        json.dumps(
            {
                "command": "python benchmarks/matmul_peak.py " + command_line(args),
                "load_average_1min": round(os.getloadavg()[0], 2),
                "machine": cpu_name(),
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
                "gflops": peak,
                "bf16_over_fp32": round(best(peak, "bf16", "cpu") / best(peak, "fp32", "cpu"), 2),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
