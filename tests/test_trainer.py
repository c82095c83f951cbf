"""The trainer end to end with BiLSTM-RE on a few real Re-DocRED documents: model directory, API, resume."""

from __future__ import annotations

import json
import os

import pytest
import torch
from safetensors.torch import load_file

import hiere
from conftest import REDOCRED, REL_INFO
from hiere.config import TrainerConfig, apply_overrides, resolve
from hiere.errors import HiereConfigError


def tiny_config(**trainer):
    return resolve({
        "model": {"name": "bilstm", "hidden": 16, "type_dim": 4, "coref_dim": 4, "distance_dim": 4},
        "data": {"train": str(REDOCRED), "train_slice": [0, 6], "dev": str(REDOCRED), "dev_slice": [450, 453],
                 "relations": str(REL_INFO)},
        "trainer": {"epochs": 2, "seed": 7, "device": "cpu", "batch_size": 2, "eval_batch_size": 4, "lr": 0.01,
                    "optimizer": "adam", "progress": False, "num_threads": 1, "log_every": 2, **trainer},
    })


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from hiere.training.trainer import train

    out = tmp_path_factory.mktemp("bilstm")
    train(tiny_config(), out)
    return out


def test_model_directory_holds_everything(trained):
    for name in ("config.yaml", "model.safetensors", "threshold.json", "train.log", "history.json", "runtime.json",
                 "resources/relations.json", "resources/vocab_words.json", "resources/vocab_types.json",
                 "checkpoint/last.pt", "dev_metrics.json"):
        assert (trained / name).exists(), name
    history = json.loads((trained / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]
    assert all("f1" in h["dev"] and "ign_f1" in h["dev"] for h in history)
    peaks = [h["peak_rss_mb"] for h in history]  # the process's high-water mark after training, after dev
    assert all(0 < p["train"] <= p["dev"] for p in peaks) and peaks[0]["dev"] <= peaks[1]["train"]
    log = (trained / "train.log").read_text()
    assert "epoch 2: loss" in log and "epoch 1 batch 2/3: loss" in log  # per-batch lines (log_every=2)


def test_resolved_precision_is_logged_and_recorded(trained):
    from hiere.training.inference import resolve_precision

    resolved = resolve_precision(torch.device("cpu"), "auto")  # bf16 where this CPU has bf16 units
    runtime = json.loads((trained / "runtime.json").read_text())
    assert runtime["precision"] == "auto" and runtime["precision_resolved"] == resolved
    assert runtime["device"] == "cpu" and runtime["bf16_units"] == (resolved == "bf16")
    assert f"precision {resolved} (trainer.precision=auto" in (trained / "train.log").read_text()
    assert hiere.load(trained, device="cpu").precision == resolved


def test_load_predict_and_evaluate_round_trip(trained, redocred_raw, redocred_docs):
    predictor = hiere.load(trained, device="cpu")
    records = predictor.predict(redocred_raw[450:452])
    assert records, "a threshold tuned on dev predicts something on dev documents"
    titles = {redocred_raw[450]["title"], redocred_raw[451]["title"]}
    for record in records:
        assert set(record) >= {"title", "h_idx", "t_idx", "r", "score"}
        assert record["title"] in titles and record["r"] in predictor.relations.relations[1:]
        assert record["score"] >= predictor.threshold
    dev_metrics = json.loads((trained / "dev_metrics.json").read_text())
    again = predictor.evaluate(redocred_docs[450:453], train=redocred_docs[:6])
    assert again["f1"] == pytest.approx(dev_metrics["f1"], abs=1e-6)
    assert again["ign_f1"] == pytest.approx(dev_metrics["ign_f1"], abs=1e-6)


def test_resume_after_a_killed_epoch_reaches_the_same_weights_bit_for_bit(tmp_path, trained, monkeypatch):
    from hiere.training import trainer as trainer_module

    calls = {"n": 0}
    real_save = trainer_module.save_checkpoint

    def save_then_die(path, state):
        real_save(path, state)
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyboardInterrupt("killed after epoch 1")

    monkeypatch.setattr(trainer_module, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        trainer_module.train(tiny_config(), tmp_path)
    assert json.loads((tmp_path / "history.json").read_text())[-1]["epoch"] == 1
    monkeypatch.setattr(trainer_module, "save_checkpoint", real_save)
    trainer_module.train(tiny_config(), tmp_path, resume=True)
    resumed = torch.load(tmp_path / "checkpoint" / "last.pt", weights_only=False)["model"]
    straight = torch.load(trained / "checkpoint" / "last.pt", weights_only=False)["model"]
    for name, tensor in straight.items():
        assert torch.equal(tensor, resumed[name]), name
    best_resumed = load_file(tmp_path / "model.safetensors")
    best_straight = load_file(trained / "model.safetensors")
    assert all(torch.equal(best_straight[k], best_resumed[k]) for k in best_straight)


def test_resume_of_a_run_that_stopped_early_trains_no_further(tmp_path, monkeypatch):
    from hiere.training import trainer as trainer_module

    dev_f1 = iter([0.30, 0.20, 0.25, 0.50, 0.60])  # epoch 1 best, epochs 2-3 worse: patience 2 stops after 3
    real_evaluate = trainer_module.Evaluator.evaluate

    def scripted(self, *args, **kwargs):
        metrics, threshold = real_evaluate(self, *args, **kwargs)
        return {**metrics, "f1": next(dev_f1)}, threshold

    monkeypatch.setattr(trainer_module.Evaluator, "evaluate", scripted)
    trainer_module.train(tiny_config(epochs=5, patience=2), tmp_path)
    assert [h["epoch"] for h in json.loads((tmp_path / "history.json").read_text())] == [1, 2, 3]
    weights = load_file(tmp_path / "model.safetensors")
    trainer_module.train(tiny_config(epochs=5, patience=2), tmp_path, resume=True)
    assert [h["epoch"] for h in json.loads((tmp_path / "history.json").read_text())] == [1, 2, 3]
    assert "nothing left to train" in (tmp_path / "train.log").read_text()
    assert all(torch.equal(weights[k], v) for k, v in load_file(tmp_path / "model.safetensors").items())


def test_overrides_and_config_errors():
    overrides = ["trainer.epochs=3", "model.hidden=64", "data.train_slice=[0, 5]"]
    config = apply_overrides({"model": {"name": "bilstm"}}, overrides)
    assert config["trainer"]["epochs"] == 3 and config["model"]["hidden"] == 64
    assert config["data"]["train_slice"] == [0, 5]
    with pytest.raises(HiereConfigError, match="key=value"):
        apply_overrides({}, ["trainer.epochs"])
    with pytest.raises(HiereConfigError, match="unknown trainer keys"):
        resolve({"model": {"name": "bilstm"}, "trainer": {"epoch": 3}})
    from hiere.models import get_model_class

    with pytest.raises(HiereConfigError, match="unknown model keys"):
        get_model_class("bilstm").Config.from_dict({"hiden": 3})
    with pytest.raises(HiereConfigError, match="unknown model 'lstm'"):
        get_model_class("lstm")


def test_bilstm_gradients_reach_every_trainable_parameter(redocred_docs):
    from hiere.data.relations import RelationMap
    from hiere.models.doc.bilstm import BiLSTMRE

    config = BiLSTMRE.Config(hidden=8, type_dim=4, coref_dim=4, distance_dim=4, dropout=0.0)
    relations = RelationMap.from_rel_info(REL_INFO)
    docs = redocred_docs[:2]
    model = BiLSTMRE(config, BiLSTMRE.build_resources(config, docs, relations))
    batch = model.collate([model.featurize(d) for d in docs])
    model.train()
    output = model(batch)
    n_pairs = sum(len(d.entities) * (len(d.entities) - 1) for d in docs)
    assert output["scores"].shape == (n_pairs, len(relations))
    output["loss"].backward()
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
    assert not model.encoder.embedding.weight.requires_grad  # frozen GloVe by default


def test_entity_pair_bilinear_equals_bilinear_on_concatenations():
    from hiere.models.layers import EntityPairBilinear

    torch.manual_seed(0)
    layer = EntityPairBilinear(entity_dim=6, distance_dim=3, out=5)
    entities = torch.randn(2, 4, 6)
    distances = torch.randn(20, 3)
    pairs = [(b, h, t) for b in range(2) for h in range(4) for t in range(4) if h != t]
    pair_doc, pair_h, pair_t = (torch.tensor(column) for column in zip(*pairs, strict=True))
    distance_ht = torch.randint(0, 20, (len(pairs),))
    distance_th = torch.randint(0, 20, (len(pairs),))
    fast = layer(entities, distances, pair_doc, pair_h, pair_t, distance_ht, distance_th)
    head = torch.cat([entities[pair_doc, pair_h], distances[distance_ht]], dim=-1)
    tail = torch.cat([entities[pair_doc, pair_t], distances[distance_th]], dim=-1)
    reference = torch.nn.functional.bilinear(head, tail, layer.bilinear.weight, layer.bilinear.bias)
    torch.testing.assert_close(fast, reference, atol=1e-5, rtol=1e-5)


def test_length_buckets_sort_each_window_and_shuffle_batches(redocred_docs):
    from hiere.data.relations import RelationMap
    from hiere.models import get_model_class
    from hiere.training.inference import feature_size
    from hiere.training.trainer import batches_per_epoch, epoch_batches

    model_class = get_model_class("bilstm")
    model_config = model_class.Config.from_dict(tiny_config()["model"])
    docs = redocred_docs[:24]
    resources = model_class.build_resources(model_config, docs, RelationMap.from_rel_info(REL_INFO))
    features = [model_class(model_config, resources).featurize(doc) for doc in docs]
    assert feature_size(features[0]) == len(docs[0].tokens)
    order = torch.randperm(24, generator=torch.Generator().manual_seed(0)).tolist()

    assert epoch_batches(order, 5, features, 0, seed=1) == [order[i : i + 5] for i in range(0, 24, 5)]
    batches = epoch_batches(order, 3, features, 4, seed=1)  # windows of 12 examples -> 4 batches each
    expected = []
    for start in (0, 12):  # each window sorted by length, then cut
        ranked = sorted(order[start : start + 12], key=lambda i: feature_size(features[i]))
        expected.extend(ranked[i : i + 3] for i in range(0, 12, 3))
    assert sorted(batches) == sorted(expected)
    assert batches != expected  # the batches are shuffled
    assert epoch_batches(order, 3, features, 4, seed=1) == batches  # the same on --resume
    assert epoch_batches(order, 3, features, 4, seed=2) != batches  # a new epoch, a new batch order
    # a last batch under a quarter of the batch size joins the one before it; at a quarter or more it stays
    assert epoch_batches(order, 10, features, 0, seed=1) == [order[:10], order[10:20], order[20:]]  # 4 left: kept
    assert epoch_batches(order, 11, features, 0, seed=1) == [order[:11], order[11:]]  # 2 left (2 * 4 < 11): merged
    assert epoch_batches(order, 13, features, 0, seed=1) == [order[:13], order[13:]]
    assert epoch_batches(order[:21], 10, features, 0, seed=1) == [order[:10], order[10:21]]  # 1 left: merged
    for size in (3, 5, 10, 11, 13, 24, 25, 40):  # the scheduler's count of batches is the count cut
        for n in (order[:1], order[:21], order):
            assert batches_per_epoch(len(n), size) == len(epoch_batches(n, size, features, 0, seed=1)), (len(n), size)
    bucketed = epoch_batches(order[:21], 10, features, 2, seed=1)
    assert sorted(len(b) for b in bucketed) == [10, 11] and sorted(i for b in bucketed for i in b) == sorted(order[:21])


def test_fused_optimizer_where_supported():
    from hiere.training.trainer import make_optimizer

    model = torch.nn.Linear(3, 2)
    model.parameter_groups = lambda lr, encoder_lr, weight_decay: [{"params": list(model.parameters()), "lr": lr}]
    trainer = resolve({"model": {"name": "bilstm"}})["trainer"]
    assert trainer["fused"] is None and trainer["length_buckets"] == 0
    assert make_optimizer(model, TrainerConfig(optimizer="adamw")).defaults["fused"] is True
    assert not make_optimizer(model, TrainerConfig(optimizer="adam", fused=False)).defaults["fused"]
    assert isinstance(make_optimizer(model, TrainerConfig(optimizer="sgd")), torch.optim.SGD)
    with pytest.raises(HiereConfigError, match="fused=true needs optimizer adam or adamw"):
        make_optimizer(model, TrainerConfig(optimizer="sgd", fused=True))


def test_weight_decay_exempt_bias_norm_splits_the_groups():
    from hiere.training.trainer import decay_exempt_names, make_optimizer

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(3, 3)
            self.LayerNorm = torch.nn.LayerNorm(3)
            self.diag = torch.nn.Parameter(torch.ones(3))  # 1-d but neither a bias nor a norm: decays

        def parameter_groups(self, lr, encoder_lr, weight_decay):
            return [{"params": list(self.parameters()), "lr": lr, "weight_decay": weight_decay}]

    model = Tiny()
    assert decay_exempt_names(model) == {"linear.bias", "LayerNorm.weight", "LayerNorm.bias"}
    optimizer = make_optimizer(model, TrainerConfig(weight_decay=0.01, weight_decay_exempt="bias_norm"))
    by_decay = {group["weight_decay"]: {id(p) for p in group["params"]} for group in optimizer.param_groups}
    assert by_decay[0.01] == {id(model.linear.weight), id(model.diag)}
    assert by_decay[0.0] == {id(model.linear.bias), id(model.LayerNorm.weight), id(model.LayerNorm.bias)}
    assert all(group["lr"] == 1e-3 for group in optimizer.param_groups)
    default = make_optimizer(model, TrainerConfig(weight_decay=0.01))
    assert [group["weight_decay"] for group in default.param_groups] == [0.01]  # none: everything decays
    with pytest.raises(HiereConfigError, match="trainer.weight_decay_exempt='norm': must be one of none, bias_norm"):
        TrainerConfig(weight_decay_exempt="norm")


def test_without_a_terminal_progress_is_log_lines_not_bar_frames(tmp_path, capsys, monkeypatch):
    from hiere.training.trainer import train

    monkeypatch.setattr("sys.stderr.isatty", lambda: False, raising=False)
    train(tiny_config(progress=True, epochs=1), tmp_path / "run")
    err = capsys.readouterr().err
    assert "\r" not in err and "%|" not in err  # no tqdm frames
    assert "epoch 1 batch 2/3: loss" in err and "epoch 1: loss" in err  # train.log's lines, every log_every batches
    quiet = tmp_path / "quiet"
    train(tiny_config(progress=False, epochs=1), quiet)
    assert "epoch 1" not in capsys.readouterr().err and "epoch 1: loss" in (quiet / "train.log").read_text()


def test_profile_steps_writes_the_phases_of_the_steps_after_the_first(tmp_path):
    from hiere.training.trainer import train

    out = tmp_path / "profiled"
    train(tiny_config(profile_steps=2, epochs=1), out)  # 3 batches: one warm-up, then 2 profiled steps
    report = json.loads((out / "profile.json").read_text())
    assert report["steps"] == 2 and report["device"] == "cpu"
    phases = report["phases"]
    assert set(phases) == {"collate", "forward", "encoder", "backward", "optimizer"}
    assert all(phase["seconds"] > 0 for phase in phases.values())
    assert phases["encoder"]["seconds"] <= phases["forward"]["seconds"]  # the encoder runs inside forward
    parts = sum(phases[name]["seconds"] for name in ("collate", "forward", "backward", "optimizer"))
    assert parts + report["other"]["seconds"] == pytest.approx(report["seconds_per_step"], abs=1e-5)
    text = (out / "profile.txt").read_text()
    assert "2 training steps after one warm-up step" in text and "hiere.forward" in text and "Self CPU" in text
    memory = report["memory"]  # resident size sampled during the profiled steps, the largest per phase
    assert memory["rss_mb_at_start"] > 0 and {"forward", "backward"} <= set(memory["peak_rss_mb"])
    assert all(value > 0 for value in memory["peak_rss_mb"].values())
    assert "largest seen during each phase" in text and "by self CPU memory" not in text
    with_allocations = tmp_path / "allocations"
    train(tiny_config(profile_steps=2, epochs=1, profile_memory=True), with_allocations)
    assert "by self CPU memory" in (with_allocations / "profile.txt").read_text()
    short = tmp_path / "short"
    train(tiny_config(profile_steps=5, epochs=1), short)  # the epoch ends first: the steps it had
    assert json.loads((short / "profile.json").read_text())["steps"] == 2
    single = tmp_path / "single"
    train(tiny_config(profile_steps=2, epochs=1, batch_size=8), single)  # one batch: only the warm-up step
    assert not (single / "profile.json").exists()
    assert "nothing was profiled" in (single / "train.log").read_text()
    with pytest.raises(HiereConfigError, match="trainer.profile_steps=-1: must be >= 0"):
        TrainerConfig(profile_steps=-1)


def test_mmap_threshold_is_set_through_mallopt_and_checked(tmp_path, monkeypatch):
    import hiere.memory
    from hiere.training.trainer import train

    calls = []

    class FakeLibc:
        def mallopt(self, parameter, value):
            calls.append((parameter, value))
            return 1

    monkeypatch.setattr(hiere.memory.ctypes, "CDLL", lambda name: FakeLibc())
    train(tiny_config(mmap_threshold_mb=4, epochs=1, max_steps=1), tmp_path / "run")
    assert calls == [(hiere.memory.M_MMAP_THRESHOLD, 4 * 2**20)]
    assert "allocations of 4 MB and more mapped on their own" in (tmp_path / "run" / "train.log").read_text()
    with pytest.raises(HiereConfigError, match="trainer.mmap_threshold_mb=64.0: must be between 0"):
        TrainerConfig(mmap_threshold_mb=64)


def test_huge_pages_ask_pytorch_for_transparent_huge_pages_unless_the_kernel_has_them_off(tmp_path, monkeypatch):
    import hiere.memory
    from hiere.training.trainer import train

    setting = tmp_path / "enabled"
    monkeypatch.setattr(hiere.memory, "THP_SETTING", setting)
    monkeypatch.setenv(hiere.memory.THP_VARIABLE, "x")  # so that the variable's absence is restored afterwards
    monkeypatch.delenv(hiere.memory.THP_VARIABLE)
    setting.write_text("always madvise [never]\n")
    assert hiere.memory.kernel_huge_pages() == "never"
    assert not hiere.memory.enable_huge_pages() and hiere.memory.THP_VARIABLE not in os.environ
    setting.write_text("always [madvise] never\n")
    train(tiny_config(huge_pages=True, epochs=1, max_steps=1), tmp_path / "run")
    assert os.environ[hiere.memory.THP_VARIABLE] == "1"
    assert "transparent huge pages (trainer.huge_pages)" in (tmp_path / "run" / "train.log").read_text()
    monkeypatch.setenv(hiere.memory.THP_VARIABLE, "0")  # the user's own setting wins
    assert not hiere.memory.enable_huge_pages() and os.environ[hiere.memory.THP_VARIABLE] == "0"
    monkeypatch.setattr(hiere.memory, "THP_SETTING", tmp_path / "missing")
    assert hiere.memory.kernel_huge_pages() is None


def test_kernel_cache_bounds_onednn_before_the_first_kernel_and_is_checked(tmp_path, monkeypatch):
    import yaml

    import hiere.memory
    from hiere.cli import main
    from hiere.config import TrainerConfig

    variable, ideep = hiere.memory.ONEDNN_CACHE_VARIABLE, hiere.memory.IDEEP_CACHE_VARIABLE
    for name in (variable, ideep):
        monkeypatch.setenv(name, "x")  # recorded first, so its absence comes back at teardown
        monkeypatch.delenv(name)
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_config(epochs=1, max_steps=1)))
    assert main(["train", str(config), "-o", str(tmp_path / "run"), "--set", "trainer.kernel_cache=0"]) == 0
    assert (os.environ[variable], os.environ[ideep]) == ("0", "1")  # ideep's cache keeps at least one entry
    assert "at most 0 compiled kernels (trainer.kernel_cache" in (tmp_path / "run" / "train.log").read_text()
    with pytest.raises(HiereConfigError, match=r"trainer.kernel_cache=-1: must be null"):
        TrainerConfig(kernel_cache=-1)
    assert TrainerConfig().kernel_cache == 0  # the default: none kept
    assert TrainerConfig(kernel_cache=None).kernel_cache is None  # null: oneDNN's and ideep's own 1,024


def test_the_test_set_is_scored_after_the_training_state_is_gone(tmp_path, monkeypatch):
    import gc

    import hiere.training.trainer as trainer_module

    seen = {}
    score_test = trainer_module._score_test
    release = trainer_module.release_freed_memory

    def checked(*args, **kwargs):
        gc.collect()
        seen["optimizers"] = sum(issubclass(type(o), torch.optim.Optimizer) for o in gc.get_objects())
        return score_test(*args, **kwargs)

    def released():
        seen.setdefault("released_before_scoring", "optimizers" not in seen)
        release()

    monkeypatch.setattr(trainer_module, "_score_test", checked)
    monkeypatch.setattr(trainer_module, "release_freed_memory", released)
    config = tiny_config(epochs=1, max_steps=2)
    config["data"].update(test=str(REDOCRED), test_slice=[453, 455])
    trainer_module.train(config, tmp_path / "run")
    # the training's optimizer (and the model it holds) went with _train's frame, and the heap's free space was
    # handed back before the scoring
    assert seen == {"optimizers": 0, "released_before_scoring": True}
    metrics = json.loads((tmp_path / "run" / "test_metrics.json").read_text())
    assert metrics["n_gold"] > 0 and 0 <= metrics["f1"] <= 1
