"""The task contract (hiere.tasks.Task) and the options each task accepts."""

from __future__ import annotations

import pytest

from conftest import REDOCRED, SHARED_DATA
from hiere.errors import HiereConfigError
from hiere.tasks import TASK_MODULES, Task, get_task


@pytest.mark.parametrize("name", sorted(TASK_MODULES))
def test_every_task_implements_the_protocol(name):
    task = get_task(name)
    assert isinstance(task, Task) and task.name == name
    for member in ("read", "parse", "relation_ids", "decode", "tune_threshold", "metrics", "metrics_from_scores",
                   "metric_options", "metrics_train", "score_files"):
        assert callable(getattr(task, member)), member
    assert task.request_field in ("documents", "sentences") and task.level.endswith("-level")
    assert task.ranked is not task.evidence  # bags: a ranking explained by attention; documents: facts with evidence


def test_document_task_rejects_bag_only_options_and_keeps_train_for_ign():
    task = get_task("doc")
    with pytest.raises(HiereConfigError, match="for bag models"):
        task.metric_options(long_tail="rel100.txt")
    with pytest.raises(HiereConfigError, match="takes one predictions file"):
        task.score_files(REDOCRED, ["a.json", "b.json"])
    assert task.metrics_train(["doc"]) == ["doc"] and task.evidence


def test_bag_task_reads_the_long_tail_file_and_rejects_document_options(tmp_path):
    task = get_task("bag")
    options = task.metric_options(long_tail=str(SHARED_DATA / "hnre" / "rel100.txt"), plot="pr.png")
    assert options["plot"] == "pr.png" and len(options["long_tail"]) > 0
    assert task.metric_options() == {"long_tail": None} and task.metrics_train(["bag"]) is None
    with pytest.raises(HiereConfigError, match="for document-level scoring"):
        task.score_files("gold.txt", ["pred.json"], train="train.json")


def test_evidence_options_on_a_bag_model_are_one_clear_error(tmp_path, capsys):
    from hiere import cli
    from hiere.config import resolve
    from hiere.training.trainer import train

    nyt = SHARED_DATA / "nyt10"
    model_dir = train(resolve({
        "model": {"name": "cnn_att", "glove_vocab": 0, "train_words": True, "hidden": 8},
        "data": {"train": str(nyt / "nyt10sub_train90.txt"), "train_slice": [0, 24],
                 "relations": str(nyt / "nyt10_rel2id.json")},
        "trainer": {"epochs": 1, "max_steps": 1, "progress": False, "device": "cpu"},
    }), tmp_path / "cnn")
    code = cli.main(["predict", str(model_dir), str(SHARED_DATA / "nyt10" / "nyt10sub_val10.txt"),
                     "-o", str(tmp_path / "p.json"), "--evidence-top-k", "2"])
    assert code == 2
    assert "evidence options are for document models" in capsys.readouterr().err
