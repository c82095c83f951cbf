"""Tasks tie data files, predictions and metrics together for the trainer and the API.

A task offers:

* ``read(path, relations=None, require_labels=False)`` -> examples (documents or bags), validated;
* ``relation_ids(examples)`` -> the relation ids used by gold labels;
* ``decode(examples, rows, scores, relations, threshold, explanations)`` -> prediction records
  (design.md, Predictions); ``rows`` are ``(example_index, key)`` per score row;
* ``tune_threshold(examples, rows, scores, relations)`` -> a threshold chosen on dev data;
* ``metrics(examples, records, train=None, **options)`` -> the metrics dict; ``primary_metric``.
"""

from __future__ import annotations

import importlib

from hiere.errors import HiereConfigError

TASK_MODULES = {"doc": "hiere.tasks.doc", "bag": "hiere.tasks.bag"}


def get_task(name: str):
    if name not in TASK_MODULES:
        raise HiereConfigError(f"unknown task {name!r}; available: {sorted(TASK_MODULES)}")
    return importlib.import_module(TASK_MODULES[name]).TASK
