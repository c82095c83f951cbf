"""Bad input never crashes or hangs (issue 15): each case found by hand gives one line and exit 2, or is
read with the documented error policy and the rest goes on."""

from __future__ import annotations

import io
import json
import os
import signal
import time
from pathlib import Path

import pytest
import torch
import yaml

from conftest import REDOCRED, REL_INFO, REPO
from hiere import cli
from hiere.errors import HiereConfigError, HiereInputError
from hiere.extract import extract
from hiere.io import remove_stale_temp_files, write_json_atomic
from hiere.text.pipeline import MAX_SENTENCE_TOKENS, TextPipeline, clean_text, split_windows
from test_extract import GoldPredictor, joined

SENTENCE = "Marie Curie was born in Warsaw , the capital of Poland , and she died in France ."


@pytest.fixture(scope="module")
def pipeline() -> TextPipeline:
    return TextPipeline()


@pytest.fixture(scope="module")
def gold(redocred_docs):
    return redocred_docs[:6]


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# ------------------------------------------------------------------------------------------ odd text


def test_lone_surrogates_become_replacement_characters_at_the_same_offsets(pipeline):
    text = f"{SENTENCE[:12]}\udcff{SENTENCE[12:]}"  # a surrogate right after "Marie Curie"
    parsed = pipeline.parse(text)
    assert parsed.text == text.replace("\udcff", "\ufffd") and len(parsed.text) == len(text)
    for sentence in parsed.token_spans:
        for start, end in sentence:
            assert 0 <= start < end <= len(text)
    assert clean_text("a\ud800b\udfffc") == "a\ufffdb\ufffdc"


def test_surrogates_and_bad_bytes_through_the_python_api(tiny_bilstm_dir):
    import hiere

    model = hiere.load(tiny_bilstm_dir, device="cpu")
    for text in ("Marie Curie\udcff was born in Warsaw, Poland.", "Marie \udc80Curie met Pierre Curie in Paris."):
        triples = model.extract(text)
        json.dumps(triples, ensure_ascii=False).encode("utf-8")  # printable: no surrogate left
        for triple in triples:
            assert all(sentence in clean_text(text) for sentence in triple["evidence"])
    entities = [{"start": 0, "end": 11, "type": "PER"}, {"start": 25, "end": 31, "type": "LOC"}]
    assert isinstance(model.extract("Marie Curie\udcff was born in Warsaw.", entities=entities), list)


def test_a_bad_byte_names_its_own_line_and_the_rest_continues(tiny_bilstm_dir, tmp_path, capsys):
    lines = ["It was so ." for _ in range(300)] + [SENTENCE.replace("Warsaw", "War\xffsaw"), SENTENCE]
    path = tmp_path / "docs.txt"
    path.write_bytes("\n".join(lines).encode("utf-8").replace("\xff".encode(), b"\xff") + b"\n")
    code, out, err = run(["extract", tiny_bilstm_dir, path, "--no-progress"], capsys)
    assert code == 0 and "Traceback" not in err
    assert f"{path}: line 301: 1 byte(s) that are not UTF-8 read as U+FFFD" in err
    docs = [json.loads(line)["doc"] for line in out.splitlines()]
    assert "line 301" in docs and "line 302" in docs
    assert "302 document(s)" in err


def test_malformed_and_deeply_nested_jsonl_lines_are_skipped_naming_the_line(tiny_bilstm_dir, tmp_path, capsys):
    path = tmp_path / "docs.jsonl"
    path.write_text("\n".join([json.dumps(SENTENCE), "{broken", "[" * 50_000 + "]" * 50_000,
                               json.dumps({"title": "no text"}), json.dumps({"text": SENTENCE, "title": "t\udcff"})])
                    + "\n", encoding="utf-8")
    code, out, err = run(["extract", tiny_bilstm_dir, path, "--no-progress"], capsys)
    assert code == 0
    assert f"{path}: line 2: malformed JSON" in err and f"{path}: line 3: JSON nested too deeply" in err
    assert f"{path}: line 4, field text:" in err and "3 skipped" in err
    assert {json.loads(line)["doc"] for line in out.splitlines()} == {"line 1", "t\ufffd"}


