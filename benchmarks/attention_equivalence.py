"""hiere's attention against Hugging Face's eager attention in training, with the same dropout masks.

    python benchmarks/attention_equivalence.py --out runs/attention_equivalence [--steps 30]
    python benchmarks/attention_equivalence.py --evaluate MODEL_DIR DEV_FILE     # one model, both attentions

Runs ``hiere train configs/atlop_redocred.yaml`` twice on the first 120 documents, seed 66, one thread, STEPS steps:
once as shipped (``attn_implementation="hiere"``: the maps in the compute dtype, :func:`inverted_dropout`), once
with Hugging Face's eager attention whose ``nn.functional.dropout`` is replaced by the same
:func:`~hiere.encoders.transformer.inverted_dropout`. Both then draw the same masks in the same order, so their
losses differ only by the attention's arithmetic (bf16 under ``precision: auto``); the script prints both
trainers' logged losses side by side. (With torch's own dropout the two runs draw different masks and their
losses differ as two seeds do.) ``--evaluate`` runs ``hiere evaluate MODEL_DIR DEV_FILE`` with each attention and
prints F1 and the correct facts of each (prediction has no dropout: this compares the attention's arithmetic alone).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_variant(variant: str, out: Path, steps: int) -> None:
    import torch.nn.functional as functional

    import hiere.encoders.transformer as transformer
    from hiere.cli import main

    if variant == "eager":
        transformer.TransformerEncoder.attention_implementation = "eager"
        functional.dropout = lambda x, p=0.5, training=True, inplace=False: transformer.inverted_dropout(x, p, training)
    sys.exit(main(["train", "configs/atlop_redocred.yaml", "-o", str(out / variant),
                   "--set", "data.train_slice=[0,120]", "--set", "data.dev_slice=[450,452]",
                   "--set", "trainer.epochs=1", "--set", f"trainer.max_steps={steps}", "--set", "trainer.seed=66",
                   "--set", "trainer.num_threads=1", "--set", "trainer.progress=false"]))


def evaluate_variant(variant: str, model_dir: str, dev_file: str) -> None:
    import hiere.encoders.transformer as transformer
    from hiere.cli import main

    if variant == "eager":
        transformer.TransformerEncoder.attention_implementation = "eager"
    sys.exit(main(["evaluate", model_dir, dev_file]))


def losses(log: Path) -> list[str]:
    lines = log.read_text().splitlines()
    return [line.split(": loss ")[1].split()[0].rstrip(",") for line in lines if ": loss " in line]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "attention_equivalence")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--evaluate", nargs=2, metavar=("MODEL_DIR", "DEV_FILE"))
    parser.add_argument("--variant", choices=["hiere", "eager"], help=argparse.SUPPRESS)  # one run, in a child
    args = parser.parse_args()
    if args.variant and args.evaluate:
        evaluate_variant(args.variant, *args.evaluate)
    if args.variant:
        run_variant(args.variant, args.out, args.steps)
    if args.evaluate:
        for variant in ("hiere", "eager"):
            command = [sys.executable, __file__, "--evaluate", *args.evaluate, "--variant", variant]
            metrics = json.loads(subprocess.run(command, cwd=ROOT, check=True, capture_output=True, text=True).stdout)
            print(f"{variant}: F1 {100 * metrics['f1']:.2f}, {metrics['n_correct']} correct of {metrics['n_pred']}")
        return
    for variant in ("hiere", "eager"):  # one after the other, each in its own process
        command = [sys.executable, __file__, "--out", str(args.out), "--steps", str(args.steps), "--variant", variant]
        subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    print("logged loss: hiere attention | eager attention, same masks")
    for ours, eager in zip(losses(args.out / "hiere" / "train.log"), losses(args.out / "eager" / "train.log"),
                           strict=True):
        print(f"{ours} | {eager}")


if __name__ == "__main__":
    main()
