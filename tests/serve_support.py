"""Small trained models for the ``hiere serve`` tests: real Re-DocRED and NYT10 slices, a few seconds of training."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from conftest import REDOCRED, REL_INFO, SHARED_DATA

REPO = Path(__file__).resolve().parents[1]
NYT10 = SHARED_DATA / "nyt10"


def train_bilstm(out: Path) -> Path:
    """BiLSTM-RE, 2 epochs on 6 Re-DocRED documents (its dev threshold lets it answer facts on any text)."""
    from hiere.config import resolve
    from hiere.training.trainer import train

    config = resolve({
        "model": {"name": "bilstm", "hidden": 16, "type_dim": 4, "coref_dim": 4, "distance_dim": 4},
        "data": {"train": str(REDOCRED), "train_slice": [0, 6], "dev": str(REDOCRED), "dev_slice": [450, 453],
                 "relations": str(REL_INFO)},
        "trainer": {"epochs": 2, "seed": 7, "device": "cpu", "batch_size": 2, "eval_batch_size": 4, "lr": 0.01,
                    "optimizer": "adam", "progress": False, "num_threads": 1},
    })
    return Path(train(config, out))


def train_hnre(out: Path) -> Path:
    """HNRE (3 levels of sentence attention), 2 steps on 300 NYT10 sentences."""
    from hiere.config import load_config
    from hiere.training.trainer import train

    config = load_config(REPO / "configs" / "hnre_pcnn_nyt10.yaml", [
        f"data.train={NYT10 / 'nyt10sub_train90.txt'}", "data.train_slice=[0,300]",
        f"data.dev={NYT10 / 'nyt10sub_val10.txt'}", "data.dev_slice=[0,100]", "data.test=null",
        f"data.relations={NYT10 / 'nyt10_rel2id.json'}", "data.long_tail=null",
        "trainer.epochs=1", "trainer.max_steps=2", "trainer.progress=false", "trainer.num_threads=1",
        "trainer.device=cpu", "model.glove_vocab=1000", "model.hidden=16",
    ])
    return Path(train(config, out))


@cache
def redocred_records() -> tuple[dict, ...]:
    return tuple(json.loads(REDOCRED.read_text(encoding="utf-8")))


def document_text(index: int) -> str:
    """The raw text of a Re-DocRED dev document (tokens joined by spaces, as ``hiere demo`` shows it)."""
    document = redocred_records()[index]
    return " ".join(" ".join(sentence) for sentence in document["sents"])
