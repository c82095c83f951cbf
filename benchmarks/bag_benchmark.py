"""Bag-level benchmark: PCNN+ATT, CNN+ATT, HNRE-CNN, HNRE-PCNN on NYT10 (subset) and GIDS.

Every run is ``python -m hiere train configs/<model>_<dataset>.yaml -o OUT/<dataset>_<model>_s<seed>
--set trainer.seed=S --set trainer.epochs=E --set trainer.num_threads=1 ...`` (the trainer keeps the epoch
with the best dev PR-AUC and scores it once on test: ``test_metrics.json``), then a measurement process
that loads the model directory with ``hiere.load`` and times ``predict`` on the test split (featurizing,
scoring and decoding, one thread), saving the ranking as ``test_predictions.npz`` in the run directory.
``OUT/results.json`` keeps what a run directory cannot: the peak resident memory of the training process
(``wait4``; of the last process only when a run was resumed, as last polled when a training left running by a
stopped instance is adopted) and the inference throughput. ``--jobs`` processes run at once; a run whose directory
has ``test_metrics.json`` is not retrained, an unfinished one continues with ``--resume``.

    python benchmarks/bag_benchmark.py --out bench_out/bag --datasets nyt10 gids --seeds 1 2 3 --jobs 2
    python benchmarks/bag_benchmark.py --out bench_out/bag --report --plot docs/img/bag_pr_curves.png
    python benchmarks/bag_benchmark.py --out bench_out/bag --datasets nyt10 --models pcnn_att hnre_pcnn hnre_pcnn_warm
    python benchmarks/bag_benchmark.py --out bench_out/longtail --datasets nyt10 --models pcnn_att hnre_pcnn_warm \
        --set data.train=runs/nyt10_longtail/train.txt --set data.dev=runs/nyt10_longtail/val.txt \
        --set data.test=runs/nyt10_longtail/test.txt     # the split of nyt10_longtail_split.py

``--epochs`` (default: each config's budget: 60 epochs, early stopping with patience 10 on dev PR-AUC),
``--batch-size``, ``--lr``, ``--weight-decay`` and ``--eval-batch-size`` are shorthands for
``--set trainer.<key>=<value>``; ``--set key=value`` goes to every run. ``--report`` computes the tables
from the run directories (test metrics, history, the saved test ranking, or a fresh ``predict`` where it is
missing) and ``OUT/results.json``:
ranking metrics, long-tail Hits@K (HNRE's rel100/rel200 lists and this training subset's own long tail),
Hits@10 by training frequency (on a ``nyt10_longtail_split.py`` split also on the relations it gave training
instances), the NA analysis, throughput, memory, and the PR curves (``--plot``).

Data (the configs): NYT10 ``nyt10sub_train90.txt`` (train) / ``nyt10sub_val10.txt`` (dev) /
``nyt10sub_test.txt`` (test), Hits@K with HNRE's ``rel100.txt`` / ``rel200.txt``. GIDS: ``gids_dev.txt``
split by entity pair in file order, 80/10/10 (the 1,082 pair bags: [0, 866) train, [866, 974) dev,
[974, 1082) test).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import yaml
from bag_report import mean_std, print_ranking_table
from harness import ROOT, Outcome, Run, find_training, machine, run_queue, train_command

DATA = ROOT.parent / "shared" / "data"
DATASETS = ("nyt10", "gids")
# model key -> (configs/<stem>_<dataset>.yaml, overrides of this model only)
MODELS: dict[str, tuple[str, list[str]]] = {
    "pcnn_att": ("pcnn_att", []),
    "cnn_att": ("cnn_att", []),
    "hnre_cnn": ("hnre_cnn", []),
    "hnre_pcnn": ("hnre_pcnn", []),
    # ablations (run with --models): HNRE without its hierarchy, HNRE with two levels
    "hnre_pcnn_levels1": ("hnre_pcnn", ["model.levels=1"]),
    "hnre_pcnn_levels2": ("hnre_pcnn", ["model.levels=2"]),
    # the released HNRE code's recipe: warm-started from the flat model of the same seed and data set
    # ({run:KEY} is that run's directory; such runs start after every other run of the invocation)
    "hnre_pcnn_warm": ("hnre_pcnn", ["model.init_from={run:pcnn_att}"]),
    "hnre_cnn_warm": ("hnre_cnn", ["model.init_from={run:cnn_att}"]),
}
MAIN_MODELS = ("pcnn_att", "cnn_att", "hnre_cnn", "hnre_pcnn")
LONG_TAIL = {"rel200": DATA / "hnre" / "rel200.txt"}  # rel100 is the configs' data.long_tail (test_metrics.json)
BUCKETS = ((0, 0, "unseen in train"), (1, 99, "1-99"), (100, 999, "100-999"), (1000, 10**9, ">=1000"))
PREDICTIONS = "test_predictions.npz"
RUN_NAME = re.compile(rf"({'|'.join(DATASETS)})_(.+)_s(\d+)")
SHORTHANDS = {"batch_size": "batch_size", "eval_batch_size": "eval_batch_size", "lr": "lr",
              "weight_decay": "weight_decay"}  # option -> trainer key


def config_path(dataset: str, model_key: str) -> Path:
    return ROOT / "configs" / f"{MODELS[model_key][0]}_{dataset}.yaml"


def finished(run_dir: Path) -> bool:
    return (run_dir / "test_metrics.json").exists()


def measured(run_dir: Path, entry: dict) -> bool:
    return finished(run_dir) and (run_dir / PREDICTIONS).exists() and "inference_sentences_per_s" in entry


# --- the test ranking of a trained model ---------------------------------------------------------------


def predict_test(run_dir: Path) -> dict[str, Any]:
    """``hiere.load(run_dir).predict`` on the run's test split, timed. -> the ranking as arrays, in the
    records' order (ties in the PR curve keep it): ``bag_index`` (row -> test bag), ``scores`` (row x non-NA
    relation), ``relations``; and the test ``bags``, ``seconds``, ``sentences``."""
    import numpy as np

    import hiere
    from hiere.training.trainer import read_split

    predictor = hiere.load(run_dir, device="cpu")
    bags = read_split(predictor.task, predictor.config, "test", predictor.relations)
    started = time.perf_counter()
    records = predictor.predict(bags)
    seconds = time.perf_counter() - started
    names = predictor.relations.relations[1:]
    width = len(names)
    if [r["relation"] for r in records[:width]] != names or len(records) != width * len(bags):
        raise ValueError(f"{run_dir}: predict did not give one record per test bag and non-NA relation")
    position = {bag.pair: index for index, bag in enumerate(bags)}
    return {
        "bag_index": np.array([position[(r["h"], r["t"])] for r in records[::width]], dtype=np.int64),
        "scores": np.array([r["score"] for r in records], dtype=np.float32).reshape(-1, width),
        "relations": names,
        "bags": bags,
        "seconds": seconds,
        "sentences": sum(bag.size for bag in bags),
    }


def ranking_records(bags: list, ranking: dict[str, Any], keep: set[int] | None = None) -> list[dict[str, Any]]:
    """The prediction records of a saved ranking (of the bags in ``keep`` only, if given)."""
    names = list(ranking["relations"])
    records = []
    for index, row in zip(ranking["bag_index"].tolist(), ranking["scores"].tolist(), strict=True):
        if keep is None or index in keep:
            bag = bags[index]
            pairs = zip(names, row, strict=True)
            records.extend({"h": bag.head_id, "t": bag.tail_id, "relation": r, "score": s} for r, s in pairs)
    return records


def measure(run_dir: Path) -> None:
    """Child process: time ``predict`` on the test split, save the ranking, print a JSON line."""
    import numpy as np
    import torch

    from hiere.io import write_bytes_atomic
    from hiere.tasks.bag import TASK

    torch.set_num_threads(1)
    ranking = predict_test(run_dir)
    buffer = io.BytesIO()
    np.savez(buffer, bag_index=ranking["bag_index"], scores=ranking["scores"], relations=np.array(ranking["relations"]))
    write_bytes_atomic(run_dir / PREDICTIONS, buffer.getvalue())
    bags = ranking["bags"]
    pr_auc = TASK.metrics(bags, ranking_records(bags, ranking))["pr_auc"]
    trainer_pr_auc = json.loads((run_dir / "test_metrics.json").read_text())["pr_auc"]
    if abs(pr_auc - trainer_pr_auc) > 1e-6:
        print(f"warning: test PR-AUC {pr_auc:.6f} differs from the trainer's {trainer_pr_auc:.6f}", file=sys.stderr)
    print(json.dumps({"bags": len(bags), "sentences": ranking["sentences"], "seconds": ranking["seconds"],
                      "pr_auc": pr_auc, "trainer_pr_auc": trainer_pr_auc}))


# --- running ------------------------------------------------------------------------------------------


def trainer_epochs(config_file: Path) -> int:
    return int(yaml.safe_load(config_file.read_text())["trainer"]["epochs"])


def source_runs(model_key: str) -> list[str]:
    """The model keys whose runs a model's overrides name (``{run:KEY}``): they must finish first."""
    return re.findall(r"\{run:(\w+)\}", " ".join(MODELS[model_key][1]))


