"""Corpus-scale extract and predict with the local engine (no Ray): shards, manifest, errors, resume."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import hiere.io
from conftest import REDOCRED
from hiere import scale
from hiere.cli import main
from hiere.errors import HiereInputError
from hiere.io import iter_json_list

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]


def shards(out_dir: Path) -> list[dict]:
    return [json.loads(line) for path in sorted(out_dir.glob("shard-*.jsonl")) for line in path.open(encoding="utf-8")]


def errors(out_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (out_dir / "errors.jsonl").open(encoding="utf-8")]


def same_output(first: Path, second: Path) -> None:
    """Byte-identical shards and errors, and the same manifest but for the run's summary."""
    names = sorted(path.name for path in first.glob("shard-*.jsonl"))
    assert names == sorted(path.name for path in second.glob("shard-*.jsonl")) and names
    for name in [*names, "errors.jsonl"]:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    manifests = [json.loads((folder / "manifest.json").read_text()) for folder in (first, second)]
    for manifest in manifests:
        manifest.pop("summary")
    assert manifests[0] == manifests[1]


def extract_argv(model_dir: Path, inputs: list, out_dir: Path, *extra: str) -> list[str]:
    return ["extract", str(model_dir), *map(str, inputs), "-o", str(out_dir), "--no-progress", *extra]


def test_extract_shards_hold_every_document_once_as_hiere_extract_prints_it(tiny_bilstm_dir, scale_corpus, tmp_path,
                                                                           capsys):
    out = tmp_path / "out"
    inputs = [scale_corpus["docs.jsonl"], str(scale_corpus["plain.txt"].parent / "*.txt"), scale_corpus["list.json"]]
    assert main(extract_argv(tiny_bilstm_dir, inputs, out, "--block-size", "2")) == 0
    summary_line = capsys.readouterr().err.strip().splitlines()[-1]
    records = shards(out)
    manifest = json.loads((out / "manifest.json").read_text())
    # every input record is in exactly one shard line or in errors.jsonl
    seen = [(record["file"], record["line"]) for record in records] + [(e["file"], e["line"]) for e in errors(out)]
    assert len(seen) == len(set(seen)) == sum(info["records"] for info in manifest["inputs"]) == 15
    assert [info["records"] for info in manifest["inputs"]] == [8, 4, 3]
    assert [b["records"] for b in manifest["blocks"]] == [2, 2, 2, 2, 2, 2, 2, 1]
    assert manifest["summary"]["documents"] == len(records) == 12 and manifest["summary"]["errors"] == 3
    trace = manifest["summary"]["memory_by_block"]  # [block, worker, rss_mb, peak_rss_mb] per block
    assert sorted(row[0] for row in trace) == list(range(8))
    assert all(0 < rss <= peak for _, _, rss, peak in trace)
    assert [row[3] for row in trace] == sorted(row[3] for row in trace)  # a high-water mark only rises
    assert "12 documents" in summary_line and "3 errors" in summary_line and "errors.jsonl" in summary_line
    # the triples of each document are those ``hiere extract FILE`` prints, in the same order
    for name in ("docs.jsonl", "plain.txt", "list.json"):
        assert main(["extract", str(tiny_bilstm_dir), str(scale_corpus[name]), "--no-progress"]) == 0
        printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        from_shards = [{"doc": r["doc"], **triple} for r in records if r["file"] == str(scale_corpus[name])
                       for triple in r["triples"]]
        assert from_shards == printed and printed, name
    assert {r["doc"] for r in records if r["file"] == str(scale_corpus["plain.txt"])} == {"line 1", "line 3", "line 5",
                                                                                   "line 7"}
    assert [r["doc"] for r in records if r["file"] == str(scale_corpus["list.json"])] == [
        "document 1", "document 2", "document 3"]


