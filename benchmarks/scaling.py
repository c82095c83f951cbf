"""How cost grows with input size: document length and bag size, training and prediction.

    python benchmarks/scaling.py --out runs/scaling [--doc-models bilstm,atlop] [--bag-models pcnn_att,bert_att]
    python benchmarks/scaling.py --out runs/scaling --report     # the table and docs/img/scaling.png again

Inputs are made from real data, never generated text:

* **documents of 100 to 2,000 tokens**: consecutive Re-DocRED documents (the training part of dev_revised.json,
  0-449) joined (sentences, entities and facts carried over with their offsets) until the length is reached,
  then cut after the last whole sentence that fits (mentions, entities and facts of the cut sentences go);
  8 documents per length;
* **bags of 1 to 1,024 sentences**: NYT10-subset test sentences in file order, each bag's sentences given one
  made-up entity pair id and the relation of its first sentence (text and entity positions unchanged: the cost
  does not depend on the labels); 8 bags per size (4 from 256 on).

For each model: one model directory trained by ``hiere train`` for 2 steps on a slice (speed does not depend on
what it learned), then, per input size, the **training step** time from the trainer's own profile
(``trainer.profile_steps``: ``hiere train`` on 12 examples of that size, batches of 4, 2 profiled steps after a
warm-up step, seconds per training example; an optimizer step every batch, also for HIN's gradient accumulation
of 3, so that 12 examples make 3 steps) and the **prediction** time per example through :func:`hiere.load` /
``Predictor.predict`` (after one warm-up call on the same inputs, or on one bag for bags of 256 and more; for
documents with the threshold at +inf, so that the time is reading, featurizing and scoring, not decoding an
untrained model's output). One
thread (``--threads``), the config's precision. Each measurement runs in its own process (``hiere train`` or this
script with ``--measure``), so peak RSS is per measurement too.
Writes OUT/scaling.json, prints a Markdown table and draws docs/img/scaling.png (``--plot``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
REDOCRED = DATA / "redocred" / "dev_revised.json"
NYT_TEST = DATA / "nyt10" / "nyt10sub_test.txt"
DOC_LENGTHS = (100, 250, 500, 1000, 2000)
BAG_SIZES = (1, 4, 16, 64, 256, 1024)
TRAIN_EXAMPLES, TRAIN_BATCH = 12, 4  # training measurement: 3 steps of 4 examples (one warm-up, 2 profiled)
DOC_CONFIGS = {"bilstm": "configs/bilstm_redocred.yaml", "hin_glove": "configs/hin_glove.yaml",
               "atlop": "configs/atlop_redocred.yaml", "kmgre": "configs/kmgre_redocred.yaml"}
BAG_CONFIGS = {"pcnn_att": "configs/pcnn_att_nyt10.yaml", "hnre_pcnn": "configs/hnre_pcnn_nyt10.yaml",
               "bert_att": "configs/bert_att_nyt10.yaml", "hiclre": "configs/hiclre_nyt10.yaml"}


# ------------------------------------------------------------------------------------------------ inputs


def cut_document(doc: dict[str, Any], n_sents: int) -> dict[str, Any]:
    """The first ``n_sents`` sentences of ``doc``; mentions, entities and facts outside them dropped."""
    entities, new_index = [], {}
    for index, entity in enumerate(doc["vertexSet"]):
        mentions = [m for m in entity if m["sent_id"] < n_sents]
        if mentions:
            new_index[index] = len(entities)
            entities.append(mentions)
    labels = [{**fact, "h": new_index[fact["h"]], "t": new_index[fact["t"]],
               "evidence": [e for e in fact.get("evidence", []) if e < n_sents]}
              for fact in doc["labels"] if fact["h"] in new_index and fact["t"] in new_index]
    return {"title": doc["title"], "sents": doc["sents"][:n_sents], "vertexSet": entities, "labels": labels}


def join_documents(docs: list[dict[str, Any]]) -> dict[str, Any]:
    sents, entities, labels = [], [], []
    for doc in docs:
        sent_offset, entity_offset = len(sents), len(entities)
        sents.extend(doc["sents"])
        entities.extend([{**m, "sent_id": m["sent_id"] + sent_offset} for m in entity] for entity in doc["vertexSet"])
        labels.extend({**fact, "h": fact["h"] + entity_offset, "t": fact["t"] + entity_offset,
                       "evidence": [e + sent_offset for e in fact.get("evidence", [])]} for fact in doc["labels"])
    return {"title": " + ".join(d["title"] for d in docs), "sents": sents, "vertexSet": entities, "labels": labels}


def documents_of_length(source: list[dict[str, Any]], tokens: int, count: int) -> list[dict[str, Any]]:
    """``count`` documents of at most ``tokens`` tokens (and more than half of it), joined from ``source``."""
    made, cursor = [], 0
    while len(made) < count:
        parts, length = [], 0
        while length < tokens:
            doc = source[cursor % len(source)]
            cursor += 1
            parts.append(doc)
            length += sum(len(s) for s in doc["sents"])
        joined = join_documents(parts)
        kept, total = 0, 0
        for sent in joined["sents"]:
            if total + len(sent) > tokens:
                break
            kept, total = kept + 1, total + len(sent)
        doc = cut_document(joined, max(1, kept))
        if len(doc["vertexSet"]) >= 2:
            made.append(doc)
    return made


def bags_of_size(lines: list[str], size: int, count: int) -> list[str]:
    """``count`` bags of ``size`` sentences: consecutive test lines, one made-up entity pair per bag, and the
    bag's first relation on all its sentences (so a training bag by (pair, relation) is the whole bag)."""
    out, cursor = [], 0
    for bag in range(count):
        relation = None
        for _ in range(size):
            record = json.loads(lines[cursor % len(lines)])
            cursor += 1
            relation = relation or record["relation"]
            record.update(relation=relation, h={**record["h"], "id": f"scale.h{bag}"},
                          t={**record["t"], "id": f"scale.t{bag}"})
            out.append(json.dumps(record))
    return out


