"""YAML configs with dotted ``--set key=value`` overrides and ``extends:``.

A config has three sections: ``model`` (``model.name`` plus the model's hyperparameters, which default to
the paper's values in each model's ``Config`` dataclass), ``data`` (the keys in :data:`DATA_KEYS`) and
``trainer`` (:class:`TrainerConfig`). :func:`resolve` rejects unknown sections and keys, coerces every
trainer value to its type (``--set trainer.weight_decay=1e-5`` is the float 1e-5, although YAML 1.1
reads ``1e-5`` as a string) and checks its range, so a bad value fails when the config is loaded,
before any data is read. ``config["trainer"]`` stays a plain dict (``TrainerConfig.to_dict()``), which
is what the model directory's ``config.yaml`` holds.

``extends: base.yaml`` (a path relative to the config's own folder) starts from that file and lays this
one over it: sections and their keys merge, any other value replaces the base's, so an ablation file holds
only the lines that differ. Bases may extend further bases; a cycle is an error. The model directory keeps
the merged config, with no ``extends`` left.

A ``--set data.dev=FILE`` (or ``data.train`` / ``data.test``) clears that split's ``data.dev_slice`` from
the config file, since a slice is chosen for the file it was written beside; the command line may set
both (``--set data.dev=FILE --set data.dev_slice=[0,100]``). A warning says so.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import re
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from hiere.errors import HiereConfigError, HiereInputError

SECTIONS = ("model", "data", "trainer")
DATA_FILES = ("train", "dev", "test", "relations", "long_tail")
OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULES = ("linear", "constant")
DECAY_EXEMPTIONS = ("none", "bias_norm")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?")
SPLITS = ("train", "dev", "test")
LOGGER = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class TrainerConfig:
    """The ``trainer`` section. Values are coerced to each field's type and range-checked on construction."""

    epochs: int = 10  # passes over the training data
    seed: int = 42  # Python, NumPy and torch seed; also seeds the shuffling
    device: str = "auto"  # auto (CUDA when present) | cpu | cuda | cuda:N
    batch_size: int = 4  # global training batch (split over DDP processes)
    eval_batch_size: int = 8  # batch size for dev/test scoring and prediction
    optimizer: str = "adamw"  # adamw | adam | sgd
    lr: float = 1e-3  # learning rate
    encoder_lr: float | None = None  # separate learning rate for a pretrained transformer (None: same as lr)
    weight_decay: float = 0.0  # weight decay (decoupled for adamw, L2 for adam and sgd)
    # none: every weight decays | bias_norm: biases and normalization weights do not (OpenNRE's BERT code,
    # Hugging Face's examples)
    weight_decay_exempt: str = "none"
    adam_epsilon: float = 1e-8  # eps of Adam/AdamW (torch's default)
    momentum: float = 0.9  # sgd only
    warmup_ratio: float = 0.0  # share of the optimizer steps spent on linear warmup, in [0, 1)
    schedule: str = "linear"  # linear (warmup + linear decay) | constant (warmup, then constant)
    max_grad_norm: float = 1.0  # clip the gradient norm to this (0: no clipping)
    grad_accumulation: int = 1  # batches per optimizer step
    length_buckets: int = 0  # >0: sort each window of N batches by length, then shuffle the batches (less padding)
    fused: bool | None = None  # fused Adam/AdamW kernel (None: wherever supported)
    precision: str = "auto"  # auto (bf16 where the device has bf16 units, else fp32) | fp32 | bf16 | fp16 (CUDA)
    patience: int = 0  # early stopping: epochs without dev improvement (0 = never stop early)
    eval_every: int = 1  # evaluate on dev every N epochs
    metric: str | None = None  # selection metric on dev (None: the task's primary metric)
    num_threads: int | None = None  # torch.set_num_threads on CPU (None: torch's default)
    max_steps: int | None = None  # stop after this many optimizer steps (smoke tests; None: no cap)
    log_every: int = 10  # a train.log line every N batches
    progress: bool = True  # tqdm bars on a terminal; without one, train.log's lines echoed to stderr
    # >0: time the N optimizer steps after the first (collate / forward / encoder / backward / optimizer) and
    # profile them with torch.profiler -> OUT/profile.json, OUT/profile.txt (hiere.training.profile)
    profile_steps: int = 0
    profile_memory: bool = False  # with profile_steps: torch.profiler records allocations, a table by memory
    # >0: allocations of at least this many MB get their own mapping, returned on free (glibc; hiere.memory)
    mmap_threshold_mb: float = 0.0
    # true: tensors of 2 MB and more on transparent huge pages (PyTorch's THP_MEM_ALLOC_ENABLE; hiere.memory)
    huge_pages: bool = False
    # compiled oneDNN CPU kernels kept, one per tensor shape, and ideep's per-shape cache (0: none, ideep 1;
    # None: their own 1,024 each; hiere.memory). 0 by default: same losses, the same or less time, and a fraction
    # of the memory for BiLSTM-RE (2.26 -> 0.94 GB), ATLOP, KMGRE and the CNN/PCNN bag models (docs/results.md)
    kernel_cache: int | None = 0

    def __post_init__(self) -> None:
        problems = []
        hints = typing.get_type_hints(type(self))
        for field in dataclasses.fields(self):
            try:
                value = _coerce(f"trainer.{field.name}", getattr(self, field.name), hints[field.name])
            except HiereConfigError as error:
                problems.append(str(error))
                continue
            object.__setattr__(self, field.name, value)
        if not problems:
            problems = [f"trainer.{name}={getattr(self, name)!r}: {rule}" for name, rule in self._range_problems()]
        if problems:
            raise HiereConfigError("; ".join(problems))

    def _range_problems(self) -> list[tuple[str, str]]:
        checks = [
            ("epochs", self.epochs >= 1, "must be >= 1"),
            ("device", DEVICE_PATTERN.fullmatch(self.device) is not None, "must be auto, cpu, cuda or cuda:N"),
            ("batch_size", self.batch_size >= 1, "must be >= 1"),
            ("eval_batch_size", self.eval_batch_size >= 1, "must be >= 1"),
            ("optimizer", self.optimizer in OPTIMIZERS, f"must be one of {', '.join(OPTIMIZERS)}"),
            ("lr", self.lr > 0, "must be > 0"),
            ("encoder_lr", self.encoder_lr is None or self.encoder_lr > 0, "must be null or > 0"),
            ("weight_decay", self.weight_decay >= 0, "must be >= 0"),
            ("adam_epsilon", self.adam_epsilon > 0, "must be > 0"),
            ("momentum", self.momentum >= 0, "must be >= 0"),
            ("warmup_ratio", 0 <= self.warmup_ratio < 1, "must be in [0, 1)"),
            ("schedule", self.schedule in SCHEDULES, f"must be one of {', '.join(SCHEDULES)}"),
            ("weight_decay_exempt", self.weight_decay_exempt in DECAY_EXEMPTIONS,
             f"must be one of {', '.join(DECAY_EXEMPTIONS)}"),
            ("max_grad_norm", self.max_grad_norm >= 0, "must be >= 0 (0: no clipping)"),
            ("grad_accumulation", self.grad_accumulation >= 1, "must be >= 1"),
            ("length_buckets", self.length_buckets >= 0, "must be >= 0"),
            ("precision", self.precision in PRECISIONS, f"must be one of {', '.join(PRECISIONS)}"),
            ("patience", self.patience >= 0, "must be >= 0 (0: never stop early)"),
            ("eval_every", self.eval_every >= 1, "must be >= 1"),
            ("metric", self.metric is None or bool(self.metric), "must be null or a metric name"),
            ("num_threads", self.num_threads is None or self.num_threads >= 1, "must be null or >= 1"),
            ("max_steps", self.max_steps is None or self.max_steps >= 1, "must be null (no cap) or >= 1"),
            ("log_every", self.log_every >= 1, "must be >= 1"),
            ("profile_steps", self.profile_steps >= 0, "must be >= 0 (0: no profile)"),
            ("mmap_threshold_mb", 0 <= self.mmap_threshold_mb <= 32, "must be between 0 (glibc's own) and 32 MB"),
            ("kernel_cache", self.kernel_cache is None or self.kernel_cache >= 0,
             "must be null (oneDNN's own 1024) or >= 0 (0: none kept)"),
        ]
        return [(name, rule) for name, ok, rule in checks if not ok]

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainerConfig:
        """The ``trainer`` section (missing keys take their defaults; unknown keys are an error)."""
        if not isinstance(values, dict):
            raise HiereConfigError(f"the trainer section must be a mapping of keys, got {values!r}")
        known = [field.name for field in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise HiereConfigError(f"unknown trainer keys {unknown}; known: {sorted(known)}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """The ``data`` section: file paths (as written, relative to where ``hiere train`` runs) and slices.

    Unknown keys, a path that is not a string and a slice that is not ``[start, end)`` are one error each, at
    load time; whether the files exist is checked before training (:func:`check_data_files`).
    """

    train: str | None = None  # training file (DocRED JSON, PubTator, OpenNRE jsonl)
    dev: str | None = None  # dev file: model selection, thresholds, early stopping
    test: str | None = None  # scored once at the end into test_metrics.json
    relations: str | None = None  # DocRED rel_info.json or OpenNRE rel2id.json (else learned from train)
    long_tail: str | None = None  # bag models: long-tail relations, one a line (Hits@K)
    train_slice: list | None = None  # [start, end) of the training records (null: an open end)
    dev_slice: list | None = None
    test_slice: list | None = None

    def __post_init__(self) -> None:
        for key in DATA_FILES:
            value = getattr(self, key)
            if value is not None and not isinstance(value, str):
                raise HiereConfigError(f"data.{key} must be a file path, got {value!r}")
        for split in SPLITS:
            bounds = getattr(self, f"{split}_slice")
            if bounds is not None and not (
                isinstance(bounds, list) and len(bounds) == 2
                and all(bound is None or (isinstance(bound, int) and not isinstance(bound, bool)) for bound in bounds)
            ):
                raise HiereConfigError(f"data.{split}_slice must be [start, end) (integers or null), got {bounds!r}")

    @classmethod
    def from_dict(cls, values: Any) -> DataConfig:
        if not isinstance(values, dict):
            raise HiereConfigError(f"the data section must be a mapping of keys, got {values!r}")
        unknown = sorted(set(values) - set(DATA_KEYS), key=str)
        if unknown:
            raise HiereConfigError(f"unknown data keys {unknown}; known: {list(DATA_KEYS)}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """The keys that are set (a model directory's ``config.yaml`` lists only those)."""
        return {key: value for key, value in dataclasses.asdict(self).items() if value is not None}


DATA_KEYS = tuple(field.name for field in dataclasses.fields(DataConfig))  # the data section's keys


_TYPE_NAMES = {bool: "a bool", int: "an int", float: "a float", str: "a string", type(None): "null"}


def _coerce(key: str, value: Any, annotation: Any) -> Any:
    """``value`` as ``annotation`` (``int``, ``float``, ``str``, ``bool`` or one of them ``| None``).

    A float accepts an int and a numeric string (YAML 1.1 reads ``1e-5`` as a string); nothing else is converted.
    """
    kinds = typing.get_args(annotation) if isinstance(annotation, types.UnionType) else (annotation,)
    for kind in kinds:
        if kind is type(None) and value is None:
            return None
        if kind is bool and isinstance(value, bool):
            return value
        if kind is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if kind is str and isinstance(value, str):
            return value
        if kind is float and not isinstance(value, bool):
            number = _as_float(value)
            if number is not None:
                return number
    expected = " or ".join(_TYPE_NAMES[kind] for kind in kinds)
    not_finite = float in kinds and isinstance(value, float) and not math.isfinite(value)
    got = "a float that is not finite" if not_finite else type(value).__name__
    raise HiereConfigError(f"{key}={value!r}: expected {expected}, got {got}")


_SCALARS = (bool, int, float, str, type(None))


def coerce_value(key: str, value: Any, annotation: Any) -> Any:
    """``value`` as ``annotation`` when that is a scalar type (or a union of them); other values pass as they are.

    Used for the ``model`` section, whose dataclasses also hold lists and mappings (e.g. HiCLRE's ``lambdas``).
    """
    kinds = typing.get_args(annotation) if isinstance(annotation, types.UnionType) else (annotation,)
    if kinds and all(kind in _SCALARS for kind in kinds):
        return _coerce(key, value, annotation)
    return value


def _as_float(value: Any) -> float | None:
    """A finite float from an int, a float or a numeric string; None otherwise."""
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def load_config(path: str | Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """Read a YAML config (following ``extends:``), apply ``key=value`` overrides and :func:`resolve` it."""
    path = Path(path)
    config = _read_extended(path, [])
    overrides = overrides or []
    config = _drop_replaced_slices(config, overrides)
    config = apply_overrides(config, overrides)
    return resolve(config, base_dir=path.parent)


def _read_yaml_mapping(path: Path) -> dict[str, Any]:
    from hiere.io import read_text_file

    text = read_text_file(path, "config file")
    try:
        config = yaml.safe_load(text) or {}
    except yaml.YAMLError as error:
        raise HiereInputError(str(path), None, None, f"not valid YAML ({_one_line(error)})") from None
    except RecursionError:
        raise HiereInputError(str(path), None, None, "YAML nested too deeply to be read") from None
    if not isinstance(config, dict):
        raise HiereInputError(str(path), None, None, "a config must be a mapping of sections")
    return config


def _read_extended(path: Path, chain: list[Path]) -> dict[str, Any]:
    """``path`` laid over the file its ``extends:`` names (recursively; ``chain`` holds the files above it)."""
    config = _read_yaml_mapping(path)
    base = config.pop("extends", None)
    if base is None:
        return config
    if not isinstance(base, str) or not base.strip():
        raise HiereInputError(str(path), None, "extends", f"must be the path of a base config, got {base!r}")
    base_path = (path.parent / base).resolve()
    seen = [*chain, path.resolve()]
    if base_path in seen:
        cycle = " -> ".join(str(item) for item in [*seen, base_path])
        raise HiereInputError(str(path), None, "extends", f"configs extend each other in a cycle: {cycle}")
    if not base_path.is_file():
        raise HiereInputError(str(path), None, "extends", f"base config {base_path} does not exist")
    return merge_configs(_read_extended(base_path, seen), config)


def merge_configs(base: dict[str, Any], child: dict[str, Any]) -> dict[str, Any]:
    """``child`` over ``base``: mappings merge key by key (recursively), every other value replaces."""
    merged = copy.deepcopy(base)
    for key, value in child.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_configs(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _override_keys(overrides: list[str]) -> set[str]:
    return {item.split("=", 1)[0].strip() for item in overrides if "=" in item}


def _drop_replaced_slices(config: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Clear ``data.<split>_slice`` where ``--set data.<split>=...`` replaces the file it was chosen for."""
    keys = _override_keys(overrides)
    data = config.get("data")
    if not isinstance(data, dict):
        return config
    config = copy.deepcopy(config)
    for split in SPLITS:
        slice_key = f"{split}_slice"
        if f"data.{split}" in keys and f"data.{slice_key}" not in keys and config["data"].get(slice_key) is not None:
            LOGGER.warning("--set data.%s replaces the config's file, so its data.%s %s is dropped "
                           "(set --set data.%s=[START,END] to slice the new file)",
                           split, slice_key, config["data"][slice_key], slice_key)
            del config["data"][slice_key]
    return config


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())


def apply_overrides(config: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """``["trainer.epochs=1", "model.hidden=64"]`` -> a new config with those keys set (YAML-typed)."""
    config = copy.deepcopy(config)
    for item in overrides:
        if "=" not in item:
            raise HiereConfigError(f"--set expects key=value, got {item!r}")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except (yaml.YAMLError, RecursionError) as error:
            raise HiereConfigError(f"--set {item}: the value is not valid YAML ({_one_line(error)})") from None
        node = config
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise HiereConfigError(f"--set {key}: {part!r} is not a section")
        node[parts[-1]] = value
    return config


def resolve(config: dict[str, Any], base_dir: Path | None = None) -> dict[str, Any]:
    """Check the sections and keys, and coerce, check and complete the trainer settings.

    Data paths stay as written. Raises one :class:`HiereConfigError` naming every bad key.
    """
    config = copy.deepcopy(config)
    unknown = sorted(set(config) - set(SECTIONS), key=str)
    if unknown:
        raise HiereConfigError(f"unknown config sections {unknown}; known: {list(SECTIONS)}")
    model = config.get("model")
    if not isinstance(model, dict) or not model.get("name"):
        raise HiereConfigError("the config needs model.name (for example `model: {name: bilstm}`)")
    if not isinstance(model["name"], str):
        raise HiereConfigError(f"model.name must be a model name, got {model['name']!r}")
    data = DataConfig.from_dict(config.get("data") or {}).to_dict()
    config["data"] = data
    config["trainer"] = TrainerConfig.from_dict(config.get("trainer") or {}).to_dict()
    return config


def check_data_files(config: dict[str, Any]) -> None:
    """Every file the ``data`` section names must exist (checked before training, so a mistyped
    ``data.test`` is not found only after the last epoch)."""
    for key in DATA_FILES:
        path = get(config, f"data.{key}")
        if path and not Path(path).is_file():
            problem = "is a directory, expected a file" if Path(path).is_dir() else "file does not exist"
            raise HiereInputError(str(path), None, None, f"{problem} (data.{key})")


def get(config: dict[str, Any], dotted: str, default: Any = None) -> Any:
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node
