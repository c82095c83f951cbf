"""The contract every hiere model follows (one file per model, registered in ``hiere.models``).

Life of a model:

1. ``resources = Model.build_resources(config, train_examples, relations)`` — vocabularies and maps
   learned from the training data only; saved in the model directory.
2. ``model = Model(config, resources)`` — builds layers; loads no pretrained weights.
3. ``model.init_pretrained()`` — a *new* run only: copies GloVe vectors / Hugging Face weights in.
   A saved model restores everything from its own ``model.safetensors`` instead.
4. ``features = model.featurize(example)`` once per example (cached by the trainer), then
   ``batch = model.collate(list_of_features)`` and ``output = model(batch)``.

``forward`` returns a dict:

* ``"scores"``: ``(n_rows, n_relations)`` float tensor, column 0 = NA. A *document* model has one row
  per candidate entity pair, listed in ``batch["pairs"]`` as ``(position_in_batch, h_idx, t_idx)``;
  a *bag* model one row per bag, in batch order.
  ``decision == "global"``: scores are probabilities and a fact is predicted when its score reaches
  a global threshold tuned on dev. ``"adaptive"``: scores are ``logit_r - logit_TH`` (ATLOP) and the
  threshold is 0. ``"ranking"`` (bag models): scores are probabilities ranked for PR curves.
* ``"loss"``: a scalar when the batch has labels (training), else absent.
* ``"loss_terms"`` (optional, training): ``{name: detached scalar}``, the parts a composite loss is made
  of (HiCLRE's InfoNCE per level, KMGRE's focal loss); the trainer logs their epoch means in
  ``history.json``.
* ``"explanations"`` (optional): a list with one JSON-able dict per row (attention weights, key pairs).

Tensors in a batch may live anywhere; the trainer moves every tensor (also inside lists/dicts)
to the device. Non-tensor values pass through untouched.
"""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from pathlib import Path
from typing import Any, ClassVar

from torch import nn

from hiere.config import coerce_value
from hiere.data.relations import RelationMap
from hiere.data.vocab import Vocab
from hiere.errors import HiereConfigError


@dataclasses.dataclass
class Resources:
    """Everything besides the weights that a model needs to run: saved as JSON in ``model_dir/resources``."""

    relations: RelationMap
    vocabs: dict[str, Vocab] = dataclasses.field(default_factory=dict)
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)  # JSON-able (hierarchy, sizes, ...)
    model_dir: Path | None = None  # set when loaded from a saved model (assets such as a tokenizer live here)

    def save(self, model_dir: str | Path) -> None:
        from hiere.io import write_json_atomic

        folder = Path(model_dir) / "resources"
        folder.mkdir(parents=True, exist_ok=True)
        self.relations.save(folder / "relations.json")
        for name, vocab in self.vocabs.items():
            vocab.save(folder / f"vocab_{name}.json")
        write_json_atomic(folder / "extra.json", self.extra, indent=1)

    @classmethod
    def load(cls, model_dir: str | Path) -> Resources:
        folder = Path(model_dir) / "resources"
        vocabs = {p.stem[len("vocab_") :]: Vocab.load(p) for p in sorted(folder.glob("vocab_*.json"))}
        extra = json.loads((folder / "extra.json").read_text(encoding="utf-8"))
        return cls(RelationMap.load(folder / "relations.json"), vocabs, extra, Path(model_dir))


