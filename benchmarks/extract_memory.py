"""Peak memory and time of ``hiere extract`` on one very long document (issue 15: memory must stay flat).

The document is ``--words`` words cycling through ``--vocabulary`` (default a mix of names and "the",
so spaCy finds many entities), with a " ." after every ``--sentence`` words; it is one line, so
``hiere extract`` reads it as one text and cuts it into parts of at most 100,000 characters. Each size
runs as its own ``python -m hiere extract MODEL_DIR FILE`` process; its wall time and peak resident
memory (``os.wait4``) are printed with the number of triples.

    python benchmarks/extract_memory.py MODEL_DIR --words 300000 1000000 [--vocabulary the] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from harness import machine  # noqa: E402

MIX = "the Paris Marie Curie London Berlin Einstein Germany France".split()


def long_text(words: int, vocabulary: list[str], sentence: int) -> str:
    """``words`` words cycling through ``vocabulary``, a " ." after every ``sentence`` of them."""
    out = []
    for i in range(words):
        out.append(vocabulary[i % len(vocabulary)])
        if i % sentence == sentence - 1:
            out.append(".")
    return " ".join(out)


def run(model_dir: str, path: Path) -> dict:
    """One ``hiere extract`` process on ``path``: wall seconds, peak RSS, triples, exit code."""
    command = [sys.executable, "-m", "hiere", "extract", model_dir, str(path), "--no-progress"]
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen(command, stdout=out, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - start
        out.seek(0)
        triples = sum(1 for line in out if line.strip())
        err.seek(0)
        tail = err.read().decode(errors="replace").strip().splitlines()[-1:]
    return {"seconds": round(seconds, 1), "peak_rss_mb": round(usage.ru_maxrss / 1024), "triples": triples,
            "exit": os.waitstatus_to_exitcode(status), "stderr_last_line": tail[0] if tail else ""}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir")
    parser.add_argument("--words", type=int, nargs="+", default=[300_000, 1_000_000])
    parser.add_argument("--vocabulary", nargs="+", default=MIX, help="words to cycle through (default: a mix)")
    parser.add_argument("--sentence", type=int, default=50, help="words between two ' .' (default 50)")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    results = {"machine": machine(), "vocabulary": args.vocabulary, "sentence": args.sentence, "runs": []}
    with tempfile.TemporaryDirectory() as folder:
        for words in args.words:
            path = Path(folder) / f"text_{words}.txt"
            path.write_text(long_text(words, args.vocabulary, args.sentence) + "\n", encoding="utf-8")
            result = {"words": words, "characters": path.stat().st_size - 1, **run(args.model_dir, path)}
            results["runs"].append(result)
            print(json.dumps(result), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
