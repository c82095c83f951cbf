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


@pytest.fixture(scope="session")
def redocred_docs():
    from hiere.data.docred import read_docred

    return read_docred(REDOCRED)


@pytest.fixture(scope="session")
def redocred_raw():
    import json

    return json.loads(REDOCRED.read_text(encoding="utf-8"))
