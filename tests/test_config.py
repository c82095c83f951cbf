"""Config loading: typed and checked trainer settings, unknown sections and keys, precision resolution."""

from __future__ import annotations

import warnings

import pytest
import torch
import yaml

from conftest import REDOCRED, REL_INFO
from hiere.config import TrainerConfig, apply_overrides, load_config, resolve
from hiere.errors import HiereConfigError
from hiere.training import inference
from hiere.training.inference import autocast_context, cpu_flags, resolve_precision

CPU = torch.device("cpu")


def with_overrides(*overrides: str) -> dict:
    return resolve(apply_overrides({"model": {"name": "bilstm"}}, list(overrides)))


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "bilstm.yaml"
    path.write_text(yaml.safe_dump({
        "model": {"name": "bilstm"},
        "data": {"train": str(REDOCRED), "train_slice": [0, 4], "relations": str(REL_INFO)},
        "trainer": {"epochs": 2, "lr": 1},
    }))
    return path


def test_set_weight_decay_1e_5_is_a_float(config_file):
    assert yaml.safe_load("1e-5") == "1e-5"  # YAML 1.1: no dot, so a string
    trainer = load_config(config_file, ["trainer.weight_decay=1e-5", "trainer.adam_epsilon=1e-6"])["trainer"]
    assert trainer["weight_decay"] == 1e-5 and isinstance(trainer["weight_decay"], float)
    assert trainer["adam_epsilon"] == 1e-6 and isinstance(trainer["adam_epsilon"], float)
    assert trainer["lr"] == 1.0 and isinstance(trainer["lr"], float)  # an int is fine for a float
    assert trainer["epochs"] == 2 and trainer["precision"] == "auto" and trainer["encoder_lr"] is None


@pytest.mark.parametrize(("override", "message"), [
    ("trainer.lr=fast", "trainer.lr='fast': expected a float, got str"),
    ("trainer.epochs=ten", "trainer.epochs='ten': expected an int, got str"),
    ("trainer.epochs=2.5", "trainer.epochs=2.5: expected an int, got float"),
    ("trainer.progress=maybe", "trainer.progress='maybe': expected a bool, got str"),
    ("trainer.lr=.inf", "trainer.lr=inf: expected a float, got a float that is not finite"),
    ("trainer.encoder_lr=fast", "trainer.encoder_lr='fast': expected a float or null, got str"),
])
def test_a_value_of_the_wrong_type_is_one_error_naming_key_value_and_type(config_file, override, message):
    with pytest.raises(HiereConfigError) as error:
        load_config(config_file, [override])
    assert str(error.value) == message


def test_every_bad_key_is_named_in_the_one_error():
    with pytest.raises(HiereConfigError, match=r"^trainer\.epochs='ten'.*; trainer\.lr='fast'"):
        with_overrides("trainer.lr=fast", "trainer.epochs=ten")


@pytest.mark.parametrize(("override", "rule"), [
    ("trainer.epochs=0", "must be >= 1"),
    ("trainer.lr=-0.001", "must be > 0"),
    ("trainer.encoder_lr=0", "must be null or > 0"),
    ("trainer.schedule=cosine", "must be one of linear, constant"),
    ("trainer.precision=fp8", "must be one of auto, fp32, bf16, fp16"),
    ("trainer.optimizer=rmsprop", "must be one of adamw, adam, sgd"),
    ("trainer.device=gpu", "must be auto, cpu, cuda or cuda:N"),
    ("trainer.grad_accumulation=0", "must be >= 1"),
    ("trainer.batch_size=0", "must be >= 1"),
    ("trainer.warmup_ratio=1", "must be in [0, 1)"),
    ("trainer.weight_decay=-1e-5", "must be >= 0"),
    ("trainer.patience=-1", "must be >= 0"),
    ("trainer.max_grad_norm=-1", "must be >= 0"),
])
def test_out_of_range_values_are_rejected_at_load(override, rule):
    key = override.split("=")[0]
    with pytest.raises(HiereConfigError) as error:
        with_overrides(override)
    assert str(error.value).startswith(f"{key}=") and f": {rule}" in str(error.value)


def test_valid_choices_pass():
    trainer = with_overrides("trainer.device=cuda:1", "trainer.schedule=constant", "trainer.precision=bf16",
                             "trainer.max_grad_norm=0", "trainer.encoder_lr=2e-5")["trainer"]
    assert (trainer["device"], trainer["schedule"], trainer["precision"]) == ("cuda:1", "constant", "bf16")
    assert trainer["max_grad_norm"] == 0.0 and trainer["encoder_lr"] == 2e-5


def test_unknown_sections_and_keys_are_rejected_naming_the_known_ones():
    with pytest.raises(HiereConfigError, match=r"unknown config sections \['trainr'\]; known: \['model', 'data', "
                                               r"'trainer'\]"):
        with_overrides("trainr.lr=1")
    with pytest.raises(HiereConfigError, match=r"unknown data keys \['tset'\]; known: \['train', 'dev', 'test', "):
        with_overrides("data.tset=x")
    with pytest.raises(HiereConfigError, match=r"unknown trainer keys \['lr_rate'\]; known: .*'adam_epsilon'"):
        with_overrides("trainer.lr_rate=1")
    with pytest.raises(HiereConfigError, match=r"data.train_slice must be \[start, end\)"):
        with_overrides("data.train_slice=[0, x]")