def write_inputs(out: Path, lengths: tuple[int, ...] = DOC_LENGTHS, sizes: tuple[int, ...] = BAG_SIZES,
                 ) -> dict[str, Path]:
    files = {}
    source = json.loads(REDOCRED.read_text())[:450]
    (out / "inputs").mkdir(parents=True, exist_ok=True)
    for tokens in lengths:  # 12 documents: 8 predicted, all 12 trained on (3 steps of 4)
        docs = documents_of_length(source, tokens, TRAIN_EXAMPLES)
        parts = ((f"doc_{tokens}", docs[:8]), (f"train_doc_{tokens}", docs), (f"warm_doc_{tokens}", docs[:8]))
        for name, part in parts:
            files[name] = out / "inputs" / f"{name}.json"
            files[name].write_text(json.dumps(part))
    lines = [line for line in NYT_TEST.read_text().splitlines() if line.strip()]
    for size in sizes:
        bags = bags_of_size(lines, size, TRAIN_EXAMPLES)
        predicted = 8 if size < 256 else 4
        for name, part in ((f"bag_{size}", bags[: predicted * size]), (f"train_bag_{size}", bags),
                           (f"warm_bag_{size}", bags[: (predicted if size < 256 else 1) * size])):
            files[name] = out / "inputs" / f"{name}.txt"
            files[name].write_text("\n".join(part) + "\n")
    return files


# ------------------------------------------------------------------------------------------------ runs


def hiere(args: list[str], threads: int, log: Path) -> dict[str, Any]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": str(ROOT / "src")}
    started = time.perf_counter()
    with log.open("w") as handle:
        process = subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code:
        raise SystemExit(f"{' '.join(args)} exited with {code}: see {log}")
    return {"wall_seconds": time.perf_counter() - started, "peak_rss_mb": usage.ru_maxrss / 1024}


def base_overrides(kind: str, threads: int) -> list[str]:
    common = ["trainer.epochs=1", "trainer.progress=false", "trainer.patience=0", f"trainer.num_threads={threads}"]
    if kind == "doc":
        return [*common, "data.dev_slice=[450,452]"]
    return [*common, "data.dev_slice=[0,20]", "data.test=null"]


