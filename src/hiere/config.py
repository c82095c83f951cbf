"""YAML configs with dotted ``--set key=value`` overrides.

A config is a nested dict with at least ``model.name``, ``data.train``, ``data.dev``, ``data.test``,
``trainer.epochs``, ``trainer.seed`` and ``trainer.device``. Model hyperparameters live under
``model`` and default to the paper's values (each model's ``Config`` dataclass); trainer settings
default to :data:`TRAINER_DEFAULTS`.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from hiere.errors import HiereConfigError, HiereInputError

TRAINER_DEFAULTS: dict[str, Any] = {
    "epochs": 10,
    "seed": 42,
    "device": "auto",
    "batch_size": 4,
    "eval_batch_size": 8,
    "optimizer": "adamw",  # adamw | adam | sgd
    "lr": 1e-3,
    "encoder_lr": None,  # separate learning rate for a pretrained transformer (None: same as lr)
    "weight_decay": 0.0,
    "momentum": 0.9,  # sgd only
    "warmup_ratio": 0.0,
    "schedule": "linear",  # linear (warmup + linear decay) | constant
    "max_grad_norm": 1.0,
    "grad_accumulation": 1,
    "length_buckets": 0,  # >0: sort each window of N batches by length, then shuffle the batches (less padding)
    "fused": None,  # fused Adam/AdamW kernel (None: wherever supported)
    "precision": "fp32",  # fp32 | bf16 | fp16 (fp16 needs CUDA)
    "patience": 0,  # early stopping: epochs without dev improvement (0 = never stop early)
    "eval_every": 1,  # evaluate on dev every N epochs
    "metric": None,  # selection metric on dev (None: the task's primary metric)
    "num_threads": None,  # torch.set_num_threads on CPU (None: torch's default)
    "max_steps": None,  # stop after this many optimizer steps (smoke tests)
    "log_every": 10,
    "progress": True,
}


def load_config(path: str | Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """Read a YAML config, apply ``key=value`` overrides, fill trainer defaults."""
    path = Path(path)
    if not path.exists():
        raise HiereInputError(str(path), None, None, "config file does not exist")
    try:
        config = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise HiereInputError(str(path), None, None, f"not valid YAML ({error})") from None
    if not isinstance(config, dict):
        raise HiereInputError(str(path), None, None, "a config must be a mapping of sections")
    config = apply_overrides(config, overrides or [])
    return resolve(config, base_dir=path.parent)


def apply_overrides(config: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """``["trainer.epochs=1", "model.hidden=64"]`` -> a new config with those keys set (YAML-typed)."""
    config = copy.deepcopy(config)
    for item in overrides:
        if "=" not in item:
            raise HiereConfigError(f"--set expects key=value, got {item!r}")
        key, raw = item.split("=", 1)
        value = yaml.safe_load(raw) if raw.strip() else None
        node = config
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise HiereConfigError(f"--set {key}: {part!r} is not a section")
        node[parts[-1]] = value
    return config


def resolve(config: dict[str, Any], base_dir: Path | None = None) -> dict[str, Any]:
    """Check required keys and fill the trainer defaults; data paths stay as written."""
    config = copy.deepcopy(config)
    model = config.get("model")
    if not isinstance(model, dict) or not model.get("name"):
        raise HiereConfigError("the config needs model.name (for example `model: {name: bilstm}`)")
    config.setdefault("data", {})
    trainer = {**TRAINER_DEFAULTS, **(config.get("trainer") or {})}
    unknown = sorted(set(trainer) - set(TRAINER_DEFAULTS))
    if unknown:
        raise HiereConfigError(f"unknown trainer keys {unknown}; known: {sorted(TRAINER_DEFAULTS)}")
    config["trainer"] = trainer
    return config


def get(config: dict[str, Any], dotted: str, default: Any = None) -> Any:
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node
