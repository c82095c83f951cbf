"""Every registered model honours the model contract, checked from the outside on real data slices.

For each name in the registry: ``hiere train`` (the trainer, one optimizer step) writes a complete model
directory; ``hiere.load`` restores it with nothing else; ``predict`` gives records of the design's form
(documents: the DocRED submission form; bags: every pair with every non-NA relation), the same records twice,
and the trainer's checkpoint records the step it took. (Shapes and gradients per model are tested in each
model's own test file.)
"""

from __future__ import annotations

import json
import math

import pytest
import torch

from conftest import REDOCRED, REL_INFO, SHARED_DATA
from hiere.config import resolve
from hiere.models import available_models, get_model_class

NYT10 = SHARED_DATA / "nyt10"
DOC_DATA = {"train": str(REDOCRED), "train_slice": [0, 2], "dev": str(REDOCRED), "dev_slice": [450, 452],
            "relations": str(REL_INFO)}
BAG_DATA = {"train": str(NYT10 / "nyt10sub_train90.txt"), "train_slice": [0, 24],
            "dev": str(NYT10 / "nyt10sub_val10.txt"), "dev_slice": [3, 7],  # bags of 1-2 sentences: fast
            "relations": str(NYT10 / "nyt10_rel2id.json")}
TRANSFORMER_DOC = {"max_length": 128, "window_overlap": 32, "emb_size": 64, "block_size": 16}
SMALL = {  # tiny layers so that each model trains one step in seconds
    "bilstm": {"hidden": 16},
    "hin": {"hidden": 16, "subspace_dim": 8},
    "atlop": TRANSFORMER_DOC,
    "kmgre": {**TRANSFORMER_DOC, "key_size": 16},
    "cnn_att": {"glove_vocab": 0, "train_words": True, "hidden": 8},
    "pcnn_att": {"glove_vocab": 0, "train_words": True, "hidden": 8},
    "hnre": {"glove_vocab": 0, "train_words": True, "hidden": 8},
    "bert_att": {"max_length": 32},
    "hiclre": {"max_length": 32, "heads": 4, "mlp_ratio": 1},
}


def test_every_registered_model_is_covered_here():
    assert sorted(SMALL) == available_models()


@pytest.fixture(scope="module", params=sorted(SMALL))
def trained(request, tmp_path_factory):
    from hiere.training.trainer import train

    name = request.param
    task = get_model_class(name).task
    config = resolve({
        "model": {"name": name, **SMALL[name]},
        "data": DOC_DATA if task == "doc" else BAG_DATA,
        "trainer": {"epochs": 1, "max_steps": 1, "batch_size": 2, "eval_batch_size": 4, "lr": 1e-2,
                    "progress": False, "device": "cpu", "precision": "fp32", "seed": 3},
    })
    model_dir = train(config, tmp_path_factory.mktemp(name))
    return name, task, model_dir


@pytest.fixture(scope="module")
def loaded(trained):
    """The model directory loaded once with ``hiere.load``, and two dev records of its task."""
    import hiere

    name, task, model_dir = trained
    predictor = hiere.load(model_dir, device="cpu")
    if task == "doc":
        dev = predictor.task.read(REDOCRED, relations=predictor.relations.relations)[450:452]
    else:
        dev = [bag for bag in predictor.read(BAG_DATA["dev"]) if bag.size <= 2][:3]  # small bags: fast
    return predictor, dev


def test_model_directory_is_complete_and_loads_with_nothing_else(trained):
    import hiere

    name, task, model_dir = trained
    for part in ("config.yaml", "model.safetensors", "resources", "runtime.json"):
        assert (model_dir / part).exists(), part
    checkpoint = torch.load(model_dir / "checkpoint" / "last.pt", map_location="cpu", weights_only=False)
    assert checkpoint["state"]["step"] == 1
    predictor = hiere.load(model_dir, device="cpu")
    assert predictor.model.name == name and predictor.model.task == task == predictor.task.name
    assert predictor.config["model"]["name"] == name
    assert math.isfinite(predictor.threshold)


def test_predictions_have_the_designed_form_and_repeat_exactly(trained, loaded):
    name, task, model_dir = trained
    predictor, dev = loaded
    first, second = predictor.predict(dev), predictor.predict(dev)
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)
    if task == "doc":
        titles = {doc.title: doc for doc in dev}
        for record in first:
            assert {"title", "h_idx", "t_idx", "r", "score", "evidence"} <= set(record)
            doc = titles[record["title"]]
            assert 0 <= record["h_idx"] < len(doc.entities) and 0 <= record["t_idx"] < len(doc.entities)
            assert record["h_idx"] != record["t_idx"] and record["r"] in predictor.relations.relations
            assert all(0 <= sentence < len(doc.sents) for sentence in record["evidence"])
    else:
        non_na = predictor.relations.relations[1:]  # index 0 is NA
        pairs = {(bag.head_id, bag.tail_id) for bag in dev}
        assert len(first) == len(pairs) * len(non_na)  # every pair x every non-NA relation: the full ranking
        assert {(record["h"], record["t"]) for record in first} == pairs
        assert all(record["relation"] in non_na and math.isfinite(record["score"]) for record in first)