def test_unicode_line_separators_stay_inside_one_output_line(tiny_bilstm_dir, tmp_path, capsys):
    # JSON allows U+2028, U+2029 and U+0085 raw inside strings, but str.splitlines (and JavaScript)
    # break lines on them: hiere escapes them so every record is one line for every reader.
    title = "a\u2028b\x85c\u2029d"
    path = tmp_path / "docs.jsonl"
    path.write_text(json.dumps({"text": SENTENCE.replace("Warsaw", "War\u2028saw"), "title": title}) + "\n",
                    encoding="utf-8")
    code, out, err = run(["extract", tiny_bilstm_dir, path, "--no-progress"], capsys)
    assert code == 0 and out
    records = [json.loads(line) for line in out.splitlines()]
    assert len(records) == out.count("\n") and {record["doc"] for record in records} == {title}
    assert "\u2028" not in out and "\x85" not in out and "\u2029" not in out


def test_binary_standard_input_is_skipped_document_by_document(tiny_bilstm_dir, capsys, monkeypatch):
    data = (REPO / "src" / "hiere" / "resources" / "rel_info.json").read_bytes()[:200] + bytes(range(256)) * 4
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))
    code, _, err = run(["extract", tiny_bilstm_dir, "-", "--no-progress"], capsys)
    assert code == 0 and "Traceback" not in err and "binary data" in err and "skipped" in err


def test_deeply_nested_json_is_one_line(tiny_bilstm_dir, tmp_path, capsys):
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    for argv in (["score", deep, deep], ["extract", tiny_bilstm_dir, deep], ["predict", tiny_bilstm_dir, deep,
                                                                              "-o", tmp_path / "p.json"]):
        code, _, err = run(argv, capsys)
        assert code == 2 and one_error_line(err) == f"hiere: error: {deep}: JSON nested too deeply to be read"


# ------------------------------------------------------------------------------------------ options


@pytest.mark.parametrize(("option", "message"), [
    (["--device", "gpu"], "argument --device: 'gpu' is not a device: use auto, cpu, cuda or cuda:N"),
    (["--batch-size", "0"], "argument --batch-size: '0' must be an integer >= 1"),
    (["--threshold", "-0.5"], "argument --threshold: '-0.5' must be a score in [0, 1]"),
    (["--threshold", "nan"], "argument --threshold: 'nan' must be a score in [0, 1]"),
    (["--max-chars", "0"], "argument --max-chars: '0' must be an integer >= 1"),
    (["--window-tokens", "-1"], "argument --window-tokens: '-1' must be an integer >= 0"),
])
def test_bad_option_values_are_one_line_naming_the_option(option, message, capsys):
    code, _, err = run(["extract", "model", "--text", SENTENCE, *option], capsys)
    assert code == 2 and one_error_line(err) == f"hiere extract: error: {message} (see hiere extract --help)"