def run_overrides(args: argparse.Namespace, model_key: str, seed: int, epochs: int, dataset: str = "",
                  out: Path | None = None) -> list[str]:
    overrides = [f"trainer.seed={seed}", f"trainer.epochs={epochs}", "trainer.num_threads=1", "trainer.progress=false"]
    # YAML's own spelling of the value: PyYAML reads 1e-05 as a string, 1.0e-05 as a float
    overrides += [f"trainer.{key}={yaml.safe_dump(getattr(args, option)).splitlines()[0]}"
                  for option, key in SHORTHANDS.items() if getattr(args, option) is not None]
    model = [re.sub(r"\{run:(\w+)\}", lambda m: str((out or Path()) / f"{dataset}_{m.group(1)}_s{seed}"), item)
             for item in MODELS[model_key][1]]
    return overrides + model + args.overrides


def run_all(args: argparse.Namespace, out: Path) -> int:
    from hiere.io import write_json_atomic

    here = machine()
    print(f"command: {' '.join([sys.executable, *sys.argv])}\nmachine: {here}", flush=True)

    results_path = out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    queue = []
    for dataset in args.datasets:
        for seed in args.seeds:
            for model_key in args.models:
                run_dir = out / f"{dataset}_{model_key}_s{seed}"
                epochs = args.epochs or trainer_epochs(config_path(dataset, model_key))
                if finished(run_dir) and trainer_epochs(run_dir / "config.yaml") != epochs:
                    print(f"note: {run_dir.name} is kept as trained, with trainer.epochs="
                          f"{trainer_epochs(run_dir / 'config.yaml')} (not {epochs}); delete it to retrain", flush=True)
                if measured(run_dir, results.get(run_dir.name, {})):
                    continue
                overrides = run_overrides(args, model_key, seed, epochs, dataset, out)
                train = train_command(config_path(dataset, model_key).relative_to(ROOT), run_dir, overrides,
                                      resume=(run_dir / "checkpoint").exists())
                steps = [("measure", [sys.executable, str(Path(__file__).resolve()), "--measure", str(run_dir)])]
                entry = results.setdefault(run_dir.name, {})
                entry.update(dataset=dataset, model=model_key, seed=seed)
                if not finished(run_dir):
                    steps.insert(0, ("train", train))
                    entry.update(command=" ".join(train), machine=here)
                adopted = find_training(run_dir) if steps[0][0] == "train" else None
                queue.append(Run(run_dir.name, out, steps, adopted, {"dir": run_dir, "model": model_key}))

    def on_done(run: Run, outcome: Outcome) -> bool:
        entry = results.setdefault(run.key, {})
        entry.pop("error", None)
        phase = outcome.phase
        if outcome.exit_code is None:  # a training left running by an earlier instance: VmHWM as last seen
            entry["train_peak_rss_mb"] = round(outcome.peak_rss_mb, 1) if outcome.peak_rss_mb else None
            entry["train_adopted"] = True
        else:
            entry[f"{phase}_wall_seconds"] = round(outcome.wall_seconds, 1)
            entry[f"{phase}_peak_rss_mb"] = round(outcome.peak_rss_mb, 1)
        go_on = False
        if outcome.exit_code not in (0, None):
            entry["error"] = f"{phase} exit {outcome.exit_code} (see {run.log(phase)})"
        elif phase == "train":
            go_on = finished(run.info["dir"])
            if not go_on:
                entry["error"] = f"training ended without test_metrics.json (see {run.log(phase)})"
        else:
            line = json.loads(run.log(phase).read_text().strip().splitlines()[-1])
            entry.update(inference_sentences_per_s=line["sentences"] / line["seconds"],
                         test_sentences=line["sentences"], inference_seconds=round(line["seconds"], 2))
        write_json_atomic(results_path, results, indent=1)
        return go_on

    # warm starts read a finished run of the same seed: they wait until every other run has ended
    later = [run for run in queue if source_runs(run.info["model"])]
    run_queue([run for run in queue if run not in later], args.jobs, on_done)
    for run in later:
        results[run.key].pop("error", None)
        missing = [key for key in source_runs(run.info["model"])
                   if not finished(out / run.key.replace(run.info["model"], key, 1))]
        if missing:
            results[run.key]["error"] = f"its source run ({', '.join(missing)}) has not finished; run it first"
    run_queue([run for run in later if "error" not in results[run.key]], args.jobs, on_done)
    failed = [run.key for run in queue if "error" in results[run.key]]
    for key in failed:
        print(f"failed: {key}: {results[key]['error']}", file=sys.stderr)
    print(f"tables: python {Path(__file__).relative_to(ROOT)} --out {out} --report", flush=True)
    return 1 if failed else 0


