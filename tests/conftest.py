"""Shared test fixtures: the real data in ../shared/data, offline Hugging Face, one thread."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
REDOCRED = SHARED_DATA / "redocred" / "dev_revised.json"
REL_INFO = SHARED_DATA / "redocred" / "rel_info.json"


def write_docred(documents, path) -> None:
    """A DocRED JSON file of ``documents`` (hiere ``Document`` objects)."""
    import json

    Path(path).write_text(json.dumps([doc.to_json() for doc in documents]), encoding="utf-8")


@pytest.fixture(scope="session")
def redocred_docs():
    from hiere.data.docred import read_docred

    return read_docred(REDOCRED)


@pytest.fixture(scope="session")
def redocred_raw():
    import json

    return json.loads(REDOCRED.read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def tiny_bilstm_dir(tmp_path_factory):
    """A real model directory, cheap to make: bilstm (hidden 16) trained for 2 steps on 4 Re-DocRED documents."""
    from hiere.config import load_config
    from hiere.training.trainer import train

    config = load_config(REPO / "configs" / "bilstm_redocred.yaml", [
        f"data.train={REDOCRED}", "data.train_slice=[0,4]", f"data.dev={REDOCRED}", "data.dev_slice=[4,6]",
        f"data.relations={REL_INFO}", "trainer.epochs=1", "trainer.max_steps=2", "trainer.progress=false",
        "model.hidden=16",
    ])
    return train(config, tmp_path_factory.mktemp("tiny_bilstm"))
