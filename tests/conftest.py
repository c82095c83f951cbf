"""Shared test fixtures: the real data in ../shared/data, offline Hugging Face, one thread."""

from __future__ import annotations

import json
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


def raw_text(document: dict) -> str:
    return " ".join(" ".join(sentence) for sentence in document["sents"])


@pytest.fixture(scope="module")
def scale_corpus(tmp_path_factory, redocred_raw) -> dict[str, Path]:
    """Inputs of tests/test_scale*.py: Re-DocRED dev texts as JSON lines (with bad records), plain lines and a JSON
    list; DocRED documents as a JSON list and a document a line (the last one bad)."""
    folder = tmp_path_factory.mktemp("corpus")
    records = [{"text": raw_text(doc), "title": doc["title"]} for doc in redocred_raw[:5]]
    lines = [json.dumps(record) for record in records[:3]]
    lines += ["{not json", json.dumps({"txt": "no text field"}), json.dumps(records[3]), "",
              json.dumps({"text": "abc\x00def\x00\x01\x02 binary", "title": "binary"}), json.dumps(records[4])]
    (folder / "docs.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    plain = "\n\n".join(raw_text(doc) for doc in redocred_raw[5:9]) + "\n"
    (folder / "plain.txt").write_text(plain, encoding="utf-8")
    (folder / "list.json").write_text(json.dumps([raw_text(doc) for doc in redocred_raw[9:12]], indent=1),
                                      encoding="utf-8")
    (folder / "docred.json").write_text(json.dumps(redocred_raw[:7], indent=1), encoding="utf-8")
    with open(folder / "docred.jsonl", "w", encoding="utf-8") as out:
        for doc in redocred_raw[:4]:
            out.write(json.dumps(doc) + "\n")
        bad_mention = {"name": "x", "sent_id": 99, "pos": [0, 1]}
        out.write(json.dumps({**redocred_raw[4], "vertexSet": [[bad_mention]]}) + "\n")
    return {path.name: path for path in folder.iterdir()}