# --- report -------------------------------------------------------------------------------------------


def split_data(config: dict, cache: dict) -> dict[str, Any]:
    """Training and test bags and relation map of a run's resolved config (shared by runs on the same data)."""
    from hiere.models import get_model_class
    from hiere.tasks.bag import TASK
    from hiere.training.trainer import build_relations, read_split

    model_class = get_model_class(config["model"]["name"])
    read_options = model_class.training_read_options(model_class.Config.from_dict(config["model"]))
    key = json.dumps([config["data"], read_options], sort_keys=True)
    if key not in cache:
        relations = build_relations(TASK, config, config["data"].get("train"))
        cache[key] = {
            "relations": relations,
            "train": read_split(TASK, config, "train", relations, **read_options),
            "test": read_split(TASK, config, "test", relations),
        }
    return cache[key]


def trained_sentences(config: dict, history: list[dict], train: list) -> float:
    """Sentences the training loops went through: every training bag once per epoch; with
    ``trainer.max_steps`` the bags of the steps taken, at the mean bag size."""
    sentences = sum(bag.size for bag in train) * len(history)
    trainer = config["trainer"]
    if trainer.get("max_steps"):
        bags = min(len(train) * len(history),
                   int(trainer["max_steps"]) * int(trainer["batch_size"]) * int(trainer.get("grad_accumulation", 1)))
        sentences = bags * sum(bag.size for bag in train) / len(train)
    return sentences


