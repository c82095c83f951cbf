"""Keep the small records of ``hiere train`` runs in the repository, so that seeds run in different sessions
can be compared, plotted and paired later (run directories with their weights are not committed).

    python benchmarks/keep_records.py runs/e13doc/bilstm_s1 runs/e13doc/hin_glove_s1 --to docs/records/e13doc

Copies, per run, the files that the reports read (``history.json``, ``config.yaml``, ``dev_metrics.json``,
``test_metrics.json``, ``runtime.json``, ``threshold.json``), the epoch lines of ``train.log`` (``train_epochs.log``)
and, when the run was started under ``/usr/bin/time -v -o RUN_DIR.time``, that file (peak resident memory, CPU
time) as ``time.txt``. ``benchmarks/paired.py`` and ``benchmarks/dev_curves.py`` read the copies as they read run
directories. A run without ``history.json`` is an error: it never finished an epoch.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from pathlib import Path

KEPT = ("history.json", "config.yaml", "dev_metrics.json", "test_metrics.json", "runtime.json", "threshold.json")
EPOCH_LINE = re.compile(r" epoch \d+: | early stop| resumed from | stopped early ")


def keep(run_dir: Path, to: Path) -> Path:
    """Copy one run's records into ``to/<run name>``; returns that folder."""
    if not (run_dir / "history.json").exists():
        raise SystemExit(f"{run_dir}: no history.json (not a hiere train directory, or no epoch finished)")
    target = to / run_dir.name
    target.mkdir(parents=True, exist_ok=True)
    for name in KEPT:
        if (run_dir / name).exists():
            shutil.copyfile(run_dir / name, target / name)
    log = run_dir / "train.log"
    if log.exists():
        lines = [line for line in log.read_text(errors="replace").splitlines() if EPOCH_LINE.search(line)]
        (target / "train_epochs.log").write_text("\n".join(lines) + "\n")
    timing = run_dir.with_name(run_dir.name + ".time")
    if timing.exists():
        shutil.copyfile(timing, target / "time.txt")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="hiere train output directories")
    parser.add_argument("--to", type=Path, required=True, help="folder for the records (e.g. docs/records/NAME)")
    args = parser.parse_args(argv)
    for run_dir in args.runs:
        print(keep(run_dir, args.to), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
