"""Where a training step's time goes: ``trainer.profile_steps: N``.

The trainer runs one warm-up step (first-call allocation and kernel choice would dominate it), then times the
next ``N`` optimizer steps phase by phase — collate (features -> tensors), forward (of which the encoder
alone, through hooks on ``model.encoder``), backward, optimizer (clipping, the update, the schedule) — and
records them under :mod:`torch.profiler`. It writes, in the run's directory:

* ``profile.json``: seconds per step of each phase, their shares of the step, the rest ("other": the
  loop's own Python, logging), steps profiled, precision and device;
* ``profile.txt``: the same as a table, then torch's operator table (self CPU time, top 30).

Memory: a background thread reads the process's resident size every few milliseconds while the profiled
steps run and keeps, per phase, the largest it saw (``peak_rss_mb``; Linux ``/proc``, elsewhere absent), so a
report says in which phase a step's memory peaks without resetting the kernel's high-water mark that
``/usr/bin/time`` and the benchmarks read. ``trainer.profile_memory: true`` also has :mod:`torch.profiler`
record every allocation and adds an operator table by self CPU memory (slower steps, so the times of such a
profile are not comparable with one without it).

Training goes on afterwards unchanged; the profiled steps count as ordinary steps. A profile ends with the
first epoch's training part at the latest (it never includes an evaluation), and reports the steps it had.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from hiere.io import write_json_atomic, write_text_atomic

PHASES = ("collate", "forward", "encoder", "backward", "optimizer")
SAMPLE_SECONDS = 0.005


def resident_mb() -> float | None:
    """This process's resident memory now (Linux ``/proc/self/statm``), or None where it cannot be read."""
    try:
        with open("/proc/self/statm", "rb") as handle:
            pages = int(handle.read().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


class ResidentSampler(threading.Thread):
    """Samples :func:`resident_mb` every ``SAMPLE_SECONDS`` and keeps the largest per current phase."""

    def __init__(self) -> None:
        super().__init__(name="hiere-rss-sampler", daemon=True)
        self.phase = "other"
        self.peaks: dict[str, float] = {}
        self.stopping = threading.Event()

    def sample(self) -> None:
        value = resident_mb()
        if value is not None:
            self.peaks[self.phase] = max(self.peaks.get(self.phase, 0.0), value)

    def run(self) -> None:
        while not self.stopping.wait(SAMPLE_SECONDS):
            self.sample()

    def stop(self) -> dict[str, float]:
        self.stopping.set()
        self.join()
        return self.peaks


class StepProfiler:
    """Phase timers and a :mod:`torch.profiler` session over ``steps`` optimizer steps after one warm-up."""

    def __init__(self, steps: int, out_dir: Path, model: torch.nn.Module, device: torch.device, precision: str,
                 memory: bool = False):
        self.steps, self.out_dir, self.device, self.precision = steps, out_dir, device, precision
        self.memory = memory  # torch.profiler's allocation records and a table by memory
        self.sampler: ResidentSampler | None = None
        self.rss_at_start: float | None = None
        self.done = 0  # optimizer steps finished, the warm-up included
        self.seconds = dict.fromkeys(PHASES, 0.0)
        self.started: float | None = None
        self.profiler: Any = None
        self.hooks: list[Any] = []
        self.encoder_started = 0.0
        encoder = getattr(model, "encoder", None)
        if steps and isinstance(encoder, torch.nn.Module):
            self.hooks = [encoder.register_forward_pre_hook(self._encoder_in),
                          encoder.register_forward_hook(self._encoder_out)]

    @property
    def active(self) -> bool:
        return self.profiler is not None

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _encoder_in(self, *_: Any) -> None:
        if self.active:
            self._sync()
            self.encoder_started = time.perf_counter()

    def _encoder_out(self, *_: Any) -> None:
        if self.active:
            self._sync()
            self.seconds["encoder"] += time.perf_counter() - self.encoder_started

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        if not self.active:
            yield
            return
        self._sync()
        if self.sampler is not None:
            self.sampler.sample()  # the phase before ends here
            self.sampler.phase = name
        begin = time.perf_counter()
        with torch.profiler.record_function(f"hiere.{name}"):
            yield
        self._sync()
        self.seconds[name] += time.perf_counter() - begin
        if self.sampler is not None:
            self.sampler.sample()
            self.sampler.phase = "other"

    def step_done(self) -> None:
        """Called after every optimizer step: starts the session after the warm-up, ends it after ``steps``."""
        if not self.steps:
            return
        self.done += 1
        if self.done == 1:
            activities = [torch.profiler.ProfilerActivity.CPU]
            if self.device.type == "cuda":
                activities.append(torch.profiler.ProfilerActivity.CUDA)
            self.profiler = torch.profiler.profile(activities=activities, profile_memory=self.memory)
            self.profiler.__enter__()
            self.rss_at_start = resident_mb()
            if self.rss_at_start is not None:
                self.sampler = ResidentSampler()
                self.sampler.start()
            self._sync()
            self.started = time.perf_counter()
        elif self.done == self.steps + 1:
            self.finish()

    def finish(self) -> None:
        """Stop (if running) and write ``profile.json`` / ``profile.txt``; a run shorter than asked reports
        the steps it had."""
        if not self.active:
            return
        self._sync()
        wall = time.perf_counter() - (self.started or time.perf_counter())
        profiler, self.profiler = self.profiler, None
        sampler, self.sampler = self.sampler, None
        peaks = sampler.stop() if sampler is not None else {}
        profiler.__exit__(None, None, None)
        for hook in self.hooks:
            hook.remove()
        steps = self.done - 1
        if steps < 1:
            logging.getLogger("hiere.train").warning(
                "trainer.profile_steps=%d: the epoch ended after the warm-up step, nothing was profiled", self.steps)
            return
        per_step = {name: value / steps for name, value in self.seconds.items()}
        phases_total = sum(value for name, value in per_step.items() if name != "encoder")
        step = wall / steps
        report = {
            "steps": steps, "device": str(self.device), "precision": self.precision,
            "seconds_per_step": round(step, 6),
            "phases": {name: {"seconds": round(value, 6), "share": round(value / step, 4) if step else 0.0}
                       for name, value in per_step.items()},
            "other": {"seconds": round(step - phases_total, 6),
                      "share": round((step - phases_total) / step, 4) if step else 0.0},
        }
        if peaks:  # the encoder runs inside forward: its samples count as forward's
            report["memory"] = {"rss_mb_at_start": round(self.rss_at_start or 0.0, 1),
                                "peak_rss_mb": {name: round(value, 1) for name, value in peaks.items()},
                                "sample_seconds": SAMPLE_SECONDS}
        write_json_atomic(self.out_dir / "profile.json", report, indent=1)
        lines = [f"{steps} training steps after one warm-up step, {self.device}, precision {self.precision}: "
                 f"{step:.3f} s per step", "", f"{'phase':<12}{'s/step':>10}{'share':>9}"]
        for name in (*PHASES, "other"):
            entry = report["other"] if name == "other" else report["phases"][name]
            label = "  encoder" if name == "encoder" else name  # part of forward
            lines.append(f"{label:<12}{entry['seconds']:>10.4f}{entry['share']:>9.1%}")
        if peaks:
            lines += ["", f"resident memory at the first profiled step: {self.rss_at_start:,.0f} MB; "
                      "largest seen during each phase (MB): "
                      + ", ".join(f"{name} {value:,.0f}" for name, value in peaks.items())]
        sort = "self_cuda_time_total" if self.device.type == "cuda" else "self_cpu_time_total"
        averages = profiler.key_averages()
        tables = [averages.table(sort_by=sort, row_limit=30)]
        if self.memory:
            tables.append("by self CPU memory (allocated minus freed by the operator itself):\n"
                          + averages.table(sort_by="self_cpu_memory_usage", row_limit=20))
        write_text_atomic(self.out_dir / "profile.txt", "\n".join(lines) + "\n\n" + "\n".join(tables) + "\n")
