"""``argparse`` value types shared by the commands (a clear message for a bad value, exit 2)."""

from __future__ import annotations

import argparse
import math
import re


def positive_int(value: str) -> int:
    number = _int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value!r} must be an integer >= 1")
    return number


def non_negative_int(value: str) -> int:
    number = _int(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"{value!r} must be an integer >= 0")
    return number


def _int(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an integer") from None


def probability(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if not (math.isfinite(number) and 0.0 <= number <= 1.0):
        raise argparse.ArgumentTypeError(f"{value!r} must be a score in [0, 1]")
    return number


def device_name(value: str) -> str:
    if re.fullmatch(r"auto|cpu|cuda(:\d+)?", value) is None:
        raise argparse.ArgumentTypeError(f"{value!r} is not a device: use auto, cpu, cuda or cuda:N")
    return value


DEVICE_HELP = "auto|cpu|cuda|cuda:N (default auto: CUDA when present)"
