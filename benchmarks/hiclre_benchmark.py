"""BERT+ATT vs HiCLRE (Li et al. 2022) on GIDS and the NYT10 subset, plus the cost of the perturbation pass.

Every run trains ``configs/{model}_{dataset}.yaml`` with the hiere trainer in its own process (one
thread), the model selected on dev PR-AUC, scored once on test; the same encoder, epochs and seeds for
both models.
Results go to ``OUT/{dataset}_{model}_{seed}.json`` (finished runs are skipped when run again).

    python benchmarks/hiclre_benchmark.py --out bench_out/hiclre --datasets gids --seeds 1 2 --epochs 3
    python benchmarks/hiclre_benchmark.py --out bench_out/hiclre --overhead gids   # eq. 12 pass: time, memory
    python benchmarks/hiclre_benchmark.py --out bench_out/hiclre --report

``--overhead``: two ``hiere train configs/hiclre_{dataset}.yaml`` runs timed by the trainer
(``trainer.profile_steps``, one warm-up step then ``--overhead-steps`` profiled ones, on the first training
bags, one thread), with the eq. 12 gradient pass and with all three ``*_gradient: false``. The pass runs in the
forward phase, after the encoder and through the head only, so its cost is the difference of the forward phases
outside the encoder (the head's forward; load noise shows as a negative or implausible difference); peak RSS is
each run's (``os.wait4``).
Written to ``OUT/overhead_{dataset}.json``; runs in ``OUT/runs/overhead_{dataset}_{on,off}`` (finished ones
are not run again). The profile covers the first epoch (u = 1: the memory term computes its similarities, but
no representation of epoch u - 1 exists yet).

``--set key=value`` is passed to every run (e.g. ``--set model.max_length=64``). ``--models`` also accepts
ablations ``hiclre:<switch>[,<switch>...]`` (``hiclre:recontextualization``, ``hiclre:contrastive``,
``hiclre:entity_memory,sentence_memory,bag_memory``, ...), which set those model keys to false (Table 3
rows), and variants ``hiclre@<model key>=<value>`` (``hiclre@lambdas=[0.4,0.4,0.1,1.0]``) for one model
only; both can be combined (``hiclre:bag_memory@epsilon=1``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from bag_report import print_ranking_table
from harness import ROOT, machine, profile_overrides, profile_runs, self_peak_rss_mb, train_command

from hiere.io import write_json_atomic

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
        "peak_rss_mb": self_peak_rss_mb(),
        "machine": machine(),
    }


def overhead(dataset: str, args: argparse.Namespace) -> dict[str, Any]:
    """HiCLRE training steps with and without the eq. 12 gradient pass, timed by the trainer: seconds per step
    and per phase, the pass as the difference of the head's forward (forward - encoder), each run's peak RSS."""
    config = ROOT / "configs" / f"hiclre_{dataset}.yaml"
    steps = args.overhead_steps
    batch_size = int(yaml.safe_load(config.read_text())["trainer"]["batch_size"])
    common = [f"data.train_slice=[0,{batch_size * (steps + 1)}]", "data.dev_slice=[0,20]", "data.test=null",
              *profile_overrides(steps), *args.set]
    switches = {"on": [], "off": [f"model.{level}_gradient=false" for level in ("entity", "sentence", "bag")]}
    runs = args.out / "runs"
    keys = {gradient: f"overhead_{dataset}_{gradient}" for gradient in switches}
    profiles = profile_runs({key: train_command(config, runs / key, [*common, *switches[gradient]])
                             for gradient, key in keys.items()}, runs)
    missing = [key for key in keys.values() if profiles[key] is None]
    if missing:
        raise SystemExit(f"no profile from {', '.join(missing)}: see {runs}/<run>.train.log")
    measured = {}
    for gradient, key in keys.items():
        profile = profiles[key]
        measured[gradient] = {
            "seconds_per_step": profile["seconds_per_step"],
            "phase_seconds": {phase: entry["seconds"] for phase, entry in profile["phases"].items()},
            "head_forward_seconds": round(profile["phases"]["forward"]["seconds"]
                                          - profile["phases"]["encoder"]["seconds"], 6),
            "precision": profile["precision"],
            "peak_rss_mb": (profile["process"] or {}).get("peak_rss_mb"),
        }
    on, off = measured["on"], measured["off"]
    return {
        "dataset": dataset,
        "steps": steps,
        "bags_per_step": batch_size,
        "gradient_pass": measured,
        "pass_seconds_per_step": round(on["head_forward_seconds"] - off["head_forward_seconds"], 6),
        "step_seconds_difference": round(on["seconds_per_step"] - off["seconds_per_step"], 6),
        "machine": machine(),
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
    parser.add_argument("--report", action="store_true")
    args = parser.parse_args()
    args.out = args.out.resolve()  # the runs start in ROOT
    args.out.mkdir(parents=True, exist_ok=True)
    if args.report:
        report(args.out)
        return
    if args.diagnose:
        result = diagnose(args.diagnose, args.overhead_steps)
        result["command"] = " ".join(sys.argv)
        write_json_atomic(args.out / f"diagnose_{args.diagnose.name}.json", result, indent=1)
        print(json.dumps(result, indent=1))
        return
    if args.overhead:
        result = overhead(args.overhead, args)
        result["command"] = " ".join(sys.argv)
        write_json_atomic(args.out / f"overhead_{args.overhead}.json", result, indent=1)
        print(json.dumps(result, indent=1))
        return
    if args.single:
        dataset, model_key, seed = args.single
        result = run_one(dataset, model_key, int(seed), args)
        result["command"] = " ".join(sys.argv)
        write_json_atomic(args.out / f"{run_name(dataset, model_key, seed)}.json", result, indent=1)
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
