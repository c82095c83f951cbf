"""Bag-level benchmark: PCNN+ATT, CNN+ATT, HNRE-CNN, HNRE-PCNN on NYT10 (subset) and GIDS.

Every run: the same GloVe 50d embeddings, optimizer and epoch budget; the model is selected on dev PR-AUC
(best epoch) and scored once on test. Each run is its own process (one thread), so its peak memory is its
own. Results go to ``OUT/{dataset}_{model}_{seed}.json``; finished runs are skipped when the script is run
again. ``--report`` prints the markdown table (mean ± std over seeds) and draws the PR curves.

    python benchmarks/bag_benchmark.py --out bench_out/bag --epochs 20 --seeds 1 2 3
    python benchmarks/bag_benchmark.py --out bench_out/bag --report --plot docs/bag_pr_nyt10.png

Data: NYT10 ``nyt10sub_train90.txt`` (train) / ``nyt10sub_val10.txt`` (dev) / ``nyt10sub_test.txt`` (test),
Hits@K with HNRE's ``rel100.txt`` / ``rel200.txt``. GIDS: ``gids_dev.txt`` split by entity pair in file order,
80/10/10 (the 1,082 pair bags: [0, 866) train, [866, 974) dev, [974, 1082) test; configs/*_gids.yaml use the
same slices).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bag_report import mean_std, print_ranking_table

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
MODELS: dict[str, dict[str, Any]] = {
    "pcnn_att": {"name": "pcnn_att", "encoder": "pcnn"},
    "cnn_att": {"name": "cnn_att", "encoder": "cnn"},
    "hnre_cnn": {"name": "hnre", "encoder": "cnn"},
    "hnre_pcnn": {"name": "hnre", "encoder": "pcnn"},
    # ablations (run with --models): HNRE without its hierarchy, HNRE with two levels
    "hnre_pcnn_levels1": {"name": "hnre", "encoder": "pcnn", "levels": 1},
    "hnre_pcnn_levels2": {"name": "hnre", "encoder": "pcnn", "levels": 2},
}
MAIN_MODELS = ("pcnn_att", "cnn_att", "hnre_cnn", "hnre_pcnn")
DATASETS = ("nyt10", "gids")
GIDS_SPLIT = (866, 108)  # entity pairs (bags in file order): 866 train, 108 dev, the last 108 test


def load_dataset(name: str) -> dict[str, Any]:
    """Train (OpenNRE (pair, relation) bags), dev and test (pair bags), relation map, long-tail lists."""
    from hiere.data.bags import read_bags, read_relation_map

    if name == "nyt10":
        folder = DATA / "nyt10"
        relations = read_relation_map(folder / "nyt10_rel2id.json")
        return {
            "relations": relations,
            "train": read_bags(folder / "nyt10sub_train90.txt", relations, mode="pair_relation", require_labels=True),
            "dev": read_bags(folder / "nyt10sub_val10.txt", relations, require_labels=True),
            "test": read_bags(folder / "nyt10sub_test.txt", relations, require_labels=True),
            "long_tail": {
                "rel100": [line.strip() for line in (DATA / "hnre" / "rel100.txt").read_text().splitlines() if line],
                "rel200": [line.strip() for line in (DATA / "hnre" / "rel200.txt").read_text().splitlines() if line],
            },
        }
    path = DATA / "gids" / "gids_dev.txt"
    relations = read_relation_map(DATA / "gids" / "gids_rel2id.json")
    pair_bags = read_bags(path, relations, require_labels=True)
    n_train, n_dev = GIDS_SPLIT
    train_pairs = {bag.pair for bag in pair_bags[:n_train]}
    relation_bags = read_bags(path, relations, mode="pair_relation", require_labels=True)
    train = [bag for bag in relation_bags if bag.pair in train_pairs]
    return {
        "relations": relations,
        "train": train,
        "dev": pair_bags[n_train : n_train + n_dev],
        "test": pair_bags[n_train + n_dev :],
        "long_tail": {},
    }


def score(model: Any, features: list[dict], batch_size: int) -> tuple[Any, list | None]:
    import torch

    model.eval()
    parts, explanations = [], []
    with torch.no_grad():
        for start in range(0, len(features), batch_size):
            output = model(model.collate(features[start : start + batch_size]))
            parts.append(output["scores"])
            explanations.extend(output.get("explanations") or [])
    return torch.cat(parts), explanations or None


def evaluate(task: Any, model: Any, bags: list, features: list, batch_size: int, **options: Any) -> dict:
    scores, _ = score(model, features, batch_size)
    records = task.decode(bags, [(i, None) for i in range(len(bags))], scores, model.relations)
    return task.metrics(bags, records, **options), records


def run_one(dataset: str, model_key: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np
    import torch

    from hiere.models import get_model_class
    from hiere.tasks.bag import TASK

    torch.set_num_threads(1)
    random.seed(seed)
    torch.manual_seed(seed)
    data = load_dataset(dataset)
    settings = dict(MODELS[model_key])
    model_class = get_model_class(settings.pop("name"))
    config = model_class.Config.from_dict(settings)
    resources = model_class.build_resources(config, data["train"], data["relations"])
    model = model_class(config, resources)
    model.init_pretrained()
    train_features = [model.featurize(bag) for bag in data["train"]]
    dev_features = [model.featurize(bag) for bag in data["dev"]]
    test_features = [model.featurize(bag) for bag in data["test"]]
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    generator = torch.Generator().manual_seed(seed)
    best = {"pr_auc": -1.0, "epoch": 0, "state": None}
    history, train_seconds, train_sentences = [], 0.0, 0
    for epoch in range(1, args.epochs + 1):
        model.train()
        order = torch.randperm(len(train_features), generator=generator).tolist()
        started, losses = time.perf_counter(), []
        for start in range(0, len(order), args.batch_size):
            chunk = [train_features[i] for i in order[start : start + args.batch_size]]
            loss = model(model.collate(chunk))["loss"]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
            train_sentences += sum(len(f["sentences"]) for f in chunk)
        train_seconds += time.perf_counter() - started
        dev_metrics, _ = evaluate(TASK, model, data["dev"], dev_features, args.eval_batch_size)
        history.append({"epoch": epoch, "loss": statistics.mean(losses), "dev_pr_auc": dev_metrics["pr_auc"]})
        print(
            f"{dataset} {model_key} seed {seed} epoch {epoch}: loss {history[-1]['loss']:.4f} "
            f"dev PR-AUC {dev_metrics['pr_auc']:.4f}",
            flush=True,
        )
        if dev_metrics["pr_auc"] > best["pr_auc"]:
            best = {
                "pr_auc": dev_metrics["pr_auc"],
                "epoch": epoch,
                "state": {k: v.clone() for k, v in model.state_dict().items()},
            }
    model.load_state_dict(best["state"])
    test_sentences = sum(len(f["sentences"]) for f in test_features)
    started = time.perf_counter()
    scores, _ = score(model, test_features, args.eval_batch_size)
    inference_seconds = time.perf_counter() - started
    records = TASK.decode(data["test"], [(i, None) for i in range(len(data["test"]))], scores, model.relations)
    test = TASK.metrics(data["test"], records, long_tail=data["long_tail"].get("rel100"))
    if "rel200" in data["long_tail"]:
        rel200 = TASK.metrics(data["test"], records, long_tail=data["long_tail"]["rel200"])
        test["rel200"] = {k: v for k, v in rel200.items() if k.startswith("hits") or k.startswith("n_long")}
        # long tail of *this* training subset: relations seen in training, with < 100 / < 200 sentences
        counts = Counter(bag.relations[0] for bag in data["train"] for _ in bag.sentences)
        for limit in (100, 200):
            rare = [r for r, n in counts.items() if r != "NA" and n < limit]
            rare_metrics = TASK.metrics(data["test"], records, long_tail=rare)
            test[f"subset_tail{limit}"] = {
                k: v for k, v in rare_metrics.items() if k.startswith("hits") or k.startswith("n_long")
            }
    args.out.mkdir(parents=True, exist_ok=True)
    np.save(args.out / f"{dataset}_{model_key}_{seed}_test_scores.npy", scores.numpy())
    return {
        "dataset": dataset,
        "model": model_key,
        "seed": seed,
        "settings": {**MODELS[model_key], **vars(args) | {"out": str(args.out)}},
        "best_epoch": best["epoch"],
        "dev_pr_auc": best["pr_auc"],
        "history": history,
        "test": test,
        "n_train_bags": len(data["train"]),
        "n_test_bags": len(data["test"]),
        "train_sentences_per_s": train_sentences / train_seconds,
        "inference_sentences_per_s": test_sentences / inference_seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "pr_curve": _curve(data["test"], records),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}",
    }


def _curve(bags: list, records: list[dict]) -> dict[str, list[float]]:
    import numpy as np

    from hiere.metrics.bag import pr_curve

    precision, recall = pr_curve(bags, records)
    # every rank up to 1,000 (where the curves differ), then 400 points over the rest
    keep = np.unique(np.concatenate([np.arange(min(1000, len(precision))), np.linspace(0, len(precision) - 1, 400)]))
    keep = keep.astype(int)
    return {"precision": precision[keep].tolist(), "recall": recall[keep].tolist()}


def report(out: Path, plot: Path | None) -> None:
    results = [json.loads(p.read_text()) for p in sorted(out.glob("*.json"))]
    for dataset in DATASETS:
        rows = [r for r in results if r["dataset"] == dataset]
        if not rows:
            continue
        print(f"\n### {dataset}\n")
        print_ranking_table(rows, MODELS)
        if dataset != "nyt10":
            continue
        print(f"\n#### {dataset} long tail: Hits@10 / @15 / @20 (%), micro over bags and macro over relations\n")
        sources = [
            ("rel100 (HNRE)", lambda r: r["test"]),
            ("rel200 (HNRE)", lambda r: r["test"].get("rel200")),
            ("<100 train sent.", lambda r: r["test"].get("subset_tail100")),
            ("<200 train sent.", lambda r: r["test"].get("subset_tail200")),
        ]
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
                    parts = []
                    for k in (10, 15, 20):
                        values = [(pick(r) or {}).get(f"hits@{k}_{kind}") for r in runs]
                        parts.append(mean_std(values, digits=1))
                    cells.append(" / ".join(parts))
            print("| " + " | ".join(cells) + " |")
        counts = [
            (name, next((pick(r) for r in rows if "n_long_tail_bags" in (pick(r) or {})), {})) for name, pick in sources
        ]
        print(
            "\nbags / relations: "
            + ", ".join(
                f"{name}: {c.get('n_long_tail_bags', 'n/a')} / {c.get('n_long_tail_relations', 'n/a')}"
                for name, c in counts
            )
        )
    buckets(out, results)
    if plot is not None:
        _plot(results, plot, out)


BUCKETS = ((0, 0, "unseen in train"), (1, 99, "1-99"), (100, 999, "100-999"), (1000, 10**9, ">=1000"))


def buckets(out: Path, results: list[dict]) -> None:
    """NYT10 Hits@10 by how many training sentences the gold relation has (from the saved test scores)."""
    import numpy as np
    import torch

    from hiere.tasks.bag import TASK

    runs = [r for r in results if r["dataset"] == "nyt10"]
    runs = [r for r in runs if (out / f"nyt10_{r['model']}_{r['seed']}_test_scores.npy").exists()]
    if not runs:
        return
    data = load_dataset("nyt10")
    counts = Counter(bag.relations[0] for bag in data["train"] for _ in bag.sentences)
    groups = {
        label: [r for r in data["relations"].relations[1:] if low <= counts.get(r, 0) <= high]
        for low, high, label in BUCKETS
    }
    rows = [(i, None) for i in range(len(data["test"]))]
    positive = [i for i, bag in enumerate(data["test"]) if not bag.is_na]
    na_rows = [i for i, bag in enumerate(data["test"]) if bag.is_na]
    table: dict[str, dict[str, list[float]]] = {}
    sizes: dict[str, tuple[int, int]] = {}
    for run in runs:
        scores = torch.from_numpy(np.load(out / f"nyt10_{run['model']}_{run['seed']}_test_scores.npy"))
        records = TASK.decode(data["test"], rows, scores, data["relations"])
        cell = table.setdefault(run["model"], {})
        positive_bags = [data["test"][i] for i in positive]
        positive_records = TASK.decode(
            positive_bags, [(j, None) for j in range(len(positive))], scores[positive], data["relations"]
        )
        cell.setdefault("pr_auc non-NA bags", []).append(TASK.metrics(positive_bags, positive_records)["pr_auc"])
        cell.setdefault("top score NA bags", []).append(float(scores[na_rows, 1:].max(dim=1).values.mean()))
        cell.setdefault("top score positive bags", []).append(float(scores[positive, 1:].max(dim=1).values.mean()))
        for label, relations in groups.items():
            metrics = TASK.metrics(data["test"], records, long_tail=relations)
            sizes[label] = (metrics["n_long_tail_bags"], metrics["n_long_tail_relations"])
            cell.setdefault(f"{label} micro", []).append(metrics["hits@10_micro"])
            cell.setdefault(f"{label} macro", []).append(metrics["hits@10_macro"])
    print("\n#### nyt10 Hits@10 (%) by training sentences of the gold relation (test bags / relations per group)\n")
    header = ["model"] + [
        f"{label} ({sizes[label][0]} / {sizes[label][1]}) {kind}" for label in groups for kind in ("micro", "macro")
    ]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for model_key in MODELS:
        if model_key not in table:
            continue
        cells = [f"{model_key} (seeds {','.join(str(r['seed']) for r in runs if r['model'] == model_key)})"]
        for label in groups:
            for kind in ("micro", "macro"):
                cells.append(mean_std(table[model_key][f"{label} {kind}"], digits=1))
        print("| " + " | ".join(cells) + " |")

    print(
        f"\n#### nyt10 ranking without NA bags ({len(positive)} non-NA test bags) and the best non-NA score"
        f" of NA bags ({len(na_rows)}) vs non-NA bags\n"
    )
    print("| model | PR-AUC, non-NA bags only | mean top non-NA score, NA bags | same, non-NA bags |")
    print("|---|---|---|---|")
    for model_key in MODELS:
        if model_key in table:
            cells = [model_key] + [
                mean_std(table[model_key][key])
                for key in ("pr_auc non-NA bags", "top score NA bags", "top score positive bags")
            ]
            print("| " + " | ".join(cells) + " |")


def _plot(results: list[dict], path: Path, out: Path) -> None:
    """PR curves of the main models; recomputed from saved test scores where a run has them."""
    import matplotlib
    import numpy as np
    import torch

    from hiere.tasks.bag import TASK

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cache: dict[str, dict[str, Any]] = {}
    datasets = [d for d in DATASETS if any(r["dataset"] == d for r in results)]
    figure, axes = plt.subplots(1, len(datasets), figsize=(6 * len(datasets), 4.5), squeeze=False)
    for axis, dataset in zip(axes[0], datasets, strict=True):
        for model_key in MAIN_MODELS:
            runs = sorted(
                (r for r in results if r["dataset"] == dataset and r["model"] == model_key),
                key=lambda r: r["seed"],
            )
            for index, run in enumerate(runs):
                label = f"{model_key} (seed {run['seed']}, AUC {run['test']['pr_auc']:.3f})"
                curve = run["pr_curve"]
                saved = out / f"{dataset}_{model_key}_{run['seed']}_test_scores.npy"
                if saved.exists():
                    data = load_dataset(dataset) if dataset not in cache else cache[dataset]
                    cache[dataset] = data
                    scores = torch.from_numpy(np.load(saved))
                    rows = [(i, None) for i in range(len(data["test"]))]
                    curve = _curve(data["test"], TASK.decode(data["test"], rows, scores, data["relations"]))
                axis.plot(
                    curve["recall"],
                    curve["precision"],
                    lw=1.2 if index == 0 else 0.6,
                    alpha=1.0 if index == 0 else 0.5,
                    label=label,
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("bench_out/bag"))
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument("--models", nargs="+", default=list(MAIN_MODELS), choices=list(MODELS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=160)  # bags per step (HNRE code)
    parser.add_argument("--eval-batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.2)  # SGD (HNRE code)
    parser.add_argument("--weight-decay", type=float, default=1e-5)  # L2 (HNRE code)
    parser.add_argument("--single", nargs=3, metavar=("DATASET", "MODEL", "SEED"), help=argparse.SUPPRESS)
    parser.add_argument("--report", action="store_true")
    parser.add_argument("--plot", type=Path)
    args = parser.parse_args()
    if args.report:
        report(args.out, args.plot)
        return
    if args.single:
        dataset, model_key, seed = args.single
        result = run_one(dataset, model_key, int(seed), args)
        result["command"] = " ".join(sys.argv)
        args.out.mkdir(parents=True, exist_ok=True)
        target = args.out / f"{dataset}_{model_key}_{seed}.json"
        target.with_suffix(".tmp").write_text(json.dumps(result, indent=1))
        target.with_suffix(".tmp").replace(target)
        return
    print("command:", " ".join(sys.argv), flush=True)
    for dataset in args.datasets:
        for seed in args.seeds:
            for model_key in args.models:
                target = args.out / f"{dataset}_{model_key}_{seed}.json"
                if target.exists():
                    continue
                command = [
                    sys.executable,
                    __file__,
                    "--single",
                    dataset,
                    model_key,
                    str(seed),
                    "--out",
                    str(args.out),
                    "--epochs",
                    str(args.epochs),
                    "--batch-size",
                    str(args.batch_size),
                    "--eval-batch-size",
                    str(args.eval_batch_size),
                    "--lr",
                    str(args.lr),
                    "--weight-decay",
                    str(args.weight_decay),
                ]
                subprocess.run(command, check=True)


if __name__ == "__main__":
    main()
