"""BiLSTM-RE vs HIN-GloVe vs HIN-transformer (the HIN ablations; ATLOP vs KMGRE) on the Re-DocRED benchmark split.

    nohup python benchmarks/doc_glove_benchmark.py --out runs/hin_bench --epochs 1 --seeds 1 2 3 \\
        --jobs 3 --set trainer.num_threads=1 --set trainer.lr=0.001 --set trainer.precision=bf16 &
    python benchmarks/doc_glove_benchmark.py --out runs/hin_ablation --settings ablations --seeds 1 ...
    python benchmarks/doc_glove_benchmark.py --out runs/doc_transformer --settings transformer --epochs 5 --jobs 2

Every run is ``python -m hiere train CONFIG -o OUT/<setting>_s<seed> --set trainer.epochs=E
--set trainer.seed=S`` plus the ``--set`` options given here (the same for every setting), on the split
of the configs (first 450 documents of dev_revised.json for training, the last 50 for dev). Per run it
records the best-epoch dev F1 / Ign F1 (threshold tuned on dev by the trainer), the training throughput
(training documents per second of the epochs' training loops), the prediction throughput (``hiere.api``
predict on the 50 dev documents, in a separate process) and the peak resident memory of the training and
prediction processes (``wait4``).
Settings run ``--jobs`` at a time; a run whose model directory already has all epochs is not retrained.
Writes ``OUT/results.json`` and ``OUT/summary.md`` (mean ± sample standard deviation over seeds).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from harness import ROOT, Outcome, Run, find_training, machine, run_queue, train_command

DATA = ROOT.parent / "shared" / "data" / "redocred"

MAIN = {
    "bilstm": "configs/bilstm_redocred.yaml",
    "hin_glove": "configs/hin_glove.yaml",
    "hin_transformer": "configs/hin_transformer.yaml",
}
ABLATIONS = {
    "hin_glove": "configs/hin_glove.yaml",
    "no_translation": "configs/hin_no_translation.yaml",
    "no_bilinear": "configs/hin_no_bilinear.yaml",
    "no_multispace": "configs/hin_no_multispace.yaml",
    "no_sentence_inference": "configs/hin_no_sentence_inference.yaml",
    "no_hierarchical": "configs/hin_no_hierarchical.yaml",
    "ablate_all": "configs/hin_ablate_all.yaml",
}
# setting -> config, or (config, [key=value overrides of that setting only])
TRANSFORMER = {
    "atlop": "configs/atlop_redocred.yaml",
    "kmgre": "configs/kmgre_redocred.yaml",
    "kmgre_bilinear": ("configs/kmgre_redocred.yaml", ["model.extractor=bilinear"]),
}
GROUPS = {"ablations": ABLATIONS, "transformer": TRANSFORMER}


def finished(run_dir: Path, epochs: int) -> bool:
    history = run_dir / "history.json"
    if not (run_dir / "config.yaml").exists() or not history.exists():
        return False
    stopped_early = "early stop:" in (run_dir / "train.log").read_text(errors="replace")
    return stopped_early or len(json.loads(history.read_text())) >= epochs


def train_record(run_dir: Path) -> dict:
    """Best-epoch dev metrics (the saved model) and training throughput of a finished run."""
    import yaml

    history = json.loads((run_dir / "history.json").read_text())
    metrics = json.loads((run_dir / "dev_metrics.json").read_text())
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    start, end = config["data"].get("train_slice") or [0, 450]
    best = max((h for h in history if "dev" in h), key=lambda h: h["dev"]["f1"])
    return {
        "dev_f1": metrics["f1"],
        "dev_ign_f1": metrics.get("ign_f1"),
        "threshold": metrics.get("threshold"),
        "best_epoch": best["epoch"],
        "epochs": len(history),
        "epoch_f1": [round(h["dev"]["f1"], 4) for h in history if "dev" in h],
        "epoch_loss": [round(h["loss"], 5) for h in history],
        "train_docs_per_second": (end - start) * len(history) / sum(h["train_seconds"] for h in history),
    }


def predict_only(model_dir: str, data: str, start: int, end: int, threads: int) -> None:
    """Child process: time ``Predictor.predict`` on documents ``[start, end)`` of ``data``; print JSON."""
    import torch

    import hiere

    torch.set_num_threads(threads)
    predictor = hiere.load(model_dir, device="cpu")
    documents = predictor.read(data)[start:end]
    started = time.perf_counter()
    records = predictor.predict(documents)
    seconds = time.perf_counter() - started
    base = {"title", "h_idx", "t_idx", "r", "score"}
    explained = sum(1 for r in records if set(r) - base)  # evidence (HIN) or key_mention_pairs (KMGRE)
    print(json.dumps({"docs": len(documents), "seconds": seconds, "records": len(records), "explained": explained}))


def dev_bce(model_dirs: list[str], data: str, start: int, end: int) -> None:
    """Diagnosis: per (pair, relation) BCE of saved models on documents ``[start, end)``, the mean score of
    gold facts vs the other cells, and the BCE of the constant base-rate predictor of the training split."""
    import math

    import torch

    import hiere

    torch.set_num_threads(1)
    for model_dir in model_dirs:
        predictor = hiere.load(model_dir, device="cpu")
        documents = predictor.read(data)[start:end]
        rows, scores, _ = predictor.scores(documents)
        labels = torch.zeros_like(scores)
        for row, (example, (h, t)) in enumerate(rows):
            gold = [predictor.relations[f.r] for f in documents[example].facts if (f.h, f.t) == (h, t)]
            labels[row, gold or [0]] = 1.0
        clamped = scores.clamp(1e-7, 1 - 1e-7)
        bce = -(labels * clamped.log() + (1 - labels) * (1 - clamped).log()).mean()
        gold_mean = scores[:, 1:][labels[:, 1:] == 1].mean()
        other_mean = scores[:, 1:][labels[:, 1:] == 0].mean()
        print(
            f"{model_dir}: dev BCE {bce:.4f}, mean score of gold facts {gold_mean:.4f}, of other cells {other_mean:.4f}"
        )
        train = predictor.read(data)[: int(predictor.config["data"]["train_slice"][1])]
    n_pairs = sum(len(d.entities) * (len(d.entities) - 1) for d in train)
    counts = [0] * len(predictor.relations)
    related = set()
    for index, document in enumerate(train):
        for h, t, r in {(f.h, f.t, f.r) for f in document.facts}:
            counts[predictor.relations[r]] += 1
            related.add((index, h, t))
    counts[0] = n_pairs - len(related)
    rates = [c / n_pairs for c in counts]
    entropy = [0.0 if p in (0.0, 1.0) else -(p * math.log(p) + (1 - p) * math.log(1 - p)) for p in rates]
    print(f"constant base-rate predictor ({n_pairs} training pairs): BCE {sum(entropy) / len(entropy):.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/hin_bench")
    parser.add_argument(
        "--settings",
        nargs="+",
        default=list(MAIN),
        help=f"names among {sorted({**MAIN, **ABLATIONS, **TRANSFORMER})} or a group: {sorted(GROUPS)}",
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=1, help="runs in parallel")
    parser.add_argument(
        "--order",
        choices=("seed", "setting"),
        default="seed",
        help="queue all settings of seed 1 first (seed) or all seeds of the first setting first (setting)",
    )
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="key=value for every run")
    parser.add_argument("--predict-threads", type=int, default=1)
    parser.add_argument("--dev-bce", nargs="+", metavar="MODEL_DIR", help="diagnose saved models (see dev_bce)")
    parser.add_argument(
        "--predict-only", nargs=4, metavar=("MODEL_DIR", "DATA", "START", "END"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.dev_bce:
        dev_bce(args.dev_bce, str(DATA / "dev_revised.json"), 450, 500)
        return
    if args.predict_only:
        model_dir, data, start, end = args.predict_only
        predict_only(model_dir, data, int(start), int(end), args.predict_threads)
        return

    names = [n for s in args.settings for n in GROUPS.get(s, [s])]
    configs = {**MAIN, **ABLATIONS, **TRANSFORMER}
    unknown = [n for n in names if n not in configs]
    if unknown:
        parser.error(f"unknown setting(s) {unknown}; choose among {sorted(configs)} or {sorted(GROUPS)}")
    out = (ROOT / args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    command_line = " ".join([sys.executable, *sys.argv])
    print(f"command: {command_line}\nmachine: {machine()}", flush=True)

    results_path = out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    if args.order == "seed":
        order = [(seed, name) for seed in args.seeds for name in names]
    else:
        order = [(seed, name) for name in names for seed in args.seeds]
    queue = []
    for seed, name in order:
        run_dir = out / f"{name}_s{seed}"
        config, own = (configs[name], []) if isinstance(configs[name], str) else configs[name]
        overrides = [f"trainer.epochs={args.epochs}", f"trainer.seed={seed}", "trainer.progress=false",
                     *args.overrides, *own]
        predict = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--predict-threads",
            str(args.predict_threads),
            "--predict-only",
            str(run_dir),
            str(DATA / "dev_revised.json"),
            "450",
            "500",
        ]
        key = run_dir.name
        entry = results.get(key, {})
        if finished(run_dir, args.epochs) and "predict_docs_per_second" in entry:
            continue
        steps = [("train", train_command(config, run_dir, overrides)), ("predict", predict)]
        if finished(run_dir, args.epochs):
            results.setdefault(key, {"setting": name, "seed": seed}).update(train_record(run_dir))
            steps.pop(0)
        adopted = find_training(run_dir) if steps[0][0] == "train" else None
        queue.append(Run(key, out, steps, adopted, {"name": name, "seed": seed, "dir": run_dir}))

    def on_done(run: Run, outcome: Outcome) -> bool:
        entry = results.setdefault(run.key, {"setting": run.info["name"], "seed": run.info["seed"]})
        phase, peak = outcome.phase, outcome.peak_rss_mb
        go_on = False
        if outcome.exit_code is None:  # a training adopted from an earlier instance
            entry["train_peak_rss_mb"] = round(peak, 1) if peak else None
            go_on = finished(run.info["dir"], args.epochs)
            if go_on:
                entry.update(train_record(run.info["dir"]))
            else:
                entry["error"] = "adopted training ended without a finished model"
        else:
            entry[f"{phase}_wall_seconds"] = round(outcome.wall_seconds, 1)
            entry[f"{phase}_peak_rss_mb"] = round(peak, 1)
            if outcome.exit_code != 0:
                entry["error"] = f"{phase} exit {outcome.exit_code} (see {run.log(phase).name})"
            elif phase == "train":
                entry.update(train_record(run.info["dir"]))
                go_on = True
            else:
                measured = json.loads(run.log(phase).read_text().strip().splitlines()[-1])
                entry.update(
                    predict_docs_per_second=measured["docs"] / measured["seconds"],
                    predict_records=measured["records"],
                    predict_explained=measured["explained"],
                )
        results_path.write_text(json.dumps(results, indent=1))
        return go_on

    run_queue(queue, args.jobs, on_done)

    summary = summarize(results, names, command_line)
    (out / "summary.md").write_text(summary)
    print(summary, flush=True)


def summarize(results: dict, names: list[str], command_line: str) -> str:
    def spread(values: list[float], scale: float = 1.0, digits: int = 2) -> str:
        values = [v * scale for v in values if v is not None]
        if not values:
            return "-"
        if len(values) == 1:
            return f"{values[0]:.{digits}f}"
        return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"

    lines = [
        f"command: `{command_line}`",
        f"machine: {machine()}",
        "",
        "| setting | seeds | dev F1 | dev Ign F1 | best epoch | train docs/s | predict docs/s "
        "| peak RSS train / predict (MB) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in names:
        rows = [r for r in results.values() if r["setting"] == name and "dev_f1" in r]
        if not rows:
            continue
        lines.append(
            f"| {name} | {len(rows)} | {spread([r['dev_f1'] for r in rows], 100)} | "
            f"{spread([r.get('dev_ign_f1') for r in rows], 100)} | {[r['best_epoch'] for r in rows]} | "
            f"{spread([r['train_docs_per_second'] for r in rows])} | "
            f"{spread([r.get('predict_docs_per_second') for r in rows])} | "
            f"{max(r.get('train_peak_rss_mb', 0) for r in rows):.0f} / "
            f"{max(r.get('predict_peak_rss_mb', 0) for r in rows):.0f} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
