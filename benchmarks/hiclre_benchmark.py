"""BERT+ATT vs HiCLRE (Li et al. 2022) on GIDS and the NYT10 subset, plus the cost of the perturbation pass.

Every run trains ``configs/{model}_{dataset}.yaml`` with the hiere trainer in its own process (one
thread), the model selected on dev PR-AUC, scored once on test; the same encoder, epochs and seeds for
both models.
Results go to ``OUT/{dataset}_{model}_{seed}.json`` (finished runs are skipped when run again).

    python benchmarks/hiclre_benchmark.py --out bench_out/hiclre --datasets gids --seeds 1 2 --epochs 3
    python benchmarks/hiclre_benchmark.py --out bench_out/hiclre --overhead gids   # eq. 12 pass: time, memory
    python benchmarks/hiclre_benchmark.py --out bench_out/hiclre --report

``--set key=value`` is passed to every run (e.g. ``--set model.max_length=64``). ``--models`` also accepts
ablations ``hiclre:<switch>[,<switch>...]`` (``hiclre:recontextualization``, ``hiclre:contrastive``,
``hiclre:entity_memory,sentence_memory,bag_memory``, ...), which set those model keys to false (Table 3
rows), and variants ``hiclre@<model key>=<value>`` (``hiclre@lambdas=[0.4,0.4,0.1,1.0]``) for one model
only; both can be combined (``hiclre:bag_memory@epsilon=1``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bag_report import print_ranking_table

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ("gids", "nyt10")


def model_overrides(model_key: str) -> tuple[str, list[str]]:
    """``hiclre:bag_memory,entity_memory@lambdas=[0.4,0.4,0.1,1.0]`` -> (``hiclre``,
    [``model.bag_memory=false``, ``model.entity_memory=false``, ``model.lambdas=[0.4,0.4,0.1,1.0]``])."""
    head, *settings = model_key.split("@")
    name, _, switches = head.partition(":")
    overrides = [f"model.{switch}=false" for switch in switches.split(",") if switch]
    return name, overrides + [f"model.{setting}" for setting in settings]


def run_name(dataset: str, model_key: str, seed: int | str) -> str:
    """File-system name of one run: ``gids_hiclre-bag_memory_1``, ``gids_hiclre@lambdas=0.4,0.4,0.1,1.0_1``."""
    slug = model_key.replace(":", "-").replace("[", "").replace("]", "")
    return f"{dataset}_{slug}_{seed}"


def run_one(dataset: str, model_key: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from hiere.api import load
    from hiere.config import load_config
    from hiere.training.trainer import train

    torch.set_num_threads(1)
    name, ablation = model_overrides(model_key)
    overrides = [
        f"trainer.seed={seed}",
        f"trainer.epochs={args.epochs}",
        f"model.total_epochs={args.epochs}",
        "trainer.num_threads=1",
        "trainer.progress=false",
        *ablation,
        *args.set,
    ]
    if name == "bert_att":
        overrides = [o for o in overrides if not o.startswith("model.total_epochs")]
    config = load_config(ROOT / "configs" / f"{name}_{dataset}.yaml", overrides)
    out_dir = args.out / "runs" / run_name(dataset, model_key, seed)
    started = time.perf_counter()
    train(config, out_dir)
    wall = time.perf_counter() - started
    history = json.loads((out_dir / "history.json").read_text())
    test = json.loads((out_dir / "test_metrics.json").read_text())
    predictor = load(out_dir, device="cpu")
    from hiere.training.trainer import read_split

    train_bags = read_split(
        predictor.task,
        config,
        "train",
        predictor.relations,
        **type(predictor.model).training_read_options(predictor.model.config),
    )
    train_sentences = sum(bag.size for bag in train_bags)
    test_bags = read_split(predictor.task, config, "test", predictor.relations)
    inference_bags = test_bags[: args.inference_bags]
    started = time.perf_counter()
    predictor.scores(inference_bags)
    inference_seconds = time.perf_counter() - started
    train_seconds = sum(record["train_seconds"] for record in history)
    return {
        "dataset": dataset,
        "model": model_key,
        "seed": seed,
        "overrides": overrides,
        "best_epoch": max(history, key=lambda r: r.get("dev", {}).get("pr_auc", -1))["epoch"],
        "history": [
            {"epoch": r["epoch"], "loss": r["loss"], "dev_pr_auc": r.get("dev", {}).get("pr_auc")} for r in history
        ],
        "test": test,
        "train_sentences_per_s": train_sentences * len(history) / train_seconds,
        "inference_sentences_per_s": sum(b.size for b in inference_bags) / inference_seconds,
        "wall_seconds": wall,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}",
    }


def overhead(dataset: str, gradient: bool, args: argparse.Namespace) -> dict[str, Any]:
    """HiCLRE training steps with or without the eq. 12 gradient pass: seconds per step, pass seconds, RSS."""
    import torch

    from hiere.config import load_config
    from hiere.models import get_model_class
    from hiere.tasks.bag import TASK
    from hiere.training.trainer import build_relations, read_split

    torch.set_num_threads(1)
    torch.manual_seed(0)
    switches = [] if gradient else [f"model.{level}_gradient=false" for level in ("entity", "sentence", "bag")]
    config = load_config(ROOT / "configs" / f"hiclre_{dataset}.yaml", [*switches, *args.set])
    model_class = get_model_class("hiclre")
    model_config = model_class.Config.from_dict(config["model"])
    relations = build_relations(TASK, config, config["data"]["train"])
    bags = read_split(TASK, config, "train", relations, **model_class.training_read_options(model_config))
    model = model_class(model_config, model_class.build_resources(model_config, bags, relations))
    model.init_pretrained()
    model.train()
    model.on_epoch_start(2)  # memory term active
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5)
    batch_size, steps = 16, args.overhead_steps
    features = [model.featurize(bag) for bag in bags[: batch_size * (steps + 1)]]
    seconds = []
    for step in range(steps + 1):
        batch = model.collate(features[step * batch_size : (step + 1) * batch_size])
        started = time.perf_counter()
        loss = model(batch)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step:  # the first step warms up
            seconds.append(time.perf_counter() - started)
        else:
            model.perturbation_seconds = 0.0
    return {
        "dataset": dataset,
        "gradient_pass": gradient,
        "steps": steps,
        "bags_per_step": batch_size,
        "seconds_per_step": statistics.mean(seconds),
        "perturbation_seconds_per_step": model.perturbation_seconds / steps,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def diagnose(model_dir: Path, batches: int) -> dict[str, Any]:
    """A trained HiCLRE's contrastive terms on training batches at epoch u = 2 (memory of epoch 1 loaded):
    per level the InfoNCE value, ‖pt_adv‖, cos(anchor, pseudo-positive), mean cos(anchor, other rows)."""
    import torch

    import hiere.models.bag.hiclre as hiclre_module
    from hiere.api import load
    from hiere.training.trainer import read_split

    torch.set_num_threads(1)
    torch.manual_seed(0)
    predictor = load(model_dir, device="cpu")
    model = predictor.model
    bags = read_split(
        predictor.task,
        predictor.config,
        "train",
        predictor.relations,
        **type(model).training_read_options(model.config),
    )
    captured: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
    original = hiclre_module.info_nce

    def recording(anchor: torch.Tensor, positive: torch.Tensor, temperature: float) -> torch.Tensor:
        loss = original(anchor, positive, temperature)
        captured.append((anchor.detach(), positive.detach(), loss.detach()))
        return loss

    hiclre_module.info_nce = recording
    model.train()
    model.on_epoch_start(2)
    task_losses = []
    try:
        for step in range(batches):
            chunk = bags[step * 16 : (step + 1) * 16]
            output = model(model.collate([model.featurize(bag) for bag in chunk]))
            task_losses.append(float(output["loss_terms"]["task"]))
    finally:
        hiclre_module.info_nce = original
    result: dict[str, Any] = {
        "model_dir": str(model_dir),
        "batches": batches,
        "task_loss": statistics.mean(task_losses),
    }
    for index, level in enumerate(("entity", "sentence", "bag")):
        rows = captured[index::3]
        anchors = [a for a, _, _ in rows]
        perturbations = [p - a for a, p, _ in rows]
        normalized = [torch.nn.functional.normalize(a, dim=-1) for a in anchors]
        off_diagonal = [((n @ n.T).sum() - n.shape[0]) / max(1, n.shape[0] * (n.shape[0] - 1)) for n in normalized]
        result[level] = {
            "info_nce": statistics.mean(float(loss) for _, _, loss in rows),
            "anchor_norm": statistics.mean(float(a.norm(dim=-1).mean()) for a in anchors),
            "perturbation_norm": statistics.mean(float(p.norm(dim=-1).mean()) for p in perturbations),
            "cos_anchor_positive": statistics.mean(
                float(torch.nn.functional.cosine_similarity(a, p, dim=-1).mean()) for a, p, _ in rows
            ),
            "mean_cos_between_rows": statistics.mean(float(v) for v in off_diagonal),
        }
    return result


def report(out: Path) -> None:
    results = [
        json.loads(p.read_text()) for p in sorted(out.glob("*.json")) if not p.name.startswith(("overhead", "diagnose"))
    ]
    for dataset in DATASETS:
        rows = [r for r in results if r["dataset"] == dataset]
        if not rows:
            continue
        print(f"\n### {dataset}\n")
        print_ranking_table(rows, dict.fromkeys(r["model"] for r in rows), cost_digits=1)
    for path in sorted([*out.glob("overhead_*.json"), *out.glob("diagnose_*.json")]):
        print(f"\n{path.name}: {path.read_text()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("bench_out/hiclre"))
    parser.add_argument("--datasets", nargs="+", default=["gids"], choices=DATASETS)
    parser.add_argument("--models", nargs="+", default=["bert_att", "hiclre"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--set", nargs="*", default=[], help="config overrides for every run (key=value)")
    parser.add_argument("--inference-bags", type=int, default=200, help="test bags timed for inference speed")
    parser.add_argument("--overhead", choices=DATASETS, help="measure the eq. 12 gradient pass")
    parser.add_argument("--overhead-steps", type=int, default=4)
    parser.add_argument("--diagnose", type=Path, help="a trained hiclre model directory: contrastive terms")
    parser.add_argument("--single", nargs=3, metavar=("DATASET", "MODEL", "SEED"), help=argparse.SUPPRESS)
    parser.add_argument("--single-overhead", nargs=2, metavar=("DATASET", "GRADIENT"), help=argparse.SUPPRESS)
    parser.add_argument("--report", action="store_true")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.report:
        report(args.out)
        return
    if args.diagnose:
        result = diagnose(args.diagnose, args.overhead_steps)
        result["command"] = " ".join(sys.argv)
        (args.out / f"diagnose_{args.diagnose.name}.json").write_text(json.dumps(result, indent=1))
        print(json.dumps(result, indent=1))
        return
    if args.single or args.single_overhead:
        if args.single:
            dataset, model_key, seed = args.single
            result = run_one(dataset, model_key, int(seed), args)
            target = args.out / f"{run_name(dataset, model_key, seed)}.json"
        else:
            dataset, gradient = args.single_overhead
            result = overhead(dataset, gradient == "on", args)
            target = args.out / f"overhead_{dataset}_{gradient}.json"
        result["command"] = " ".join(sys.argv)
        target.with_suffix(".tmp").write_text(json.dumps(result, indent=1))
        target.with_suffix(".tmp").replace(target)
        return
    print("command:", " ".join(sys.argv), flush=True)
    common = [
        "--out",
        str(args.out),
        "--epochs",
        str(args.epochs),
        "--inference-bags",
        str(args.inference_bags),
        "--overhead-steps",
        str(args.overhead_steps),
        "--set",
        *args.set,
    ]
    if args.overhead:
        for gradient in ("on", "off"):
            subprocess.run(
                [sys.executable, __file__, "--single-overhead", args.overhead, gradient, *common], check=True
            )
        return
    for dataset in args.datasets:
        for seed in args.seeds:
            for model_key in args.models:
                if (args.out / f"{run_name(dataset, model_key, seed)}.json").exists():
                    continue
                subprocess.run(
                    [sys.executable, __file__, "--single", dataset, model_key, str(seed), *common], check=True
                )


if __name__ == "__main__":
    main()