def test_the_cli_reports_a_bad_value_in_one_line_before_reading_data(tmp_path, capsys, monkeypatch):
    from hiere import cli
    from hiere.training import trainer

    path = tmp_path / "missing_data.yaml"
    path.write_text(yaml.safe_dump({"model": {"name": "bilstm"}, "data": {"train": str(tmp_path / "none.json")}}))
    monkeypatch.setattr(trainer, "train", lambda *args, **kwargs: pytest.fail("training started"))
    assert cli.main(["train", str(path), "-o", str(tmp_path / "out"), "--set", "trainer.lr=fast"]) == 2
    assert capsys.readouterr().err == "hiere: error: trainer.lr='fast': expected a float, got str\n"


def test_resolved_trainer_survives_the_model_directory_yaml():
    config = with_overrides("trainer.weight_decay=1e-5", "trainer.adam_epsilon=1e-7")
    again = yaml.safe_load(yaml.safe_dump(config, sort_keys=False))
    assert TrainerConfig.from_dict(again["trainer"]) == TrainerConfig.from_dict(config["trainer"])
    assert resolve(again) == config


def test_adam_epsilon_reaches_the_optimizer():
    from hiere.training.trainer import make_optimizer

    model = torch.nn.Linear(3, 2)
    model.parameter_groups = lambda lr, encoder_lr, weight_decay: [{"params": list(model.parameters()), "lr": lr}]
    for name in ("adam", "adamw"):
        optimizer = make_optimizer(model, TrainerConfig(optimizer=name, adam_epsilon=1e-6))
        assert [group["eps"] for group in optimizer.param_groups] == [1e-6]
    assert make_optimizer(model, TrainerConfig()).param_groups[0]["eps"] == 1e-8  # torch's default


def test_cpu_flags_read_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse avx512f avx512_bf16\n\nprocessor\t: 1\n")
    assert cpu_flags(cpuinfo) == {"fpu", "sse", "avx512f", "avx512_bf16"}
    assert cpu_flags(tmp_path / "absent") is None
    (tmp_path / "no_flags").write_text("processor\t: 0\nFeatures\t: fp asimd\n")
    assert cpu_flags(tmp_path / "no_flags") is None


@pytest.mark.parametrize(("flags", "resolved"), [
    ({"fpu", "avx2", "avx512f"}, "fp32"),
    ({"avx2", "avx512_bf16"}, "bf16"),
    ({"amx_tile", "amx_bf16"}, "bf16"),
    (None, "fp32"),  # unknown (not Linux): fp32
])
def test_auto_precision_is_bf16_only_with_bf16_units(monkeypatch, flags, resolved):
    monkeypatch.setattr(inference, "cpu_flags", lambda: flags)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_precision(CPU, "auto") == resolved
    assert resolve_precision(CPU, "fp32") == "fp32"


def test_explicit_bf16_without_units_warns_that_it_is_emulated(monkeypatch):
    monkeypatch.setattr(inference, "cpu_flags", lambda: {"avx2"})
    with pytest.warns(RuntimeWarning, match="emulated and many times slower"):
        assert resolve_precision(CPU, "bf16") == "bf16"
    monkeypatch.setattr(inference, "cpu_flags", lambda: {"avx512_bf16"})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_precision(CPU, "bf16") == "bf16"


def test_fp16_needs_cuda():
    with pytest.raises(HiereConfigError, match="fp16 needs CUDA"):
        autocast_context(CPU, "fp16")
    with pytest.raises(HiereConfigError, match="fp16 needs CUDA"):
        resolve_precision(CPU, "fp16")
    with pytest.raises(HiereConfigError, match="must be one of"):
        autocast_context(CPU, "fp8")


def test_autocast_context_follows_the_resolved_precision(monkeypatch):
    layer = torch.nn.Linear(4, 4)
    monkeypatch.setattr(inference, "cpu_flags", lambda: {"avx512_bf16"})
    with autocast_context(CPU, "auto"):
        assert layer(torch.ones(1, 4)).dtype == torch.bfloat16
    monkeypatch.setattr(inference, "cpu_flags", lambda: set())
    with autocast_context(CPU, "auto"):
        assert layer(torch.ones(1, 4)).dtype == torch.float32


def test_model_values_are_coerced_to_their_field_types():
    from hiere.models import get_model_class

    config = get_model_class("pcnn_att").Config.from_dict({"dropout": "1e-1", "sentence_dropout": 0})
    assert config.dropout == 0.1 and isinstance(config.dropout, float)
    assert isinstance(config.sentence_dropout, float)
    with pytest.raises(HiereConfigError, match=r"model.hidden='big': expected an int"):
        get_model_class("pcnn_att").Config.from_dict({"hidden": "big"})
    lambdas = get_model_class("hiclre").Config.from_dict({"lambdas": [0.4, 0.4, 0.1, 1.0]}).lambdas
    assert list(lambdas) == [0.4, 0.4, 0.1, 1.0]  # lists pass through unchanged
