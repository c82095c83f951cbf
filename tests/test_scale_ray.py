"""--engine ray: a local Ray (2 CPUs, node address 127.0.0.1) writes the local engine's shards byte for byte and
resumes their runs.

Needs the ``ray`` extra (``pip install -e '.[ray]'``; scripts/setup.sh installs it). The core package and
tests/test_scale.py run without Ray.
"""

from __future__ import annotations

import json
from pathlib import Path

import ray

from hiere import scale
from hiere.cli import main
from test_scale import errors, extract_argv, same_output, shards

assert ray  # imported here so a missing extra fails loudly instead of hiding these tests


def test_ray_engine_with_two_workers_writes_the_local_engines_records(tiny_bilstm_dir, scale_corpus, tmp_path, capsys):
    """hiere starts a local Ray itself (num_cpus = 2 workers x 1 CPU, 127.0.0.1) and shuts it down."""
    inputs = [scale_corpus["docs.jsonl"], scale_corpus["plain.txt"], scale_corpus["list.json"]]
    local, on_ray = tmp_path / "local", tmp_path / "ray"
    assert main(extract_argv(tiny_bilstm_dir, inputs, local, "--block-size", "2")) == 0
    assert main(extract_argv(tiny_bilstm_dir, inputs, on_ray, "--block-size", "2", "--engine", "ray",
                             "--workers", "2")) == 0
    assert not ray.is_initialized()
    same_output(local, on_ray)
    assert len(shards(on_ray)) == 12 and len(errors(on_ray)) == 3
    summary = json.loads((on_ray / "manifest.json").read_text())["summary"]
    assert summary["engine"] == "ray" and summary["documents"] == 12
    assert 1 <= len(summary["workers_peak_rss_mb"]) <= 2  # the blocks went to the 2 workers (one may take all)
    assert "hiere extract: 12 documents, " in capsys.readouterr().err


def test_ray_resumes_a_partial_local_run_exactly(tiny_bilstm_dir, scale_corpus, tmp_path, monkeypatch, capsys):
    """A local predict run dies after 2 blocks; the same command on Ray (already running) finishes it."""
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    argv = ["predict", str(tiny_bilstm_dir), str(scale_corpus["docred.json"]), "--block-size", "2", "--no-progress",
            "-o"]
    assert main([*argv, str(whole), "--engine", "local"]) == 0
    real_record = scale.record_block
    calls: list[int] = []

    def die_after_two_blocks(out_dir: Path, manifest: dict, result: scale.BlockResult) -> None:
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(result.block)
        real_record(out_dir, manifest, result)

    monkeypatch.setattr(scale, "record_block", die_after_two_blocks)
    assert main([*argv, str(resumed), "--engine", "local"]) == 130
    monkeypatch.setattr(scale, "record_block", real_record)
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1")
    try:
        capsys.readouterr()
        assert main([*argv, str(resumed), "--engine", "ray", "--workers", "2"]) == 0
        assert ray.is_initialized()  # a Ray the caller started stays up
    finally:
        ray.shutdown()
    assert "2 of 4 shards already done" in capsys.readouterr().err
    same_output(whole, resumed)
