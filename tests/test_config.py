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


def write_yaml(path, content) -> str:
    path.write_text(yaml.safe_dump(content) if isinstance(content, dict) else content)
    return str(path)


def test_extends_lays_a_config_over_its_base(tmp_path):
    (tmp_path / "sub").mkdir()
    write_yaml(tmp_path / "base.yaml", {
        "model": {"name": "bilstm", "hidden": 64, "dropout": 0.3},
        "data": {"train": "train.json", "train_slice": [0, 4]},
        "trainer": {"epochs": 3, "lr": 0.5},
    })
    write_yaml(tmp_path / "sub" / "middle.yaml", "extends: ../base.yaml\nmodel:\n  hidden: 32\n")
    child = write_yaml(tmp_path / "sub" / "child.yaml", "extends: middle.yaml\ntrainer:\n  epochs: 7\n")
    config = load_config(child)
    assert "extends" not in config
    assert config["model"] == {"name": "bilstm", "hidden": 32, "dropout": 0.3}
    assert config["data"] == {"train": "train.json", "train_slice": [0, 4]}
    assert config["trainer"]["epochs"] == 7 and config["trainer"]["lr"] == 0.5
    # --set still has the last word
    assert load_config(child, ["model.hidden=16"])["model"]["hidden"] == 16


def test_extends_cycle_and_missing_base_are_one_error_naming_the_file(tmp_path):
    from hiere.errors import HiereInputError

    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    write_yaml(a, "extends: b.yaml\nmodel: {name: bilstm}\n")
    write_yaml(b, "extends: a.yaml\n")
    cycle = r"field extends: configs extend each other in a cycle: .*a\.yaml -> .*b\.yaml -> .*a\.yaml"
    with pytest.raises(HiereInputError, match=cycle):
        load_config(a)
    write_yaml(b, "extends: nowhere.yaml\n")
    with pytest.raises(HiereInputError, match=r"b\.yaml: field extends: base config .*nowhere\.yaml does not exist"):
        load_config(a)
    write_yaml(b, "extends: [1, 2]\n")
    with pytest.raises(HiereInputError, match=r"field extends: must be the path of a base config"):
        load_config(a)


HIN_ABLATIONS = {
    "hin_no_bilinear": {"use_bilinear": False},
    "hin_no_translation": {"use_translation": False},
    "hin_no_multispace": {"multispace": False, "bilinear_dim": 64},
    "hin_no_sentence_inference": {"sentence_inference": False},
    "hin_no_hierarchical": {"hierarchical_aggregation": False},
    "hin_ablate_all": {"use_bilinear": False, "use_translation": False, "multispace": False, "bilinear_dim": 64,
                       "sentence_inference": False, "hierarchical_aggregation": False},
}


@pytest.mark.parametrize("name", sorted(HIN_ABLATIONS))
def test_each_hin_ablation_config_is_hin_glove_with_only_its_switches_changed(name):
    from pathlib import Path

    configs = Path(__file__).resolve().parents[1] / "configs"
    base, ablation = load_config(configs / "hin_glove.yaml"), load_config(configs / f"{name}.yaml")
    assert ablation["data"] == base["data"] and ablation["trainer"] == base["trainer"]
    changed = {key: value for key, value in ablation["model"].items() if base["model"].get(key, object()) != value}
    assert changed == HIN_ABLATIONS[name]
    assert set(base["model"]) <= set(ablation["model"])


def test_set_data_dev_drops_the_config_files_dev_slice_with_a_warning(config_file, caplog):
    config_file.write_text(yaml.safe_dump({
        "model": {"name": "bilstm"}, "data": {"dev": "old.json", "dev_slice": [450, 500], "train_slice": [0, 4]},
    }))
    with caplog.at_level("WARNING", logger="hiere.config"):
        config = load_config(config_file, ["data.dev=my_dev.json"])
    assert config["data"] == {"dev": "my_dev.json", "train_slice": [0, 4]}
    assert "data.dev_slice [450, 500] is dropped" in caplog.text
    both = load_config(config_file, ["data.dev=my_dev.json", "data.dev_slice=[0, 2]"])
    assert both["data"]["dev_slice"] == [0, 2]
    assert load_config(config_file, ["data.train=t.json"])["data"]["dev_slice"] == [450, 500]


def test_a_slice_beyond_the_file_names_the_slice_and_the_files_size(tmp_path, capsys):
    import json

    from hiere import cli

    small = tmp_path / "small_dev.json"
    small.write_text(json.dumps(json.loads(REDOCRED.read_text())[:3]))
    path = write_yaml(tmp_path / "c.yaml", {
        "model": {"name": "bilstm"},
        "data": {"train": str(REDOCRED), "train_slice": [0, 2], "dev": str(small), "relations": str(REL_INFO)},
    })
    assert cli.main(["train", path, "-o", str(tmp_path / "out"), "--set", "data.dev_slice=[450, 500]"]) == 2
    err = capsys.readouterr().err
    assert f"{small}: field data.dev_slice: [450, 500) selects no examples: the file has 3" in err
    assert "set data.dev_slice=null" in err


def test_data_section_is_a_typed_dataclass():

    from hiere.config import DATA_KEYS, DataConfig

    assert DATA_KEYS == ("train", "dev", "test", "relations", "long_tail", "train_slice", "dev_slice", "test_slice")
    data = DataConfig.from_dict({"train": "a.json", "dev_slice": [0, None]})
    assert data.train == "a.json" and data.dev_slice == [0, None] and data.test is None
    assert data.to_dict() == {"train": "a.json", "dev_slice": [0, None]}  # only the keys that are set
    for values, message in (({"tarin": "a"}, r"unknown data keys \['tarin'\]"),
                            ({"dev": 3}, "data.dev must be a file path, got 3"),
                            ({"test_slice": [1]}, r"data.test_slice must be \[start, end\)"),
                            ("x", "the data section must be a mapping")):
        with pytest.raises(HiereConfigError, match=message):
            DataConfig.from_dict(values)