# joined documents of 1,000-2,000 tokens carry a few hundred entities; models with a coreference-id table
# (BiLSTM-RE, HIN: model.max_entities, 128 by default) get one large enough for them
MAX_ENTITIES = 512


def model_overrides(config: str) -> list[str]:
    """Overrides a model needs for the longest joined documents (none for models without an entity cap)."""
    import dataclasses

    from hiere.config import load_config
    from hiere.models import get_model_class

    model_class = get_model_class(load_config(config)["model"]["name"])
    fields = {field.name for field in dataclasses.fields(model_class.Config)}
    return [f"model.max_entities={MAX_ENTITIES}"] if "max_entities" in fields else []


def sets(overrides: list[str]) -> list[str]:
    return [part for item in overrides for part in ("--set", item)]


def measure_model(name: str, config: str, kind: str, files: dict[str, Path], out: Path, threads: int) -> dict:
    model_dir = out / "models" / name
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    extra = model_overrides(config) if kind == "doc" else []
    if not (model_dir / "model.safetensors").exists():
        slice_ = "data.train_slice=[0,16]" if kind == "doc" else "data.train_slice=[0,400]"
        hiere(["-m", "hiere", "train", config, "-o", str(model_dir),
               *sets([*base_overrides(kind, threads), *extra, slice_, "trainer.max_steps=2"])],
               threads, logs / f"{name}.log")
    results = {}
    for key, path in files.items():
        if not key.startswith(kind):  # the predicted file; train_* and warm_* go with it
            continue
        record: dict[str, Any] = {}
        profile_dir = out / "train" / f"{name}_{key}"
        if not (profile_dir / "profile.json").exists():
            hiere(["-m", "hiere", "train", config, "-o", str(profile_dir),
                   *sets([*base_overrides(kind, threads), *extra, f"data.train={files['train_' + key]}",
                          "data.train_slice=null", f"trainer.batch_size={TRAIN_BATCH}", "trainer.grad_accumulation=1",
                          "trainer.max_steps=3", "trainer.profile_steps=2"])],
                  threads, logs / f"{name}_{key}.train.log")
        profile = json.loads((profile_dir / "profile.json").read_text())
        record["train_seconds_per_example"] = profile["seconds_per_step"] / TRAIN_BATCH
        record["train_steps_profiled"] = profile["steps"]
        result_path = out / "predict" / f"{name}_{key}.json"
        result_path.parent.mkdir(parents=True, exist_ok=True)
        if not result_path.exists():
            run = hiere([str(Path(__file__).resolve()), "--measure", str(model_dir), str(path),
                         str(files["warm_" + key]), str(result_path)], threads, logs / f"{name}_{key}.predict.log")
            measured = json.loads(result_path.read_text())
            measured["peak_rss_mb"] = round(run["peak_rss_mb"])
            result_path.write_text(json.dumps(measured))
        record.update(json.loads(result_path.read_text()))
        results[key] = record
        print(f"{name} {key}: train {record['train_seconds_per_example']:.3f} s/example, "
              f"predict {record['predict_seconds_per_example']:.3f} s/example", flush=True)
    return results