def test_a_bad_record_is_reported_with_file_line_and_field_and_skipped(tiny_bilstm_dir, scale_corpus, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(extract_argv(tiny_bilstm_dir, [scale_corpus["docs.jsonl"]], out, "--block-size", "3")) == 0
    err = capsys.readouterr().err
    path = str(scale_corpus["docs.jsonl"])
    found = errors(out)
    assert [(e["file"], e["line"], e["field"]) for e in found] == [(path, 4, None), (path, 5, "text"),
                                                                  (path, 8, "text")]
    assert found[0]["error"].startswith(f"{path}: line 4: malformed JSON")
    assert "binary" in found[2]["message"] or "control characters" in found[2]["message"]
    assert f"hiere: warning: skipped: {path}: line 5, field text: expected a string" in err
    assert [r["line"] for r in shards(out)] == [1, 2, 3, 6, 9]  # the job went on after each bad record
    assert (out / "errors" / "block-00001.jsonl").exists()


def kill_after_first_finished_block(argv: list[str], out_dir: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen([sys.executable, "-m", "hiere", *argv], env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while process.poll() is None and time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            if any(block["done"] for block in json.loads((out_dir / "manifest.json").read_text())["blocks"]):
                break
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()


def test_a_killed_run_resumed_gives_the_uninterrupted_output(tiny_bilstm_dir, scale_corpus, tmp_path, capsys):
    inputs = [scale_corpus["plain.txt"], scale_corpus["docs.jsonl"], scale_corpus["list.json"]]
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    assert main(extract_argv(tiny_bilstm_dir, inputs, whole, "--block-size", "1")) == 0
    kill_after_first_finished_block(extract_argv(tiny_bilstm_dir, inputs, resumed, "--block-size", "1"), resumed)
    manifest = json.loads((resumed / "manifest.json").read_text())
    finished = sum(1 for block in manifest["blocks"] if block["done"])
    written = len(list(resumed.glob("shard-*.jsonl")))
    assert len(manifest["blocks"]) == 15 and 1 <= finished <= written < 15  # killed part-way
    capsys.readouterr()
    assert main(extract_argv(tiny_bilstm_dir, inputs, resumed, "--block-size", "1")) == 0
    assert f"{finished} of 15 shards already done" in capsys.readouterr().err
    same_output(whole, resumed)
    assert not list(resumed.glob(".*.tmp")) and not list((resumed / "errors").glob(".*.tmp"))


def test_a_shard_written_but_not_yet_in_the_manifest_is_recomputed_not_duplicated(tiny_bilstm_dir, scale_corpus,
                                                                                  tmp_path, monkeypatch, capsys):
    """Fault injection: the run dies after writing the 3rd shard, before the manifest marks it done."""
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    argv = ["predict", str(tiny_bilstm_dir), str(scale_corpus["docred.json"]), "-o"]
    assert main([*argv, str(whole), "--engine", "local", "--block-size", "2", "--no-progress"]) == 0
    real_write, calls = scale._write_manifest, []

    def crash_on_the_fourth_manifest_write(out_dir, manifest):  # 1: the plan; 2, 3: shards 0, 1; 4: shard 2
        calls.append(out_dir)
        if len(calls) == 4:
            raise KeyboardInterrupt
        real_write(out_dir, manifest)

    monkeypatch.setattr(scale, "_write_manifest", crash_on_the_fourth_manifest_write)
    assert main([*argv, str(resumed), "--engine", "local", "--block-size", "2", "--no-progress"]) == 130
    assert (resumed / "shard-00002.jsonl").exists()
    monkeypatch.setattr(scale, "_write_manifest", real_write)
    capsys.readouterr()
    assert main([*argv, str(resumed), "--engine", "local", "--block-size", "2", "--no-progress"]) == 0
    assert "2 of 4 shards already done" in capsys.readouterr().err
    same_output(whole, resumed)


def test_predict_shards_hold_the_records_of_hiere_predict(tiny_bilstm_dir, scale_corpus, tmp_path, capsys):
    single, out = tmp_path / "pred.json", tmp_path / "out"
    assert main(["predict", str(tiny_bilstm_dir), str(scale_corpus["docred.json"]), "-o", str(single)]) == 0
    assert main(["predict", str(tiny_bilstm_dir), str(scale_corpus["docred.json"]), "-o", str(out), "--engine", "local",
                 "--block-size", "3", "--no-progress"]) == 0

    def key(record: dict) -> tuple:
        return record["title"], record["h_idx"], record["t_idx"], record["r"]

    expected = sorted(json.loads(single.read_text()), key=key)
    assert sorted(shards(out), key=key) == expected and expected
    # a document a line; a bad document goes to errors.jsonl with its line and field
    lines_out = tmp_path / "lines"
    assert main(["predict", str(tiny_bilstm_dir), str(scale_corpus["docred.jsonl"]), "-o", str(lines_out), "--engine",
                 "local", "--no-progress"]) == 0
    titles = {doc["title"] for doc in json.loads(scale_corpus["docred.json"].read_text())[:4]}
    assert {record["title"] for record in shards(lines_out)} == titles
    [bad] = errors(lines_out)
    assert bad["line"] == 5 and bad["field"] == "vertexSet[0][0].sent_id" and "out of range" in bad["message"]


def test_bag_predictions_match_hiere_predict_and_blocks_never_split_a_bag(tmp_path_factory, tmp_path, capsys):
    from serve_support import NYT10, train_hnre

    model_dir = train_hnre(tmp_path_factory.mktemp("hnre"))
    bags = tmp_path / "bags.txt"
    bags.write_text("".join((NYT10 / "nyt10sub_test.txt").open(encoding="utf-8").readlines()[:120]))
    single, out = tmp_path / "pred.json", tmp_path / "out"
    assert main(["predict", str(model_dir), str(bags), "-o", str(single)]) == 0
    assert main(["predict", str(model_dir), str(bags), "-o", str(out), "--engine", "local", "--block-size", "7",
                 "--no-progress"]) == 0

    def key(record: dict) -> tuple:
        return record["h"], record["t"], record["relation"]

    # the same records; a bag's numbers may differ in the last float digits, since a block of 7 bags pads and
    # batches its sentences otherwise than one call over the file (the convolution's summation order)
    blocked, whole = sorted(shards(out), key=key), sorted(json.loads(single.read_text()), key=key)
    assert [key(record) for record in blocked] == [key(record) for record in whole] and whole
    for a, b in zip(blocked, whole, strict=True):
        assert a["score"] == pytest.approx(b["score"], rel=1e-5, abs=1e-7)
        assert a["attention"]["levels"] == b["attention"]["levels"]
        assert np.allclose(a["attention"]["weights"], b["attention"]["weights"], atol=1e-5)
    lines = bags.read_text().splitlines()
    pairs = [(json.loads(line)["h"]["id"], json.loads(line)["t"]["id"]) for line in lines]
    blocks = json.loads((out / "manifest.json").read_text())["blocks"]
    assert len(blocks) > 5 and all(block["records"] >= 7 for block in blocks[:-1])
    for block in blocks[1:]:
        first = block["first_line"] - 1
        assert pairs[first] != pairs[first - 1]  # cut between pairs


def test_a_changed_input_or_option_is_one_error_line(tiny_bilstm_dir, scale_corpus, tmp_path, capsys):
    source = tmp_path / "docs.txt"
    source.write_text(scale_corpus["plain.txt"].read_text())
    out = tmp_path / "out"
    assert main(extract_argv(tiny_bilstm_dir, [source], out)) == 0
    capsys.readouterr()
    assert main(extract_argv(tiny_bilstm_dir, [source], out, "--max-chars", "5000")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "option max_chars was 100000, now 5000" in err and "Traceback" not in err
    with source.open("a") as handle:
        handle.write("One more line about Paris and London.\n")
    assert main(extract_argv(tiny_bilstm_dir, [source], out)) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"hiere: error: {out / 'manifest.json'}: {source} changed since the first run")
    assert err.count("\n") == 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["extract", "{model}", "{tmp}/none*.txt", "-o", "{tmp}/o"], "none*.txt: no file matches this pattern"),
        (["extract", "{model}", "{plain}", "-o", "{plain}"], "is a file; -o takes a directory"),
        (["extract", "{model}", "{plain}", "-o", "{tmp}/o", "--workers", "2"], "--workers goes with --engine ray"),
        (["extract", "{model}", "{plain}", "{plain}"], "2 INPUT files: give -o OUT_DIR"),
        (["extract", "{model}", "{plain}", "--engine", "local"], "give -o OUT_DIR"),
        (["extract", "{model}", "{plain}", "-o", "{tmp}/o", "--format", "table"], "--format table prints to stdout"),
        (["extract", "{model}", "--text", "Paris", "-o", "{tmp}/o"], "-o OUT_DIR and --engine read INPUT files"),
        (["extract", "{model}", "-o", "{tmp}/o"], "give the INPUT files"),
        (["extract", "{model}", "{plain}", "-o", "{model}"], "not empty and holds no manifest.json"),
        (["extract", "{model}", "{tmp}", "-o", "{tmp}/o"], "is a directory, expected a file"),
        (["predict", "{model}", "{plain}", "{plain}", "-o", "{tmp}/p.json"], "give --engine local -o OUT_DIR"),
        (["predict", "{model}", "{tmp}/broken.json", "-o", "{tmp}/o", "--engine", "local"],
         "broken.json: line 3: malformed JSON list"),
        (["predict", "{tmp}", "{plain}", "-o", "{tmp}/o", "--engine", "local"], "not a hiere model directory"),
    ],
)
def test_bad_scale_arguments_are_one_line_and_exit_2(tiny_bilstm_dir, scale_corpus, tmp_path, capsys, argv, message):
    (tmp_path / "broken.json").write_text('[{"title": "a"},\n\n{"title": }]')
    values = {"model": tiny_bilstm_dir, "tmp": tmp_path, "plain": scale_corpus["plain.txt"]}
    assert main([part.format(**values) for part in argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err, err


def test_progress_lines_show_rate_and_eta_and_the_summary_counts(tiny_bilstm_dir, scale_corpus, tmp_path):
    stream = io.StringIO()
    job = scale.Job("extract", str(tiny_bilstm_dir), {"threshold": None, "batch_size": 8, "window_tokens": 1024,
                                                      "max_chars": 100_000, "check_english": True})
    summary = scale.run_job(job, [str(scale_corpus["plain.txt"])], tmp_path / "out", block_size=1, stream=stream,
                            progress_seconds=0.0)
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("hiere extract: 1 of 4 documents (25.0%), ") and " documents/s, ETA " in lines[0]
    assert lines[3].startswith("hiere extract: 4 of 4 documents (100.0%)")
    assert lines[-1].startswith("hiere extract: 4 documents, ") and " triples, 0 errors in " in lines[-1]
    assert summary["documents"] == 4 and summary["shards"] == 4 and summary["errors"] == 0
    assert summary["triples"] == sum(len(r["triples"]) for r in shards(tmp_path / "out"))
    assert all(rss > 0 for rss in summary["workers_peak_rss_mb"].values())


def test_json_lists_stream_with_exact_byte_offsets_across_chunks(redocred_raw, tmp_path, monkeypatch):
    data = json.dumps(redocred_raw[:6], indent=1, ensure_ascii=False).encode("utf-8")
    items = list(iter_json_list(io.BytesIO(data), "docs.json"))
    assert [value for *_, value in items] == redocred_raw[:6]
    assert all(json.loads(data[start:end]) == value for start, end, _, value in items)
    assert [line for _, _, line, _ in items] == [data[:start].count(b"\n") + 1 for start, *_ in items]
    monkeypatch.setattr(hiere.io, "JSON_CHUNK_BYTES", 7)
    assert list(iter_json_list(io.BytesIO(data), "docs.json")) == items
    start, end = items[2][0], items[4][1]
    inside = list(iter_json_list(io.BytesIO(data[start:end]), "docs.json", start, items[2][2], inside=True))
    assert inside == items[2:5]
    for broken, line in ((b"[1, 2", 1), (b'[{"a": 1}\n {"b": 2}]', 2), (b"[1]\n\nx", 3)):
        with pytest.raises(HiereInputError, match=f"docs.json: line {line}: malformed JSON list"):
            list(iter_json_list(io.BytesIO(broken), "docs.json"))


def test_plan_blocks_cover_the_file_and_reread_as_its_records(tmp_path):
    path = tmp_path / "dev.json"
    path.write_bytes(REDOCRED.read_bytes())
    info, blocks = scale.plan_input(path, "docred-json", 64)
    assert info["records"] == sum(b.records for b in blocks) == len(json.loads(path.read_text()))
    import hashlib

    assert info["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    values = [record.value for block in blocks for record in scale.read_block(block)]
    assert values == json.loads(path.read_text())
    assert [b.first_record for b in blocks] == [64 * i for i in range(len(blocks))]


def test_the_core_package_and_cli_do_not_import_ray_and_engine_ray_without_it_is_one_line(tmp_path):
    code = ("import sys; sys.modules['ray'] = None\n"  # as if Ray were not installed
            "import hiere, hiere.cli, hiere.scale, hiere.extract, hiere.api\n"
            "from hiere.cli import main\n"
            f"sys.exit(main(['extract', {str(tmp_path)!r}, 'x.txt', '-o', 'out', '--engine', 'ray']))\n")
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr == "hiere: error: --engine ray needs Ray Data: pip install 'hiere[ray]'\n"


def test_workers_bound_the_kernel_cache_and_an_explicit_setting_wins(tiny_bilstm_dir, scale_corpus, tmp_path,
                                                                     monkeypatch):
    from hiere.memory import IDEEP_CACHE_VARIABLE, ONEDNN_CACHE_VARIABLE

    for variable in (ONEDNN_CACHE_VARIABLE, IDEEP_CACHE_VARIABLE):
        monkeypatch.setenv(variable, "")  # recorded first, so the original state comes back at teardown
        monkeypatch.delenv(variable)
    argv = ["predict", str(tiny_bilstm_dir), str(scale_corpus["docred.json"]), "--engine", "local", "--no-progress"]
    assert main([*argv, "-o", str(tmp_path / "a"), "--kernel-cache", "32"]) == 0
    # both caches bounded by the worker before it loaded the model
    assert (os.environ[ONEDNN_CACHE_VARIABLE], os.environ[IDEEP_CACHE_VARIABLE]) == ("32", "32")
    monkeypatch.setenv(ONEDNN_CACHE_VARIABLE, "7")
    monkeypatch.setenv(IDEEP_CACHE_VARIABLE, "5")
    assert main([*argv, "-o", str(tmp_path / "b")]) == 0  # the default would be scale.DEFAULT_KERNEL_CACHE
    assert (os.environ[ONEDNN_CACHE_VARIABLE], os.environ[IDEEP_CACHE_VARIABLE]) == ("7", "5")
    assert scale.Job("predict", "m", {}).kernel_cache == scale.DEFAULT_KERNEL_CACHE
    for variable in (ONEDNN_CACHE_VARIABLE, IDEEP_CACHE_VARIABLE):
        monkeypatch.delenv(variable)
    single = ["predict", str(tiny_bilstm_dir), str(scale_corpus["docred.json"]), "-o", str(tmp_path / "one.json")]
    assert main(single) == 0  # hiere predict on one file bounds them too, to the same default
    bound = str(scale.DEFAULT_KERNEL_CACHE), str(max(1, scale.DEFAULT_KERNEL_CACHE))
    assert (os.environ[ONEDNN_CACHE_VARIABLE], os.environ[IDEEP_CACHE_VARIABLE]) == bound
    assert shards(tmp_path / "a") == shards(tmp_path / "b")  # the cache changes memory and speed, not records