def tail_counts(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k.startswith(("hits", "n_long"))}


def moved_relations(config: dict) -> list[str]:
    """On a split made by ``nyt10_longtail_split.py`` (its ``split.json`` beside the training file): the test
    relations that had no training sentence in the subset and got some from the split. Otherwise none."""
    train = Path(config["data"].get("train") or "")
    split = (train if train.is_absolute() else ROOT / train).parent / "split.json"
    if not split.exists():
        return []
    relations = json.loads(split.read_text())["relations"]
    return sorted(r for r, counts in relations.items() if counts["train_sentences"][1] > 0)


def analyse(run_dir: Path, entry: dict, cache: dict) -> dict[str, Any]:
    """One run's report record: the trainer's test metrics and history, the benchmark's measurements, and
    from the test ranking the long-tail, frequency-bucket and NA figures (NYT10) and the PR curve."""
    import numpy as np

    from hiere.data.bags import read_long_tail
    from hiere.metrics.bag import hits_at_k
    from hiere.tasks.bag import TASK

    dataset, model_key, seed = RUN_NAME.fullmatch(run_dir.name).groups()
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    history = json.loads((run_dir / "history.json").read_text())
    test = json.loads((run_dir / "test_metrics.json").read_text())
    data = split_data(config, cache)
    bags = data["test"]
    train_seconds = sum(record["train_seconds"] for record in history)
    record: dict[str, Any] = {
        "dataset": dataset,
        "model": model_key,
        "seed": int(seed),
        "test": test,
        "best_epoch": max((r for r in history if "dev" in r), key=lambda r: r["dev"]["pr_auc"])["epoch"],
        "train_sentences_per_s": trained_sentences(config, history, data["train"]) / train_seconds,
        "inference_sentences_per_s": entry.get("inference_sentences_per_s"),
        "peak_rss_mb": entry.get("train_peak_rss_mb"),
    }
    saved = run_dir / PREDICTIONS
    if saved.exists():
        with np.load(saved) as arrays:
            ranking = {name: arrays[name] for name in arrays.files}
    else:
        print(f"{run_dir.name}: no {PREDICTIONS}, predicting on test", file=sys.stderr, flush=True)
        ranking = predict_test(run_dir)
    records = ranking_records(bags, ranking)
    record["pr_curve"] = _curve(bags, records)
    if dataset != "nyt10":
        return record
    for name, path in LONG_TAIL.items():
        test[name] = hits_at_k(bags, records, read_long_tail(path))
    # the long tail of *this* training subset: relations seen in training, with < 100 / < 200 sentences
    counts = Counter(bag.relations[0] for bag in data["train"] for _ in bag.sentences)
    for limit in (100, 200):
        rare = [r for r, n in counts.items() if r != "NA" and n < limit]
        test[f"subset_tail{limit}"] = hits_at_k(bags, records, rare)
    moved = moved_relations(config)
    if moved:
        test["split_moved"] = hits_at_k(bags, records, moved)
    record["buckets"] = {}
    for low, high, label in BUCKETS:
        relations = [r for r in data["relations"].relations[1:] if low <= counts.get(r, 0) <= high]
        record["buckets"][label] = hits_at_k(bags, records, relations)
    positive = {i for i, bag in enumerate(bags) if not bag.is_na}
    positive_bags = [bag for i, bag in enumerate(bags) if i in positive]
    record["pr_auc non-NA bags"] = TASK.metrics(positive_bags, ranking_records(bags, ranking, positive))["pr_auc"]
    top = ranking["scores"].max(axis=1)
    is_positive = np.array([index in positive for index in ranking["bag_index"].tolist()])
    record["top score NA bags"] = float(top[~is_positive].mean())
    record["top score positive bags"] = float(top[is_positive].mean())
    record["n_positive"], record["n_na"] = int(is_positive.sum()), int((~is_positive).sum())
    return record


