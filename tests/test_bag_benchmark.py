"""benchmarks/bag_benchmark.py: the command lines it builds (no training here)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from bag_benchmark import MODELS, config_path, run_overrides, source_runs  # noqa: E402


def no_shorthands() -> argparse.Namespace:
    return argparse.Namespace(epochs=None, batch_size=None, eval_batch_size=None, lr=None, weight_decay=None,
                              overrides=["trainer.device=cpu"])


def test_warm_start_runs_name_the_flat_run_of_the_same_seed_and_data():
    overrides = run_overrides(no_shorthands(), "hnre_pcnn_warm", 2, 60, "gids", Path("/runs"))
    assert "model.init_from=/runs/gids_pcnn_att_s2" in overrides
    assert overrides[:2] == ["trainer.seed=2", "trainer.epochs=60"]
    assert overrides[-1] == "trainer.device=cpu"  # --set comes last, so it wins
    assert source_runs("hnre_pcnn_warm") == ["pcnn_att"] and source_runs("hnre_cnn_warm") == ["cnn_att"]
    assert source_runs("hnre_pcnn") == [] and source_runs("hnre_pcnn_levels1") == []
    assert config_path("gids", "hnre_pcnn_warm").name == "hnre_pcnn_gids.yaml"


def test_every_variant_reads_a_shipped_config():
    for dataset in ("nyt10", "gids"):
        for key in MODELS:
            assert config_path(dataset, key).exists(), (dataset, key)
