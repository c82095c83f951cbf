"""Peak memory per worker and throughput of corpus-scale ``hiere extract`` (issue 20: memory must not grow with
the number of documents).

The corpus is ``N`` documents made by repeating and shuffling the raw texts of ../shared/data's Re-DocRED dev
documents (tokens joined by spaces; seeded), one JSON line each, ``{"text", "title": "TITLE #COPY"}``. Each
(N, engine, workers) runs as its own process,

    python -m hiere extract MODEL_DIR corpus_N.jsonl -o OUT --engine ENGINE --workers W --block-size B --no-progress

(the local engine takes no --workers: it is one process); its wall time and the driver's peak resident memory
(``os.wait4``) are measured from outside, each worker's peak RSS (``ru_maxrss`` of the worker process, the
driver itself for the local engine) and documents/s come from OUT/manifest.json's summary.

    python benchmarks/scale_memory.py MODEL_DIR --docs 1000 20000 --workers 1 2 [--engines local ray] [--json out.json]

``--command predict`` measures ``hiere predict`` on DocRED documents instead (a document a line; no spaCy).
``--order repeat`` makes every block of the corpus the same documents in the same order (one shuffled block,
repeated), so every block meets the same batches and tensor shapes: memory that still grows from block to block
then grows with the work done, memory that stops growing grew with new inputs (shapes, strings, cache entries).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from harness import ROOT, machine  # noqa: E402

REDOCRED = ROOT.parent / "shared" / "data" / "redocred" / "dev_revised.json"


def write_corpus(path: Path, n_docs: int, command: str, seed: int, order_kind: str = "shuffled",
                 block_size: int = 500) -> None:
    """``n_docs`` Re-DocRED dev documents, repeated and shuffled (``order_kind`` "shuffled"), or one shuffled
    block of ``block_size`` documents repeated ("repeat"), one JSON line each (streamed to disk)."""
    documents = json.loads(REDOCRED.read_text(encoding="utf-8"))
    if order_kind == "repeat":
        block = list(range(len(documents)))
        random.Random(seed).shuffle(block)
        block = [block[i % len(block)] for i in range(block_size)]
        order = [block[i % block_size] for i in range(n_docs)]
    else:
        order = [i % len(documents) for i in range(n_docs)]
        random.Random(seed).shuffle(order)
    copies = [0] * len(documents)
    with open(path, "w", encoding="utf-8") as out:
        for index in order:
            copies[index] += 1
            document = documents[index]
            title = f"{document['title']} #{copies[index]}"
            if command == "extract":
                record = {"text": " ".join(" ".join(sentence) for sentence in document["sents"]), "title": title}
            else:
                record = {**document, "title": title}
            out.write(json.dumps(record, ensure_ascii=False) + "\n")


def run(command: list[str], out_dir: Path, env: dict[str, str]) -> dict:
    """One process: wall seconds, driver peak RSS, exit code, and the manifest's summary."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err, env=env)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - start
        err.seek(0)
        tail = err.read().decode(errors="replace").strip().splitlines()[-1:]
    summary = {}
    if (out_dir / "manifest.json").exists():
        summary = json.loads((out_dir / "manifest.json").read_text(encoding="utf-8")).get("summary") or {}
    workers = summary.get("workers_peak_rss_mb", {})
    trace = summary.get("memory_by_block", [])  # [block, worker, rss_mb, peak_rss_mb] in arrival order
    return {
        "exit": os.waitstatus_to_exitcode(status), "wall_seconds": round(seconds, 1),
        "driver_peak_rss_mb": round(usage.ru_maxrss / 1024),
        "worker_peak_rss_mb": sorted(workers.values()), "documents": summary.get("documents"),
        "errors": summary.get("errors"),
        "docs_per_second": summary.get("documents_per_second"), "run_seconds": summary.get("seconds"),
        "stderr_last_line": tail[0] if tail else "",
        # held after each block (a leak rises here) and the high-water mark (a transient peak steps up here)
        "rss_after_block_mb": [row[2] for row in trace], "peak_after_block_mb": [row[3] for row in trace],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir")
    parser.add_argument("--docs", type=int, nargs="+", default=[1000, 20_000], help="corpus sizes (default 1000 20000)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="Ray worker counts (default 1 2)")
    parser.add_argument("--engines", nargs="+", choices=["local", "ray"], default=["local", "ray"],
                        help="local runs once per size (one process); ray once per worker count")
    parser.add_argument("--command", choices=["extract", "predict"], default="extract")
    parser.add_argument("--block-size", type=int, default=500)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--order", choices=["shuffled", "repeat"], default="shuffled",
                        help="shuffled: the documents repeated and shuffled (default); repeat: every block the same "
                             "documents in the same order")
    parser.add_argument("--keep", help="keep the corpora and outputs in this directory (default: a temp dir)")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    results = {"machine": machine(), "data": str(REDOCRED), "command": args.command, "seed": args.seed,
               "order": args.order, "block_size": args.block_size, "runs": []}
    print(json.dumps({key: value for key, value in results.items() if key != "runs"}), flush=True)
    folder = Path(args.keep or tempfile.mkdtemp(prefix="scale_memory."))
    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    try:
        for n_docs in args.docs:
            corpus = folder / f"corpus_{n_docs}.jsonl"
            write_corpus(corpus, n_docs, args.command, args.seed, args.order, args.block_size)
            settings = [("local", 1)] if "local" in args.engines else []
            settings += [("ray", workers) for workers in args.workers] if "ray" in args.engines else []
            for engine, workers in settings:
                out_dir = folder / f"out_{n_docs}_{engine}_{workers}"
                shutil.rmtree(out_dir, ignore_errors=True)
                command = [sys.executable, "-m", "hiere", args.command, args.model_dir, str(corpus), "-o", str(out_dir),
                           "--engine", engine, "--block-size", str(args.block_size), "--no-progress"]
                if engine == "ray":
                    command += ["--workers", str(workers)]
                result = {"docs": n_docs, "engine": engine, "workers": workers,
                          "command": " ".join(command[1:]), **run(command, out_dir, env)}
                results["runs"].append(result)
                print(json.dumps(result), flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