def measure_predict(model_dir: str, path: str, warm: str, result: str, threshold: float = float("inf")) -> None:
    """In its own process: load, one warm-up call (the same file; one bag of the largest bags), then one timed
    ``predict`` call. ``threshold``: a document model's decision threshold (see below; the model's own: 0 for
    ATLOP/KMGRE, whose adaptive threshold is built into their scores)."""
    import torch

    import hiere as api

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    predictor = api.load(model_dir, device="cpu")
    examples = predictor.read(path)  # documents, or entity-pair bags
    if predictor.task.name == "doc":
        # a model trained for 2 steps puts arbitrary (pair, relation) cells above its threshold (an untrained
        # BiLSTM-RE: 37,000 records a 500-token document), and decoding them would swamp the figure; a trained
        # model emits about as many as the document has facts. So documents are read, featurized, encoded and
        # scored in full, and decoding emits nothing (bag records are a fixed ranking and stay as they are).
        predictor.threshold = threshold
    predictor.predict(warm)
    started = time.perf_counter()
    records = predictor.predict(path)  # reads the file, featurizes, scores and decodes (what hiere predict does)
    seconds = time.perf_counter() - started
    count = len(examples)
    Path(result).write_text(json.dumps({
        "examples": count, "records": len(records), "predict_seconds": seconds,
        "predict_seconds_per_example": seconds / count if count else None,
        "in_process_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }))


# ------------------------------------------------------------------------------------------------ report


def report(out: Path, plot: Path | None) -> str:
    results = json.loads((out / "scaling.json").read_text())
    lines = ["| model | input | train s / example | predict s / example | predict peak RSS MB |",
             "|---|---|---|---|---|"]
    for name, by_input in results["models"].items():
        for key, record in by_input.items():
            lines.append(f"| {name} | {key.replace('_', ' ')} | {record['train_seconds_per_example']:.3f} | "
                         f"{record['predict_seconds_per_example']:.4f} | {record['peak_rss_mb']} |")
    if plot is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        figure, axes = plt.subplots(1, 2, figsize=(11, 4.2))
        panels = ((axes[0], "doc", "document length (tokens)"), (axes[1], "bag", "bag size (sentences)"))
        for axis, kind, label in panels:
            for name, by_input in results["models"].items():
                keys = [k for k in by_input if k.startswith(kind)]
                if not keys:
                    continue
                sizes = [int(k.split("_")[1]) for k in keys]
                train = [by_input[k]["train_seconds_per_example"] for k in keys]
                predict = [by_input[k]["predict_seconds_per_example"] for k in keys]
                line, = axis.plot(sizes, train, marker="o", label=f"{name} train")
                axis.plot(sizes, predict, marker="s", linestyle="--", color=line.get_color(), label=f"{name} predict")
            axis.set_xscale("log")
            axis.set_yscale("log")
            axis.set_xlabel(label)
            axis.set_ylabel("seconds per example")
            axis.grid(alpha=0.3, which="both")
            axis.legend(fontsize=8)
        figure.suptitle(f"cost against input size ({results['machine']['cpu']}, {results['threads']} thread)")
        figure.tight_layout()
        plot.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(plot, dpi=120)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "scaling")
    parser.add_argument("--doc-models", default="bilstm,atlop")
    parser.add_argument("--bag-models", default="pcnn_att,bert_att")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--doc-lengths", default=",".join(map(str, DOC_LENGTHS)), help="document lengths (tokens)")
    parser.add_argument("--bag-sizes", default=",".join(map(str, BAG_SIZES)), help="bag sizes (sentences)")
    parser.add_argument("--plot", type=Path, default=ROOT / "docs" / "img" / "scaling.png")
    parser.add_argument("--report", action="store_true", help="only the table and plot of an earlier run")
    parser.add_argument("--measure", nargs=4, metavar=("MODEL_DIR", "INPUT", "WARM", "RESULT"),
                        help="one prediction measurement in this process: load, predict WARM, time INPUT -> RESULT")
    parser.add_argument("--threshold", type=float, default=float("inf"),
                        help="with --measure: a document model's decision threshold (default +inf: no records)")
    args = parser.parse_args(argv)
    if args.measure:
        measure_predict(*args.measure, threshold=args.threshold)
        return 0
    if not args.report:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from harness import machine

        files = write_inputs(args.out, tuple(int(n) for n in args.doc_lengths.split(",") if n),
                             tuple(int(n) for n in args.bag_sizes.split(",") if n))
        models: dict[str, Any] = {}
        for kind, names, configs in (("doc", args.doc_models, DOC_CONFIGS), ("bag", args.bag_models, BAG_CONFIGS)):
            for name in [n for n in names.split(",") if n]:
                if name not in configs:
                    parser.error(f"unknown {kind} model {name!r}; known: {', '.join(configs)}")
                models[name] = measure_model(name, configs[name], kind, files, args.out, args.threads)
        (args.out / "scaling.json").write_text(json.dumps(
            {"machine": machine(), "threads": args.threads, "models": models}, indent=1))
    print(report(args.out, args.plot))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
