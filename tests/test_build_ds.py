"""hiere build-ds on slices of Re-DocRED dev: round trip through the OpenNRE reader, splits, NA ratio,
determinism, resume, and one-line errors for bad input."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest
import torch

from hiere.build_ds import AliasIndex, BuildOptions, KnowledgeBase, build_dataset, read_kb
from hiere.cli import main
from hiere.data.bags import read_bags, read_relation_map
from hiere.errors import HiereInputError
from hiere.models import get_model_class

REPO = Path(__file__).resolve().parents[1]
REDOCRED = REPO.parent / "shared" / "data" / "redocred" / "dev_revised.json"
SPLITS = ("train", "dev", "test")


def _check_module():
    spec = importlib.util.spec_from_file_location("build_ds_check", REPO / "benchmarks" / "build_ds_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def known_answer(tmp_path_factory):
    """The first 12 Re-DocRED dev documents as a text corpus, their gold facts as KB, as DocRED JSON too."""
    documents = json.loads(REDOCRED.read_text(encoding="utf-8"))[:12]
    folder = tmp_path_factory.mktemp("known_answer")
    paths = _check_module().write_known_answer(documents, folder)
    paths["docred"] = folder / "docs.json"
    paths["docred"].write_text(json.dumps(documents), encoding="utf-8")
    return paths


@pytest.fixture(scope="module")
def built_text(known_answer, tmp_path_factory):
    """Bags from the raw-text corpus (spaCy sentences and NER, alias matching)."""
    out = tmp_path_factory.mktemp("built_text")
    stats = build_dataset(known_answer["corpus"], known_answer["kb"], out, known_answer["aliases"],
                          options=BuildOptions(match="both", provenance=True))
    return out, stats


def build_docred(known_answer, out: Path, **options) -> dict:
    """Bags from the DocRED JSON (given sentences, alias matching only: no spaCy, fast)."""
    return build_dataset(known_answer["docred"], known_answer["kb"], out, known_answer["aliases"],
                         options=BuildOptions(match="alias", **options))


def lines_of(out: Path, split: str) -> list[dict]:
    return [json.loads(line) for line in (out / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()]


def test_round_trip_reads_back_and_featurizes(built_text):
    out, stats = built_text
    relations = read_relation_map(out / "rel2id.json")
    assert relations.relations[0] == "NA"
    assert json.loads((out / "rel2id.json").read_text())["NA"] == 0
    for split in SPLITS:
        for record in lines_of(out, split):
            for key in ("h", "t"):
                start, end = record[key]["pos"]
                assert record["text"][start:end] == record[key]["name"]
            assert set(record) == {"text", "h", "t", "relation", "source"}
    train = read_bags(out / "train.jsonl", relations, mode="pair_relation", require_labels=True)
    test = read_bags(out / "test.jsonl", relations, require_labels=True)
    assert len(train) == stats["bags"]["train"] and train and test
    for bag in train[:50]:  # the reader's token spans hold the entity names written by the builder
        sentence = bag.sentences[0]
        assert " ".join(sentence.tokens[slice(*sentence.head)]).replace(" ", "") == bag.head_name.replace(" ", "")
    model_class = get_model_class("pcnn_att")
    config = model_class.Config.from_dict({"glove_vocab": 0, "train_words": True, "hidden": 8})
    model = model_class(config, model_class.build_resources(config, train, relations))
    batch = model.collate([model.featurize(bag) for bag in test[:8]])
    output = model(batch)
    assert output["scores"].shape == (8, len(relations)) and torch.isfinite(output["loss"])


def test_every_kb_relation_of_a_pair_becomes_an_instance(built_text, known_answer):
    out, _ = built_text
    kb = read_kb(known_answer["kb"], known_answer["aliases"])
    seen: dict[tuple[str, str, str, int], set[str]] = {}
    for split in SPLITS:
        for record in lines_of(out, split):
            key = (record["text"], record["h"]["id"], record["t"]["id"], record["source"]["start"])
            seen.setdefault(key, set()).add(record["relation"])
    for (_, head, tail, _), relations in seen.items():
        expected = kb.facts.get((head, tail)) or {"NA"}
        assert relations == expected


def test_splits_disjoint_by_entity_pair(built_text):
    out, stats = built_text
    pairs = {split: {frozenset((r["h"]["id"], r["t"]["id"])) for r in lines_of(out, split)} for split in SPLITS}
    assert not pairs["train"] & pairs["dev"] and not pairs["train"] & pairs["test"] and not pairs["dev"] & pairs["test"]
    assert all(pairs[split] for split in SPLITS)
    assert stats["lines"] == {split: len(lines_of(out, split)) for split in SPLITS}
    assert stats["kb_facts_matched"] + stats["kb_facts_never_matched"] == stats["kb_facts"]


@pytest.mark.parametrize("ratio", [0.0, 0.5, None])
def test_na_ratio(known_answer, tmp_path, ratio):
    stats = build_docred(known_answer, tmp_path, na_ratio=ratio)
    pairs = stats["pairs"]
    assert pairs["na_seen"] > pairs["positive"] * 0.5  # the slice has enough NA pairs to sample from
    expected = pairs["na_seen"] if ratio is None else round(ratio * pairs["positive"])
    assert pairs["na_kept"] == expected
    na_pairs = {frozenset((r["h"]["id"], r["t"]["id"])) for s in SPLITS for r in lines_of(tmp_path, s)
                if r["relation"] == "NA"}
    assert len(na_pairs) == expected


def test_deterministic_for_a_seed(known_answer, tmp_path):
    build_docred(known_answer, tmp_path / "a", seed=7)
    build_docred(known_answer, tmp_path / "b", seed=7)
    build_docred(known_answer, tmp_path / "c", seed=8)
    for name in ("train.jsonl", "dev.jsonl", "test.jsonl", "rel2id.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert (tmp_path / "a" / "test.jsonl").read_bytes() != (tmp_path / "c" / "test.jsonl").read_bytes()


def test_resume_after_a_kill_gives_the_same_output(known_answer, tmp_path):
    build_docred(known_answer, tmp_path / "fresh")
    build_docred(known_answer, tmp_path / "killed")
    spool = tmp_path / "killed" / ".build-ds" / "instances.jsonl"
    data = spool.read_bytes()
    checkpoints = [i for i, line in enumerate(data.splitlines(keepends=True)) if b'"checkpoint"' in line]
    lines = data.splitlines(keepends=True)
    cut = lines[: checkpoints[4] + 3]  # five documents done, then a half-written sixth
    spool.write_bytes(b"".join(cut)[:-7])
    for name in ("train.jsonl", "stats.json"):
        (tmp_path / "killed" / name).unlink()
    build_dataset(known_answer["docred"], known_answer["kb"], tmp_path / "killed", known_answer["aliases"],
                  options=BuildOptions(match="alias"), resume=True)
    for name in ("train.jsonl", "dev.jsonl", "test.jsonl", "rel2id.json"):
        assert (tmp_path / "fresh" / name).read_bytes() == (tmp_path / "killed" / name).read_bytes()
    fresh, resumed = (json.loads((tmp_path / d / "stats.json").read_text()) for d in ("fresh", "killed"))
    assert fresh == resumed


def test_alias_matching_rules():
    kb = KnowledgeBase({("United States", "Washington, D.C."): {"P36"}, ("US", "Washington"): {"P36"}},
                       {"United States": {"United States", "United States of America"},
                        "Washington, D.C.": {"Washington, D.C."}, "US": {"US"}, "Washington": {"Washington"}}, {})
    text = "The United States of America , whose capital is Washington, D.C., thanks us ."
    exact = AliasIndex(kb).find(text)
    assert [(text[a:b], e) for a, b, e in exact] == [
        ("United States of America", {"United States"}), ("Washington, D.C.", {"Washington, D.C."})]
    folded = AliasIndex(kb, ignore_case=True)
    lower = text.lower()  # "us" stays unmatched: a short all-capital alias keeps its case
    assert [lower[a:b] for a, b, _ in folded.find(lower)] == ["united states of america", "washington, d.c."]
    assert [e for _, _, e in folded.find("the US and Washington")] == [{"US"}, {"Washington"}]
    assert folded.find("Washingtonian") == []  # whole words only


def _cli(argv: list[str], capsys) -> tuple[int, str]:
    code = main(argv)
    return code, capsys.readouterr().err.strip()


def test_two_field_kb_line_is_one_clear_error(known_answer, tmp_path, capsys):
    kb = tmp_path / "facts.tsv"
    good = known_answer["kb"].read_text(encoding="utf-8").splitlines()
    kb.write_text(f"{good[0]}\n{good[1].rsplit(chr(9), 1)[0]}\n", encoding="utf-8")
    out = tmp_path / "out"
    code, err = _cli(["build-ds", "--corpus", str(known_answer["corpus"]), "--kb", str(kb), "-o", str(out)], capsys)
    assert code == 2
    assert err == (f"hiere: error: {kb}: line 2: expected 3 tab-separated fields (head <tab> relation <tab> tail), "
                   "got 2")
    assert not out.exists()


def test_empty_kb_and_unreadable_files(known_answer, tmp_path, capsys):
    empty = tmp_path / "empty.tsv"
    empty.write_text("# no facts yet\n\n", encoding="utf-8")
    out = tmp_path / "out"
    corpus = str(known_answer["corpus"])
    code, err = _cli(["build-ds", "--corpus", corpus, "--kb", str(empty), "-o", str(out)], capsys)
    assert code == 2 and err.startswith(f"hiere: error: {empty}: the KB has no facts") and "\n" not in err
    code, err = _cli(["build-ds", "--corpus", str(tmp_path / "missing"), "--kb", str(known_answer["kb"]),
                      "-o", str(out)], capsys)
    assert code == 2 and err == f"hiere: error: {tmp_path / 'missing'}: corpus path does not exist"
    binary = tmp_path / "corpus.txt"
    binary.write_bytes(b"Paris is in France.\n" + b"\xff\xfe\x00\x81" * 50)
    code, err = _cli(["build-ds", "--corpus", str(binary), "--kb", str(known_answer["kb"]), "-o", str(out),
                      "--match", "alias", "--no-progress"], capsys)
    assert code == 2 and err == f"hiere: error: {binary}: line 2: not UTF-8 text (binary file?)"
    assert not (out / "train.jsonl").exists()
    bad_json = tmp_path / "corpus.jsonl"
    bad_json.write_text('{"text": "Paris is in France."}\n{"text": \n', encoding="utf-8")
    code, err = _cli(["build-ds", "--corpus", str(bad_json), "--kb", str(known_answer["kb"]), "-o", str(out),
                      "--match", "alias", "--no-progress"], capsys)
    assert code == 2 and err.startswith(f"hiere: error: {bad_json}: line 2: malformed JSON")


def test_bad_option_values():
    with pytest.raises(HiereInputError, match="--split"):
        BuildOptions(split=(0.5, 0.5, 0.5))
    with pytest.raises(HiereInputError, match="--na-ratio"):
        BuildOptions(na_ratio=-1)


def test_shipped_bag_config_reads_the_built_splits(built_text):
    """configs/pcnn_att_nyt10.yaml with only data paths overridden reads every split (no training here)."""
    from hiere.config import load_config
    from hiere.tasks import get_task
    from hiere.training.trainer import build_relations, read_split

    out, stats = built_text
    overrides = [f"data.{split}={out / f'{split}.jsonl'}" for split in SPLITS]
    overrides += [f"data.relations={out / 'rel2id.json'}", "data.long_tail=null"]
    config = load_config(REPO / "configs" / "pcnn_att_nyt10.yaml", overrides)
    task = get_task("bag")
    relations = build_relations(task, config, config["data"]["train"])
    assert relations.relations == read_relation_map(out / "rel2id.json").relations
    train = read_split(task, config, "train", relations, mode="pair_relation")
    assert len(train) == stats["bags"]["train"]
    assert read_split(task, config, "dev", relations) and read_split(task, config, "test", relations)


class _NoSpacy:
    def __getattr__(self, name):
        raise AssertionError("spaCy was used although the saved matches were complete")


def test_resume_with_new_sampling_skips_spacy(built_text, known_answer, tmp_path):
    out, first = built_text
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    stats = build_dataset(known_answer["corpus"], known_answer["kb"], copy, known_answer["aliases"],
                          options=BuildOptions(match="both", provenance=True, na_ratio=0.0), resume=True,
                          nlp=_NoSpacy())
    assert stats["pairs"]["na_kept"] == 0 and first["pairs"]["na_kept"] > 0
    assert stats["sentences"] == first["sentences"]
    assert not any(r["relation"] == "NA" for split in SPLITS for r in lines_of(copy, split))


def test_help_teaches_the_formats(capsys):
    assert main(["build-ds", "--help"]) == 0  # main() returns argparse's exit code
    text = capsys.readouterr().out
    for expected in ("head <TAB> relation <TAB> tail", "entity <TAB> alias", "--na-ratio", "--resume",
                     "hiere train configs/pcnn_att_nyt10.yaml", "docs/build_ds.md"):
        assert expected in text