@dataclasses.dataclass
class ModelConfig:
    """Base for each model's hyperparameters; subclasses set the paper's defaults.

    :meth:`from_dict` checks the ranges every model shares: numbers are finite and not negative, a
    ``*dropout`` is in [0, 1), and an integer whose default is positive (a size, a count) is at least 1
    unless its name is in :attr:`zero_allowed` (where 0 means "none" or "off").
    """

    zero_allowed: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known - {"name"})
        if unknown:
            raise HiereConfigError(f"unknown model keys {unknown} for {cls.__qualname__}; known: {sorted(known)}")
        hints = typing.get_type_hints(cls)
        config = cls(**{k: coerce_value(f"model.{k}", v, hints[k]) for k, v in values.items() if k in known})
        problems = config.range_problems()
        if problems:
            raise HiereConfigError("; ".join(problems))
        return config

    def range_problems(self) -> list[str]:
        problems = []
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            default = field.default
            if not math.isfinite(value) or value < 0:
                rule = "must be a finite number >= 0"
            elif "dropout" in field.name and value >= 1:
                rule = "must be in [0, 1)"
            elif (isinstance(value, int) and value == 0 and isinstance(default, int)
                  and not isinstance(default, bool) and default > 0 and field.name not in self.zero_allowed):
                rule = "must be >= 1"
            else:
                continue
            problems.append(f"model.{field.name}={value!r}: {rule}")
        return problems

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class HiereModel(nn.Module):
    name: ClassVar[str]
    task: ClassVar[str]  # "doc" or "bag"
    decision: ClassVar[str] = "global"  # "global" | "adaptive" | "ranking" (see module docstring)
    # at most this many input tokens (hiere.training.inference.feature_size) in one prediction batch; None: only
    # the eval batch size bounds it
    predict_batch_tokens: ClassVar[int | None] = None
    Config: ClassVar[type[ModelConfig]] = ModelConfig

    def __init__(self, config: ModelConfig, resources: Resources):
        super().__init__()
        self.config = config
        self.resources = resources

    @property
    def relations(self) -> RelationMap:
        return self.resources.relations

    @classmethod
    def build_resources(cls, config: ModelConfig, train_examples: list, relations: RelationMap) -> Resources:
        return Resources(relations)

    def init_pretrained(self) -> None:
        """Load pretrained weights for a new run (GloVe, Hugging Face). Default: nothing."""

    def featurize(self, example: Any) -> dict[str, Any]:
        raise NotImplementedError

    def collate(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def training_read_options(cls, config: ModelConfig) -> dict[str, Any]:
        """Extra keyword arguments for ``task.read`` of the *training* file (bag models:
        ``{"mode": "pair_relation"}`` for OpenNRE-style training bags). Dev/test are read with defaults."""
        return {}

    # weight names of earlier hiere versions -> today's (a prefix each), so older model directories still load
    renamed_weights: ClassVar[dict[str, str]] = {}

    @classmethod
    def upgrade_state_dict(cls, state: dict[str, Any]) -> dict[str, Any]:
        """``state`` with the names of :attr:`renamed_weights` replaced by today's."""
        upgraded = {}
        for name, value in state.items():
            for old, new in cls.renamed_weights.items():
                if name.startswith(old):
                    name = new + name[len(old):]
                    break
            upgraded[name] = value
        return upgraded

    def on_epoch_start(self, epoch: int, total_epochs: int | None = None) -> None:
        """Hook for schedules inside a model (warm-up phases, EM steps, memory decay): the trainer calls it
        before each epoch with ``epoch`` counted from 1 and ``total_epochs`` = ``trainer.epochs``."""

    def save_assets(self, model_dir: Path) -> None:
        """Write files besides weights and resources that loading needs (a tokenizer, an HF config)."""

    def parameter_groups(self, lr: float, encoder_lr: float | None, weight_decay: float) -> list[dict[str, Any]]:
        """Optimizer groups; parameters whose name starts with ``encoder.transformer`` get ``encoder_lr``."""
        pretrained, rest = [], []
        for name, parameter in self.named_parameters():
            if parameter.requires_grad:
                (pretrained if name.startswith("encoder.transformer") else rest).append(parameter)
        groups = [{"params": rest, "lr": lr, "weight_decay": weight_decay}]
        if pretrained:
            groups.append({"params": pretrained, "lr": encoder_lr or lr, "weight_decay": weight_decay})
        return groups
