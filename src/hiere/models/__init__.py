"""Model registry: ``name -> class``. A new model is one module plus one line in :data:`MODEL_MODULES`."""

from __future__ import annotations

import importlib

from hiere.errors import HiereConfigError
from hiere.models.base import HiereModel

# model name -> module that defines it (imported lazily, so a bag-level user never imports spaCy etc.)
MODEL_MODULES: dict[str, str] = {
    "bilstm": "hiere.models.doc.bilstm",
    "atlop": "hiere.models.doc.atlop",
    "kmgre": "hiere.models.doc.kmgre",
    "hin": "hiere.models.doc.hin",
    "cnn_att": "hiere.models.bag.att",
    "pcnn_att": "hiere.models.bag.att",
    "hnre": "hiere.models.bag.hnre",
    "bert_att": "hiere.models.bag.bert_att",
    "hiclre": "hiere.models.bag.hiclre",
}


def get_model_class(name: str) -> type[HiereModel]:
    if name not in MODEL_MODULES:
        raise HiereConfigError(f"unknown model {name!r}; available: {', '.join(sorted(MODEL_MODULES))}")
    module = importlib.import_module(MODEL_MODULES[name])
    for value in vars(module).values():
        if isinstance(value, type) and issubclass(value, HiereModel) and getattr(value, "name", None) == name:
            return value
    raise HiereConfigError(f"module {MODEL_MODULES[name]} defines no model named {name!r}")


def available_models() -> list[str]:
    return sorted(MODEL_MODULES)
