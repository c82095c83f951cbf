"""Process-group helpers. ``torchrun`` sets RANK / WORLD_SIZE / LOCAL_RANK; without them we run alone."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from hiere.errors import HiereConfigError


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device_setting: str) -> tuple[DistContext, torch.device]:
    """Start the process group when launched by torchrun (gloo on CPU, nccl on CUDA) and pick the device."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_setting, local_rank)
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend)
    return DistContext(rank, world_size, local_rank), device


def resolve_device(setting: str, local_rank: int = 0, option: str = "trainer.device") -> torch.device:
    """``auto`` (CUDA when present), ``cpu``, ``cuda`` or ``cuda:N`` -> a device; ``option`` names the
    setting in the error (``trainer.device`` in a config, ``device`` for ``hiere.load`` and ``--device``)."""
    if not isinstance(setting, str) or (setting not in ("auto", "cpu", "cuda")
                                        and re.fullmatch(r"cuda:\d+", setting) is None):
        raise HiereConfigError(f"{option} must be auto, cpu, cuda or cuda:N, got {setting!r}")
    if setting == "auto":
        setting = "cuda" if torch.cuda.is_available() else "cpu"
    if setting.startswith("cuda"):
        if not torch.cuda.is_available():
            raise HiereConfigError(f"{option}={setting} but no CUDA device is available (use auto or cpu)")
        device = torch.device(setting if ":" in setting else f"cuda:{local_rank}")
        if device.index >= torch.cuda.device_count():
            raise HiereConfigError(f"{option}={setting} but this machine has {torch.cuda.device_count()} CUDA devices")
        return device
    return torch.device("cpu")


def gather_objects(obj: Any, context: DistContext) -> list[Any]:
    """Every rank's ``obj``, in rank order (a one-element list when alone)."""
    if not context.enabled:
        return [obj]
    gathered: list[Any] = [None] * context.world_size
    dist.all_gather_object(gathered, obj)
    return gathered


def barrier(context: DistContext) -> None:
    if context.enabled:
        dist.barrier()


def shutdown(context: DistContext) -> None:
    if context.enabled and dist.is_initialized():
        dist.destroy_process_group()