def _curve(bags: list, records: list[dict]) -> dict[str, list[float]]:
    import numpy as np

    from hiere.metrics.bag import pr_curve

    precision, recall = pr_curve(bags, records)
    # every rank up to 1,000 (where the curves differ), then 400 points over the rest
    keep = np.unique(np.concatenate([np.arange(min(1000, len(precision))), np.linspace(0, len(precision) - 1, 400)]))
    keep = keep.astype(int)
    return {"precision": precision[keep].tolist(), "recall": recall[keep].tolist()}


def report(out: Path, plot: Path | None) -> None:
    results_path = out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    cache: dict = {}
    run_dirs = [d for d in sorted(out.iterdir()) if d.is_dir() and RUN_NAME.fullmatch(d.name) and finished(d)]
    runs = [analyse(d, results.get(d.name, {}), cache) for d in run_dirs]
    machines = sorted({str(e["machine"]["cpu"]) for e in results.values() if "machine" in e})
    print(f"runs: {len(runs)} in {out}; machine: {', '.join(machines) or 'n/a'}")
    for dataset in DATASETS:
        rows = [r for r in runs if r["dataset"] == dataset]
        if not rows:
            continue
        print(f"\n### {dataset}\n")
        print_ranking_table(rows, MODELS)
        if dataset == "nyt10":
            long_tail_table(rows)
    nyt10 = [r for r in runs if r["dataset"] == "nyt10"]
    if nyt10:
        bucket_tables(nyt10)
    if plot is not None:
        _plot(runs, plot)


def long_tail_table(rows: list[dict]) -> None:
    print("\n#### nyt10 long tail: Hits@10 / @15 / @20 (%), micro over bags and macro over relations\n")
    sources = [
        ("rel100 (HNRE)", lambda r: r["test"]),
        ("rel200 (HNRE)", lambda r: r["test"].get("rel200")),
        ("<100 train sent.", lambda r: r["test"].get("subset_tail100")),
        ("<200 train sent.", lambda r: r["test"].get("subset_tail200")),
    ]
    if any("split_moved" in r["test"] for r in rows):  # a run on the long-tail split
        sources.append(("moved by the split", lambda r: r["test"].get("split_moved")))
    header = ["model"] + [f"{name} {kind}" for name, _ in sources for kind in ("micro", "macro")]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for model_key in MODELS:
        runs = [r for r in rows if r["model"] == model_key]
        if not runs:
            continue
        cells = [model_key]
        for _, pick in sources:
            for kind in ("micro", "macro"):
                values = [[(pick(r) or {}).get(f"hits@{k}_{kind}") for r in runs] for k in (10, 15, 20)]
                cells.append(" / ".join(mean_std(v, digits=1) for v in values))
        print("| " + " | ".join(cells) + " |")
    sizes = []
    for name, pick in sources:
        found = next((pick(r) for r in rows if "n_long_tail_bags" in (pick(r) or {})), {})
        sizes.append(f"{name}: {found.get('n_long_tail_bags', 'n/a')} / {found.get('n_long_tail_relations', 'n/a')}")
    print("\nbags / relations: " + ", ".join(sizes))


