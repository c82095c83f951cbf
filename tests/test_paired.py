"""benchmarks/paired.py: pairing by seed and the differences, on hand-made run directories."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from paired import main, paired  # noqa: E402


def make_run(root: Path, name: str, seed: int, test: dict, dev: list[float]) -> Path:
    directory = root / name
    directory.mkdir()
    (directory / "config.yaml").write_text(yaml.safe_dump({"trainer": {"seed": seed, "metric": "pr_auc"}}))
    (directory / "test_metrics.json").write_text(json.dumps(test))
    history = [{"epoch": i + 1, "dev": {"pr_auc": value}} for i, value in enumerate(dev)]
    (directory / "history.json").write_text(json.dumps(history))
    return directory


def test_differences_are_model_minus_baseline_paired_by_seed(tmp_path):
    base = [make_run(tmp_path, "a3", 3, {"pr_auc": 0.50}, [0.1, 0.4]),
            make_run(tmp_path, "a1", 1, {"pr_auc": 0.40}, [0.3, 0.3, 0.2])]
    model = [make_run(tmp_path, "b1", 1, {"pr_auc": 0.45}, [0.5]),
             make_run(tmp_path, "b3", 3, {"pr_auc": 0.48}, [0.2, 0.6, 0.6]),
             make_run(tmp_path, "b7", 7, {"pr_auc": 0.99}, [0.9])]
    result = paired(base, model, ["pr_auc", "best_dev", "best_epoch"])
    assert result["seeds"] == [1, 3] and result["unpaired"] == [7]
    assert result["pr_auc"]["diff"] == pytest.approx([0.05, -0.02])
    assert result["best_dev"]["baseline"] == pytest.approx([0.3, 0.4])
    assert result["best_epoch"]["model"] == [1.0, 2.0]  # the first epoch that reached the best


def test_table_and_errors(tmp_path, capsys):
    make_run(tmp_path, "a1", 1, {"pr_auc": 0.40}, [0.3])
    make_run(tmp_path, "a2", 2, {"pr_auc": 0.50}, [0.3])
    make_run(tmp_path, "b1", 1, {"pr_auc": 0.43}, [0.3])
    make_run(tmp_path, "b2", 2, {"pr_auc": 0.49}, [0.3])
    main(["--baseline", f"A={tmp_path / 'a1'},{tmp_path / 'a2'}", "--model", f"B={tmp_path / 'b1'},{tmp_path / 'b2'}"])
    out = capsys.readouterr().out
    # differences +0.03 and -0.01: mean +0.010, sample std 0.028
    assert "| pr_auc | 0.450 ± 0.071 | 0.460 ± 0.042 | +0.030 / -0.010 | +0.010 ± 0.028 | 1 of 2 |" in out
    with pytest.raises(SystemExit, match="no metric 'p@100'"):
        main(["--metric", "p@100", "--baseline", f"A={tmp_path / 'a1'}", "--model", f"B={tmp_path / 'b1'}"])
    with pytest.raises(SystemExit, match="no seed on both sides"):
        main(["--baseline", f"A={tmp_path / 'a1'}", "--model", f"B={tmp_path / 'b2'}"])


def test_keep_records_copies_what_the_reports_read_and_pairs_from_the_copies(tmp_path):
    from keep_records import main as keep_main

    run = make_run(tmp_path, "hin_s1", 1, {"pr_auc": 0.4}, [0.2, 0.3])
    (run / "model.safetensors").write_bytes(b"weights")
    (run / "train.log").write_text("2026-12-07 10:00:00 epoch 1 batch 10/57: loss 0.1 (1 s)\n"
                                   "2026-12-07 10:00:09 epoch 1: loss 0.1, dev f1 0.2\n")
    (tmp_path / "hin_s1.time").write_text("Maximum resident set size (kbytes): 1024\n")
    assert keep_main([str(run), "--to", str(tmp_path / "kept")]) == 0
    kept = tmp_path / "kept" / "hin_s1"
    assert sorted(p.name for p in kept.iterdir()) == ["config.yaml", "history.json", "test_metrics.json",
                                                      "time.txt", "train_epochs.log"]
    assert (kept / "train_epochs.log").read_text() == "2026-12-07 10:00:09 epoch 1: loss 0.1, dev f1 0.2\n"
    assert paired([kept], [run], ["pr_auc"])["pr_auc"]["diff"] == [0.0]
    with pytest.raises(SystemExit, match="no history.json"):
        keep_main([str(tmp_path), "--to", str(tmp_path / "kept")])


def test_best_dev_without_a_trainer_metric_is_the_tasks_primary_metric(tmp_path):
    from paired import run_value

    run = tmp_path / "bilstm_s1"
    run.mkdir()
    config = {"model": {"name": "bilstm"}, "trainer": {"seed": 1, "metric": None}}
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    history = [{"epoch": 1, "dev": {"f1": 0.2, "ign_f1": 0.9}}, {"epoch": 2, "dev": {"f1": 0.4, "ign_f1": 0.1}}]
    (run / "history.json").write_text(json.dumps(history))
    assert run_value(run, "best_dev") == 0.4 and run_value(run, "best_epoch") == 2.0  # documents: dev F1
