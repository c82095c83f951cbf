"""hiere: hierarchical relation extraction — HNRE, HiCLRE, HIN, KMGRE and their baselines."""

from __future__ import annotations

__version__ = "0.1.0"


def load(model_dir, device: str = "auto"):
    """Load a trained model directory -> :class:`hiere.api.Predictor`."""
    from hiere.api import load as _load

    return _load(model_dir, device)


__all__ = ["__version__", "load"]
