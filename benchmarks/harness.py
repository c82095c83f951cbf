"""What the benchmarks share: the machine they ran on, resident memory (of another process or of this one), the
``hiere train`` command of a run, and a queue that runs each run's steps (train, then a measurement) as separate
processes, ``jobs`` at a time, recording each process's exit code, wall time and peak resident memory
(``os.wait4``). :func:`profile_runs` is that queue for runs timed by the trainer itself
(``trainer.profile_steps``, :mod:`hiere.training.profile`): no benchmark times training with a loop of its own.

Outputs are written atomically (:func:`hiere.io.write_json_atomic`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hiere.io import write_json_atomic
from hiere.memory import peak_rss_mb as own_peak_rss_mb

ROOT = Path(__file__).resolve().parents[1]  # the repository: configs and data paths are relative to it


def machine() -> dict[str, Any]:
    """CPU model, cores, Python and torch versions, load average."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    from hiere.training.inference import cpu_flags

    flags = cpu_flags() or set()
    return {
        "cpu": cpu,
        "cpu_bf16_flags": sorted(flags & {"avx512_bf16", "amx_bf16", "amx_tile"}),
        "avx512": "avx512f" in flags,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "load_average": os.getloadavg(),
    }


def train_command(config: str | Path, run_dir: Path, overrides: Sequence[str], resume: bool = False) -> list[str]:
    """``python -m hiere train CONFIG -o RUN_DIR --set KEY=VALUE ... [--resume]``."""
    command = [sys.executable, "-m", "hiere", "train", str(config), "-o", str(run_dir)]
    command += [part for override in overrides for part in ("--set", override)]
    return command + (["--resume"] if resume else [])