def test_cuda_without_cuda_is_one_line(tiny_bilstm_dir, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code, _, err = run(["extract", tiny_bilstm_dir, "--device", "cuda", "--text", SENTENCE], capsys)
    assert code == 2
    assert one_error_line(err) == "hiere: error: device=cuda but no CUDA device is available (use auto or cpu)"


def test_python_api_checks_its_option_values(gold, pipeline):
    predictor = GoldPredictor(gold, None)
    for options, field in (({"batch_size": 0}, "batch_size"), ({"max_chars": 0}, "max_chars"),
                           ({"threshold": -1.0}, "threshold")):
        with pytest.raises(HiereInputError, match=f"field {field}: must be"):
            list(extract(predictor, [SENTENCE], pipeline=pipeline, **options))


# ------------------------------------------------------------------------------------------ limits


def test_a_text_longer_than_max_chars_is_read_in_parts_with_a_warning(gold, pipeline, caplog):
    from hiere.data.relations import RelationMap

    predictor = GoldPredictor(gold, RelationMap.from_rel_info(REL_INFO))
    text = "\n\n".join(joined(doc) for doc in gold[:3])
    seen: list[int] = []
    [whole] = extract(predictor, [text], pipeline=pipeline)
    limit = max(len(joined(doc)) for doc in gold[:3]) + 2
    n_parts = len(split_windows(text, limit))
    [parts] = extract(predictor, [text], pipeline=pipeline, max_chars=limit, progress=seen.append)
    assert n_parts >= 2 and f"read as {n_parts} parts" in caplog.text
    assert sum(seen) == len(text) and len(seen) == n_parts
    assert parts and len({(t["head"], t["relation"], t["tail"]) for t in parts}) == len(parts)
    assert {t["relation"] for t in parts} <= {t["relation"] for t in whole} | {f.r for d in gold for f in d.facts}


def test_a_text_without_sentence_ends_is_cut_into_bounded_sentences(pipeline):
    parsed = pipeline.parse(" ".join(["Paris", "London", "Berlin", "and"] * 400))
    assert max(len(sentence) for sentence in parsed.document.sents) <= MAX_SENTENCE_TOKENS
    assert sum(len(sentence) for sentence in parsed.document.sents) == 1600


# ------------------------------------------------------------------------------------------ one bad document


class FailingPredictor(GoldPredictor):
    """Fails (as a model's featurize would) on any document mentioning ``Wilfried``."""

    def predict(self, examples: list) -> list[dict]:
        if any("Wilfried" in document.tokens for document in examples):
            raise HiereInputError(None, "record 0", None, "cannot featurize")
        return super().predict(examples)


def test_one_document_the_model_rejects_loses_only_its_own_output(gold, pipeline):
    from hiere.data.relations import RelationMap

    predictor = FailingPredictor(gold, RelationMap.from_rel_info(REL_INFO))
    texts = [joined(gold[1]), joined(gold[0]), joined(gold[2])]  # gold[0] is Wilfried Schneider's
    errors: list[HiereInputError] = []
    results = list(extract(predictor, texts, pipeline=pipeline, skip_errors=True, on_error=errors.append))
    assert len(results) == 3 and results[0] and results[1] == [] and results[2]
    assert len(errors) == 1 and "document 2" in str(errors[0]) and "cannot featurize" in str(errors[0])
    stream = extract(predictor, texts, pipeline=pipeline)
    assert next(stream) == results[0]
    with pytest.raises(HiereInputError, match="document 2"):
        next(stream)


def test_a_binary_document_raises_after_the_earlier_ones_are_yielded(gold, pipeline):
    from hiere.data.relations import RelationMap

    predictor = GoldPredictor(gold, RelationMap.from_rel_info(REL_INFO))
    stream = extract(predictor, [joined(gold[0]), joined(gold[1]), "abc\x00def"], pipeline=pipeline)
    assert next(stream) and next(stream)
    with pytest.raises(HiereInputError, match="document 3.*NUL"):
        next(stream)


# ------------------------------------------------------------------------------------------ hiere score


@pytest.fixture
def gold_file(tmp_path, redocred_raw):
    path = tmp_path / "gold.json"
    path.write_text(json.dumps(redocred_raw[:3]), encoding="utf-8")
    return path


def write_predictions(tmp_path: Path, records: list) -> Path:
    path = tmp_path / "pred.json"
    path.write_text(json.dumps(records), encoding="utf-8")
    return path


def facts(raw: dict, n: int) -> list[dict]:
    return [{"title": raw["title"], "h_idx": f["h"], "t_idx": f["t"], "r": f["r"], "score": 1.0}
            for f in raw["labels"][:n]]


@pytest.mark.parametrize(("change", "field", "message"), [
    ({"h_idx": 99}, "h_idx", "entity index 99 is out of range (the gold document has"),
    ({"t_idx": -1}, "t_idx", "entity index -1 is out of range"),
    ({"h_idx": "3"}, "h_idx", "must be an entity index (int), got '3'"),
    ({"r": "P99999"}, "r", "unknown relation 'P99999'"),
    ({"r": None}, "r", "must be a relation id (string), got None"),
    ({"score": "high"}, "score", "must be a finite number, got 'high'"),
])
def test_a_bad_prediction_is_one_line_naming_record_and_field(gold_file, redocred_raw, tmp_path, capsys,
                                                               change, field, message):
    records = facts(redocred_raw[0], 2)
    records[1].update(change)
    code, _, err = run(["score", gold_file, write_predictions(tmp_path, records)], capsys)
    title = redocred_raw[0]["title"]
    assert code == 2
    assert one_error_line(err).startswith(f"hiere: error: {tmp_path / 'pred.json'}: prediction 1 ({title!r}), "
                                          f"field {field}: {message}")


def test_a_missing_field_is_named(gold_file, redocred_raw, tmp_path, capsys):
    records = facts(redocred_raw[0], 1)
    del records[0]["t_idx"]
    code, _, err = run(["score", gold_file, write_predictions(tmp_path, records)], capsys)
    assert code == 2 and one_error_line(err).endswith("prediction 0, field t_idx: missing")


def test_unknown_titles_and_duplicates_are_scored_as_the_official_scorer_with_warnings(
        gold_file, redocred_raw, tmp_path, capsys):
    records = facts(redocred_raw[0], 2) + facts(redocred_raw[0], 1)  # one duplicate
    records.append({"title": "No such document", "h_idx": 0, "t_idx": 1, "r": "P17"})
    code, out, err = run(["score", gold_file, write_predictions(tmp_path, records)], capsys)
    metrics = json.loads(out)
    n_gold = sum(len(doc["labels"]) for doc in redocred_raw[:3])
    assert code == 0 and metrics["n_pred"] == 3 and metrics["n_correct"] == 2 and metrics["n_gold"] == n_gold
    assert metrics["precision"] == pytest.approx(2 / 3)
    assert "1 prediction(s) name a title that is not in the gold file" in err
    assert "1 duplicate prediction(s)" in err


def test_an_empty_gold_file_is_an_error_and_one_without_facts_a_warning(tmp_path, redocred_raw, capsys):
    empty = tmp_path / "empty.json"
    empty.write_text("[]")
    pred = write_predictions(tmp_path, [])
    code, _, err = run(["score", empty, pred], capsys)
    assert code == 2 and one_error_line(err) == f"hiere: error: {empty}: the gold file holds no documents"
    unlabelled = tmp_path / "unlabelled.json"
    unlabelled.write_text(json.dumps([{**doc, "labels": []} for doc in redocred_raw[:2]]))
    code, out, err = run(["score", unlabelled, pred], capsys)
    assert code == 0 and json.loads(out)["n_gold"] == 0
    assert f"hiere: warning: {unlabelled}: no gold document has a relation fact: recall is 0" in err


# ------------------------------------------------------------------------------------------ configs


@pytest.mark.parametrize(("override", "message"), [
    ("trainr.lr=0.1", "unknown config sections ['trainr']"),
    ("data.tset=x.json", "unknown data keys ['tset']"),
    ("trainer.lr=-0.001", "trainer.lr=-0.001: must be > 0"),
    ("trainer.epochs=0", "trainer.epochs=0: must be >= 1"),
    ("trainer.schedule=cosine", "trainer.schedule='cosine': must be one of linear, constant"),
    ("trainer.lr=fast", "trainer.lr='fast': expected a float, got str"),
    ("trainer.epochs=ten", "trainer.epochs='ten': expected an int, got str"),
    ("trainer.grad_accumulation=0", "trainer.grad_accumulation=0: must be >= 1"),
    ("model.dropout=2", "model.dropout=2.0: must be in [0, 1)"),
    ("model.hidden=0", "model.hidden=0: must be >= 1"),
    ("model.hidden=-8", "model.hidden=-8: must be a finite number >= 0"),
    ("trainer.precision=fp8", "trainer.precision='fp8': must be one of auto, fp32, bf16, fp16"),
    ("data.test=missing_test.json", "missing_test.json: file does not exist (data.test)"),
    ("trainer.lr=[", "--set trainer.lr=[: the value is not valid YAML"),
])
def test_bad_configs_are_one_line_before_any_training(override, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "bilstm.yaml"
    config.write_text(yaml.safe_dump({
        "model": {"name": "bilstm", "hidden": 16},
        "data": {"train": str(REDOCRED), "train_slice": [0, 4], "relations": str(REL_INFO)},
        "trainer": {"epochs": 1, "max_steps": 1, "progress": False},
    }))
    started = time.perf_counter()
    code, _, err = run(["train", config, "-o", tmp_path / "out", "--set", override], capsys)
    assert code == 2 and message in one_error_line(err)
    assert not (tmp_path / "out" / "model.safetensors").exists() and time.perf_counter() - started < 20


def test_model_config_ranges_cover_top_k():
    from hiere.models.doc.atlop import ATLOPConfig

    with pytest.raises(HiereConfigError, match=r"model\.top_k=0: must be >= 1"):
        ATLOPConfig.from_dict({"top_k": 0})
    assert ATLOPConfig.from_dict({"top_k": None, "window_overlap": 0}).top_k is None


def test_binary_and_directory_configs_are_one_line(tmp_path, capsys):
    binary = tmp_path / "model.yaml"
    binary.write_bytes(b"model:\n  name: bilstm\n" + bytes(range(128, 256)))
    for path, message in ((binary, f"{binary}: line 3: not UTF-8 text (binary file?)"),
                          (tmp_path, f"{tmp_path}: is a directory, expected a config file")):
        code, _, err = run(["train", path, "-o", tmp_path / "out"], capsys)
        assert code == 2 and one_error_line(err) == f"hiere: error: {message}"


# ------------------------------------------------------------------------------------------ outputs


def test_an_interrupted_write_leaves_no_temp_file(tmp_path, monkeypatch):
    target = tmp_path / "pred.json"

    def interrupted(_fd: int) -> None:
        raise cli.Terminated(signal.SIGTERM)

    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(cli.Terminated):
        write_json_atomic(target, [{"title": "x"}] * 1000)
    assert list(tmp_path.iterdir()) == []


def test_a_temp_file_of_a_killed_process_is_removed_by_the_next_write(tmp_path):
    target = tmp_path / "pred.json"
    dead = tmp_path / ".pred.json.999999999.abc123.tmp"  # no such process
    alive = tmp_path / f".pred.json.{os.getppid()}.def456.tmp"  # a process that runs: maybe writing now
    dead.write_text("partial")
    alive.write_text("partial")
    write_json_atomic(target, {"ok": True})
    assert json.loads(target.read_text()) == {"ok": True}
    assert not dead.exists() and alive.exists()
    assert remove_stale_temp_files(target) == []


def test_sigterm_stops_a_command_with_a_message_and_exit_143(capsys, monkeypatch):
    def slow_score(_args) -> int:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
        return 0

    monkeypatch.setitem(cli.COMMANDS, "score", slow_score)
    before = signal.getsignal(signal.SIGTERM)
    code, _, err = run(["score", "gold.json", "pred.json"], capsys)
    assert code == 143 and one_error_line(err).startswith("hiere: stopped by SIGTERM")
    assert signal.getsignal(signal.SIGTERM) is before


def test_empty_inputs_and_outputs_that_cannot_be_files_are_one_line(tiny_bilstm_dir, tmp_path, gold_file, capsys):
    empty_list, empty_bags = tmp_path / "empty.json", tmp_path / "empty.txt"
    empty_list.write_text("[]")
    empty_bags.write_text("")
    cases = [
        (["score", "--task", "bag", empty_bags, empty_list], f"{empty_bags}: the gold file holds no bags"),
        (["evaluate", tiny_bilstm_dir, empty_list], f"{empty_list}: no documents to evaluate"),
        (["predict", tiny_bilstm_dir, gold_file, "-o", tmp_path], f"{tmp_path}: is a directory; give the name"),
        (["predict", tiny_bilstm_dir, gold_file, "-o", gold_file / "p.json"], f"{gold_file} is a file"),
        (["train", REPO / "configs" / "bilstm_redocred.yaml", "-o", gold_file], "is a file; the output of training"),
    ]
    for argv, message in cases:
        code, _, err = run(argv, capsys)
        assert code == 2 and message in one_error_line(err)


def test_a_lone_surrogate_in_an_output_is_written_as_an_escape(tmp_path):
    target = tmp_path / "pred.json"
    write_json_atomic(target, [{"title": "Caf\u00e9 \udcff"}])
    assert "\\udcff" in target.read_bytes().decode("utf-8")
    assert json.loads(target.read_text(encoding="utf-8")) == [{"title": "Caf\u00e9 \udcff"}]
