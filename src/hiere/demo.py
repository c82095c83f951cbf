"""``hiere demo``: train BiLSTM-RE on the bundled Re-DocRED sample, evaluate it, extract from a sample text."""

from __future__ import annotations

import json
import sys
from importlib import resources
from pathlib import Path

SAMPLE_TEXT_DOC = 0  # the first document of the bundled dev sample is shown as raw text


def sample_path(name: str) -> Path:
    return Path(str(resources.files("hiere") / "resources" / name))


def demo_config(epochs: int | None = None) -> dict:
    from hiere.config import resolve

    return resolve({
        "model": {"name": "bilstm", "glove": "default", "hidden": 128},
        "data": {
            "train": str(sample_path("sample_train.json")),
            "dev": str(sample_path("sample_dev.json")),
            "relations": str(sample_path("rel_info.json")),
        },
        "trainer": {"epochs": epochs or 15, "seed": 42, "device": "auto", "batch_size": 8, "eval_batch_size": 16,
                    "optimizer": "adam", "lr": 0.001, "max_grad_norm": 5.0},
    })


def run_demo(output: str | Path = "runs/demo", epochs: int | None = None) -> int:
    from hiere.api import load
    from hiere.data.docred import read_docred
    from hiere.training.trainer import train

    config = demo_config(epochs)
    print(f"1/3 training bilstm on {config['data']['train']} (100 Re-DocRED documents) "
          f"for {config['trainer']['epochs']} epochs; dev = 25 other documents", file=sys.stderr)
    train(config, output)
    predictor = load(output)
    print("2/3 dev metrics (threshold tuned on dev):", file=sys.stderr)
    metrics = predictor.evaluate(config["data"]["dev"], train=config["data"]["train"])
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()}, indent=1))

    document = read_docred(config["data"]["dev"])[SAMPLE_TEXT_DOC]
    text = " ".join(" ".join(sent) for sent in document.sents)
    print(f"3/3 triples extracted from the raw text of {document.title!r}:\n{text}\n", file=sys.stderr)
    try:
        from hiere.extract import format_table
    except ImportError:
        format_table = None
    triples = predictor.extract(text)
    if format_table is not None:
        print(format_table(triples))
    else:
        for triple in triples:
            print(json.dumps(triple, ensure_ascii=False))
    return 0
