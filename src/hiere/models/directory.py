"""Model directories: everything ``hiere.load`` needs, written atomically, read back with nothing else.

A model directory holds ``config.yaml`` (resolved), ``model.safetensors``, ``resources/`` (relation
map, vocabularies, extra JSON), ``threshold.json`` and any model assets (e.g. ``encoder/`` with a
tokenizer). It sits in the models layer because a model may start from another one (HNRE's warm start).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from hiere.errors import HiereInputError
from hiere.io import write_bytes_atomic, write_json_atomic, write_text_atomic
from hiere.models import get_model_class
from hiere.models.base import HiereModel, Resources

WEIGHTS = "model.safetensors"


def save_model_dir(model: HiereModel, config: dict[str, Any], threshold: float, model_dir: str | Path,
                   metrics: dict[str, Any] | None = None) -> None:
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    model.resources.save(model_dir)
    model.save_assets(model_dir)
    state = {name: tensor.detach().contiguous().cpu() for name, tensor in model.state_dict().items()}
    write_bytes_atomic(model_dir / WEIGHTS, save_safetensors(_unshare(state), metadata={"model": model.name}))
    write_json_atomic(model_dir / "threshold.json", {"threshold": threshold, "decision": model.decision}, indent=1)
    if metrics is not None:
        write_json_atomic(model_dir / "dev_metrics.json", metrics, indent=1)
    # the config is written last: its presence marks a complete model directory
    write_text_atomic(model_dir / "config.yaml", yaml.safe_dump(config, sort_keys=False))


def _unshare(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """safetensors refuses tensors that share memory (tied weights): give each its own copy."""
    seen: set[int] = set()
    out = {}
    for name, tensor in state.items():
        pointer = tensor.untyped_storage().data_ptr() if tensor.numel() else id(tensor)
        out[name] = tensor.clone() if pointer in seen else tensor
        seen.add(pointer)
    return out


def load_model_dir(model_dir: str | Path, device: torch.device | str = "cpu") -> tuple[HiereModel, dict, float]:
    """-> (model in eval mode, resolved config, threshold). Needs nothing outside ``model_dir``."""
    model_dir = Path(model_dir)
    if not (model_dir / "config.yaml").exists() or not (model_dir / WEIGHTS).exists():
        raise HiereInputError(str(model_dir), None, None,
                              "not a hiere model directory (config.yaml or model.safetensors missing)")
    config = yaml.safe_load((model_dir / "config.yaml").read_text(encoding="utf-8"))
    model_class = get_model_class(config["model"]["name"])
    model_config = model_class.Config.from_dict(config["model"])
    resources = Resources.load(model_dir)
    model = model_class(model_config, resources)
    state = load_safetensors((model_dir / WEIGHTS).read_bytes())
    model.load_state_dict(model_class.upgrade_state_dict(state))
    threshold = json.loads((model_dir / "threshold.json").read_text())["threshold"]
    return model.to(device).eval(), config, threshold
