"""Load test of ``hiere serve``: throughput and latency of ``POST /extract`` at 1, 4 and 16 concurrent clients.

The script starts ``hiere serve MODEL_DIR`` on 127.0.0.1 (a free port), or uses ``--url`` of a server already
running on this machine (loopback addresses only: anything else is refused). Each concurrency level sends
``--requests`` requests, one raw text each (the bundled Re-DocRED dev sample, cycled), from that many clients
that each wait for their answer before sending the next. A level stops sending after ``--max-seconds``; a
request gets ``--timeout`` seconds. It reports per level: answered requests per second, texts per second,
latency p50/p99/mean/max, the mean model batch size on the server (from ``/health``), errors (any answer but
200 with one result) and lost requests (sent, never answered: timeouts and broken connections). It exits 1
when any request failed or was lost.

    python benchmarks/serve_load.py runs/demo                       # 1, 4, 16 clients x 200 requests
    python benchmarks/serve_load.py runs/demo --clients 1,4 --requests 20 --max-seconds 10 --out load.json
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from harness import ROOT, machine

SAMPLE = ROOT / "src" / "hiere" / "resources" / "sample_dev.json"


@dataclass
class Level:
    clients: int
    sent: int = 0
    ok: int = 0
    errors: int = 0
    lost: int = 0
    wall_seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    error_examples: list[str] = field(default_factory=list)
    batches: int = 0
    batched_texts: int = 0

    def summary(self) -> dict:
        latencies = sorted(self.latencies_ms)
        return {
            "clients": self.clients, "sent": self.sent, "ok": self.ok, "errors": self.errors, "lost": self.lost,
            "wall_seconds": round(self.wall_seconds, 3),
            "requests_per_second": round(self.ok / self.wall_seconds, 3) if self.wall_seconds else None,
            "p50_ms": percentile(latencies, 50), "p99_ms": percentile(latencies, 99),
            "mean_ms": round(sum(latencies) / len(latencies), 1) if latencies else None,
            "max_ms": round(latencies[-1], 1) if latencies else None,
            "mean_batch_texts": round(self.batched_texts / self.batches, 2) if self.batches else None,
            "error_examples": self.error_examples[:5],
        }


def percentile(ordered: list[float], p: float) -> float | None:
    """Nearest-rank percentile of sorted values."""
    if not ordered:
        return None
    return round(ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)], 1)


def sample_texts() -> list[str]:
    documents = json.loads(SAMPLE.read_text(encoding="utf-8"))
    return [" ".join(" ".join(sentence) for sentence in document["sents"]) for document in documents]


def check_loopback(url: str) -> None:
    host = urllib.parse.urlsplit(url).hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        sys.exit(f"serve_load: {url} is not a loopback address (127.0.0.0/8, ::1, localhost); refusing to load it")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def health(url: str) -> dict:
    with urllib.request.urlopen(f"{url}/health", timeout=5) as answer:
        return json.load(answer)


def start_server(model_dir: str, server_args: list[str], log_path: Path, start_seconds: float
                 ) -> tuple[subprocess.Popen, str]:
    port = free_port()
    command = [sys.executable, "-m", "hiere", "serve", model_dir, "--host", "127.0.0.1", "--port", str(port),
               "--log-level", "warning", *server_args]
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT / "src"), env.get("PYTHONPATH")) if p)
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + start_seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"serve_load: hiere serve exited with {process.returncode}:\n{log_path.read_text()}")
        try:
            if health(url)["status"] == "ok":
                print(f"server: {' '.join(command)} (pid {process.pid})", file=sys.stderr)
                return process, url
        except OSError:
            time.sleep(0.3)
    process.terminate()
    sys.exit(f"serve_load: hiere serve did not answer within {start_seconds} s:\n{log_path.read_text()}")


async def run_level(url: str, clients: int, requests: int, texts: list[str], max_seconds: float,
                    timeout: float) -> Level:
    level = Level(clients)
    before = health(url)
    next_request = 0
    deadline = time.monotonic() + max_seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal next_request
        while next_request < requests and time.monotonic() < deadline:
            index = next_request
            next_request += 1
            level.sent += 1
            started = time.perf_counter()
            try:
                response = await http.post("/extract", json={"text": texts[index % len(texts)]})
            except httpx.HTTPError as error:  # no answer: timed out or the connection broke
                level.lost += 1
                level.error_examples.append(f"request {index}: {type(error).__name__}: {error}")
                continue
            elapsed = (time.perf_counter() - started) * 1000
            try:
                good = response.status_code == 200 and len(response.json()["results"]) == 1
            except (ValueError, KeyError, TypeError):
                good = False
            if good:
                level.ok += 1
                level.latencies_ms.append(elapsed)
            else:
                level.errors += 1
                level.error_examples.append(f"request {index}: HTTP {response.status_code}: {response.text[:200]}")

    async with httpx.AsyncClient(base_url=url, timeout=timeout, limits=limits) as http:
        started = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        level.wall_seconds = time.perf_counter() - started
    after = health(url)
    level.batches = after["batches"] - before["batches"]
    level.batched_texts = after["batched_texts"] - before["batched_texts"]
    return level


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir", nargs="?", help="model directory to serve (e.g. runs/demo from 'hiere demo')")
    parser.add_argument("--url", help="use this running server instead (loopback only), e.g. http://127.0.0.1:8000")
    parser.add_argument("--clients", default="1,4,16", help="concurrency levels (default 1,4,16)")
    parser.add_argument("--requests", type=int, default=200, help="requests per level (default 200)")
    parser.add_argument("--max-seconds", type=float, default=120.0,
                        help="a level stops sending after this long (default 120)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds one request may take (default 60)")
    parser.add_argument("--warmup", type=int, default=3, help="requests before the levels, not counted (default 3)")
    parser.add_argument("--start-seconds", type=float, default=180.0, help="how long the server may take to start")
    parser.add_argument("--server-arg", action="append", default=[], metavar="ARG",
                        help="extra argument of hiere serve, e.g. --server-arg=--batch-window-ms=0 (repeatable)")
    parser.add_argument("--out", help="also write the figures as JSON here")
    args = parser.parse_args()
    if (args.model_dir is None) == (args.url is None):
        parser.error("give MODEL_DIR (the script starts the server) or --url of a running one")
    if args.model_dir is not None and not Path(args.model_dir).is_dir():
        parser.error(f"{args.model_dir} is not a model directory (build the demo model with: hiere demo -o runs/demo)")
    levels = [int(part) for part in args.clients.split(",") if part.strip()]
    if not levels or min(levels) < 1 or args.requests < 1 or args.max_seconds <= 0:
        parser.error("--clients must be positive integers, --requests >= 1 and --max-seconds > 0")

    texts = sample_texts()
    process = None
    log_dir = tempfile.mkdtemp(prefix="serve_load.")
    try:
        if args.url:
            url = args.url.rstrip("/")
            check_loopback(url)
        else:
            process, url = start_server(args.model_dir, args.server_arg, Path(log_dir) / "serve.log",
                                        args.start_seconds)
        info = health(url)
        print(f"command: {' '.join([sys.executable, *sys.argv])}", file=sys.stderr)
        asyncio.run(run_level(url, 1, args.warmup, texts, args.max_seconds, args.timeout))
        results = []
        for clients in levels:
            level = asyncio.run(run_level(url, clients, args.requests, texts, args.max_seconds, args.timeout))
            results.append(level.summary())
            row = results[-1]
            print(f"{clients:>3} clients: {row['ok']}/{row['sent']} ok, {row['errors']} errors, {row['lost']} lost, "
                  f"{row['requests_per_second']} req/s, p50 {row['p50_ms']} ms, p99 {row['p99_ms']} ms, "
                  f"mean batch {row['mean_batch_texts']} texts", file=sys.stderr)
    finally:
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
    report = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "model": info["model"], "model_dir": args.model_dir, "url": None if process else args.url,
        "texts": f"{len(texts)} bundled Re-DocRED dev documents ({SAMPLE.name}), cycled; one text a request",
        "mean_text_chars": round(sum(map(len, texts)) / len(texts)),
        "requests_per_level": args.requests, "max_seconds_per_level": args.max_seconds,
        "server_args": args.server_arg, "machine": machine(), "levels": results,
    }
    print(json.dumps(report, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    failed = sum(level["errors"] + level["lost"] for level in results)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