def find_training(run_dir: Path) -> int | None:
    """Pid of a running ``hiere train ... -o run_dir`` process that this process did not start (an earlier,
    stopped instance of a benchmark left it running), or None."""
    for folder in Path("/proc").iterdir():
        if not folder.name.isdigit() or int(folder.name) == os.getpid():
            continue
        try:
            arguments = (folder / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"train" in arguments and str(run_dir).encode() in arguments and b"-o" in arguments:
            return int(folder.name)
    return None


def _status_mb(pid: int | str, key: str) -> float | None:
    """A ``kB`` line of ``/proc/PID/status`` in MB, or None when the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def peak_rss_mb(pid: int) -> float | None:
    """Peak resident memory so far of a running process (``VmHWM``), or None when it is gone."""
    return _status_mb(pid, "VmHWM")


def rss_mb(pid: int | str = "self") -> float | None:
    """Resident memory now of a process (``VmRSS``; default: this one)."""
    return _status_mb(pid, "VmRSS")


def self_peak_rss_mb() -> float:
    """Peak resident memory so far of this process (``getrusage``), in MB."""
    return own_peak_rss_mb() or 0.0


@dataclass
class Run:
    """One run: its steps ``(phase, command)`` run in order, each logged to ``log_dir/<key>.<phase>.log``.

    ``adopted_pid``: the first step is already running as that process (see :func:`find_training`); the
    queue waits for it instead of starting it. ``info``: whatever the caller needs in ``on_done``.
    """

    key: str
    log_dir: Path
    steps: list[tuple[str, list[str]]]
    adopted_pid: int | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def log(self, phase: str) -> Path:
        return self.log_dir / f"{self.key}.{phase}.log"


@dataclass
class Outcome:
    """How a step ended. An adopted process has no exit code, no wall time, and its last seen ``VmHWM``."""

    phase: str
    exit_code: int | None
    wall_seconds: float | None
    peak_rss_mb: float | None


def _stamp() -> str:
    return time.strftime("%H:%M:%S")


def run_queue(runs: list[Run], jobs: int, on_done: Callable[[Run, Outcome], bool], poll_seconds: float = 5.0) -> None:
    """Run the steps of ``runs``, at most ``jobs`` processes at once (each in ``ROOT``, output to its log).

    After each step ``on_done(run, outcome)`` records it and returns whether the run goes on with its next
    step; that step is started before any run that has not started yet.
    """
    pending = [run for run in runs if run.adopted_pid is None and run.steps]
    adopted = {run.adopted_pid: (run, peak_rss_mb(run.adopted_pid)) for run in runs if run.adopted_pid is not None}
    running: dict[int, tuple[Run, str, float, subprocess.Popen, Any]] = {}
    for pid, (run, _) in adopted.items():
        print(f"{_stamp()} adopted running {run.steps[0][0]} {run.key} (pid {pid})", flush=True)

    def follow(run: Run, outcome: Outcome) -> None:
        if on_done(run, outcome) and run.steps:
            pending.insert(0, run)

    while pending or running or adopted:
        while pending and len(running) + len(adopted) < jobs:
            run = pending.pop(0)
            phase, command = run.steps.pop(0)
            run.log_dir.mkdir(parents=True, exist_ok=True)
            handle = run.log(phase).open("w")
            process = subprocess.Popen(command, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT)
            running[process.pid] = (run, phase, time.perf_counter(), process, handle)
            print(f"{_stamp()} start {phase} {run.key}: {' '.join(command)}", flush=True)
        for pid, (run, peak) in list(adopted.items()):
            if Path(f"/proc/{pid}").exists():
                adopted[pid] = (run, peak_rss_mb(pid) or peak)
                continue
            del adopted[pid]
            phase, _ = run.steps.pop(0)
            print(f"{_stamp()} adopted {phase} {run.key} ended", flush=True)
            follow(run, Outcome(phase, None, None, peak))
        if not running:
            if adopted:
                time.sleep(poll_seconds)
            continue
        # every free slot is taken (or nothing is pending): block unless adopted processes need polling
        pid, status, usage = os.wait4(-1, os.WNOHANG if adopted else 0)
        if pid == 0:
            time.sleep(poll_seconds)
            continue
        if pid not in running:
            continue
        run, phase, started, process, handle = running.pop(pid)
        handle.close()
        process.returncode = code = os.waitstatus_to_exitcode(status)
        wall, peak = time.perf_counter() - started, usage.ru_maxrss / 1024
        print(f"{_stamp()} done {phase} {run.key}: exit {code}, {wall:.0f} s, peak {peak:.0f} MB", flush=True)
        follow(run, Outcome(phase, code, wall, peak))


def profile_overrides(steps: int, threads: int = 1) -> list[str]:
    """``hiere train`` overrides of a profiled run: one epoch of one warm-up step and ``steps`` profiled optimizer
    steps (``trainer.profile_steps``), ``threads`` torch threads, no progress bars, no early stopping."""
    return ["trainer.epochs=1", f"trainer.max_steps={steps + 1}", f"trainer.profile_steps={steps}",
            f"trainer.num_threads={threads}", "trainer.progress=false", "trainer.patience=0"]


def profile_runs(commands: dict[str, list[str]], out: Path, jobs: int = 1) -> dict[str, dict[str, Any] | None]:
    """Run each ``key: command`` (a ``hiere train ... -o OUT/key`` with ``trainer.profile_steps``, see
    :func:`profile_overrides`) through :func:`run_queue`, logged to ``OUT/key.train.log``; a finished run (its
    ``profile.json`` exists) is not run again.

    Returns ``key ->`` the run's ``profile.json`` plus ``"process"``: its exit code, wall seconds and peak RSS
    (kept in ``OUT/key/process.json``), or None when the run wrote no profile.
    """
    runs = [Run(key, out, [("train", command)]) for key, command in commands.items()
            if not (out / key / "profile.json").exists()]

    def done(run: Run, outcome: Outcome) -> bool:
        write_json_atomic(out / run.key / "process.json", dataclasses.asdict(outcome), indent=1)
        if outcome.exit_code:
            print(f"{run.key}: exit {outcome.exit_code}, see {run.log('train')}", file=sys.stderr)
        return False

    run_queue(runs, jobs, done)
    results: dict[str, dict[str, Any] | None] = {}
    for key in commands:
        profile, process = out / key / "profile.json", out / key / "process.json"
        results[key] = None
        if profile.exists():
            results[key] = {**json.loads(profile.read_text()),
                            "process": json.loads(process.read_text()) if process.exists() else None}
    return results