def bucket_tables(rows: list[dict]) -> None:
    """NYT10 Hits@10 by how many training sentences the gold relation has; ranking without NA bags."""
    sizes = {label: (m["n_long_tail_bags"], m["n_long_tail_relations"]) for label, m in rows[0]["buckets"].items()}
    print("\n#### nyt10 Hits@10 (%) by training sentences of the gold relation (test bags / relations per group)\n")
    header = ["model"] + [f"{label} ({sizes[label][0]} / {sizes[label][1]}) {kind}"
                          for label in sizes for kind in ("micro", "macro")]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for model_key in MODELS:
        runs = sorted((r for r in rows if r["model"] == model_key), key=lambda r: r["seed"])
        if not runs:
            continue
        cells = [f"{model_key} (seeds {','.join(str(r['seed']) for r in runs)})"]
        for label in sizes:
            for kind in ("micro", "macro"):
                cells.append(mean_std([r["buckets"][label][f"hits@10_{kind}"] for r in runs], digits=1))
        print("| " + " | ".join(cells) + " |")

    print(
        f"\n#### nyt10 ranking without NA bags ({rows[0]['n_positive']} non-NA test bags) and the best non-NA score"
        f" of NA bags ({rows[0]['n_na']}) vs non-NA bags\n"
    )
    print("| model | PR-AUC, non-NA bags only | mean top non-NA score, NA bags | same, non-NA bags |")
    print("|---|---|---|---|")
    for model_key in MODELS:
        runs = [r for r in rows if r["model"] == model_key]
        if runs:
            keys = ("pr_auc non-NA bags", "top score NA bags", "top score positive bags")
            print("| " + " | ".join([model_key] + [mean_std([r[key] for r in runs]) for key in keys]) + " |")


def _plot(runs: list[dict], path: Path) -> None:
    """PR curves of the main models on test, one panel per dataset (the first seed drawn boldest)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = [d for d in DATASETS if any(r["dataset"] == d for r in runs)]
    if not datasets:
        return
    figure, axes = plt.subplots(1, len(datasets), figsize=(6 * len(datasets), 4.5), squeeze=False)
    for axis, dataset in zip(axes[0], datasets, strict=True):
        for model_key in MAIN_MODELS:
            chosen = sorted((r for r in runs if r["dataset"] == dataset and r["model"] == model_key),
                            key=lambda r: r["seed"])
            for index, run in enumerate(chosen):
                axis.plot(
                    run["pr_curve"]["recall"],
                    run["pr_curve"]["precision"],
                    lw=1.2 if index == 0 else 0.6,
                    alpha=1.0 if index == 0 else 0.5,
                    label=f"{model_key} (seed {run['seed']}, AUC {run['test']['pr_auc']:.3f})",
                    color=f"C{list(MODELS).index(model_key)}",
                )
        axis.set_title(f"{dataset} test: precision-recall")
        axis.set_xlabel("recall")
        axis.set_ylabel("precision")
        axis.set_ylim(0, 1.02)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=6)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("bench_out/bag"))
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument("--models", nargs="+", default=list(MAIN_MODELS), choices=list(MODELS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--epochs", type=int, help="trainer.epochs (default: the config's)")
    parser.add_argument("--batch-size", type=int, help="trainer.batch_size, bags per step (default: the config's)")
    parser.add_argument("--eval-batch-size", type=int, help="trainer.eval_batch_size (default: the config's)")
    parser.add_argument("--lr", type=float, help="trainer.lr (default: the config's)")
    parser.add_argument("--weight-decay", type=float, help="trainer.weight_decay (default: the config's)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="config override for every run (repeatable)")
    parser.add_argument("--jobs", type=int, default=1, help="processes at once (trainings and measurements)")
    parser.add_argument("--report", action="store_true", help="print the tables of the runs in --out")
    parser.add_argument("--plot", type=Path, help="with --report: PR curves PNG")
    parser.add_argument("--measure", type=Path, metavar="RUN_DIR", help=argparse.SUPPRESS)
    args = parser.parse_args()
    out = args.out.resolve()
    plot = args.plot.resolve() if args.plot else None
    run_dir = args.measure.resolve() if args.measure else None
    os.chdir(ROOT)  # the configs' data paths are relative to the repository
    if run_dir is not None:
        measure(run_dir)
        return 0
    if args.report:
        if not out.is_dir():
            parser.error(f"--out {out} does not exist")
        report(out, plot)
        return 0
    out.mkdir(parents=True, exist_ok=True)
    return run_all(args, out)


if __name__ == "__main__":
    sys.exit(main())
