"""BiLSTM-RE training steps with the layers hiere uses against the textbook ones they replace, timed by the trainer.

    python benchmarks/bilstm_step.py [--out runs/bilstm_step] [--steps 2] [--threads 1] [--batch-size 8] \\
        [--precision fp32] [--only hiere_entity_pair,packed_entity_pair]

Four variants of configs/bilstm_redocred.yaml: a packed ``nn.LSTM`` or ``hiere.encoders.lstm.BiLSTM``, times
``torch.nn.functional.bilinear`` on per-pair concatenations or ``EntityPairBilinear`` (the same functions, see
tests). Each variant is one ``hiere train`` run with ``trainer.profile_steps=STEPS``: this script, in a child
process, swaps the layers of every BiLSTM-RE built there, then runs hiere's ``train`` command (the trainer,
unchanged), on Re-DocRED dev_revised.json documents from 0 on (one warm-up step, then STEPS profiled steps of
``--batch-size`` documents). Prints seconds per optimizer step and its forward + backward, writes them with the
machine to OUT/bilstm_step.json. A finished run (its ``profile.json`` exists) is not run again.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from harness import ROOT, machine, profile_overrides, profile_runs
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from hiere.io import write_json_atomic
from hiere.models.doc.bilstm import BiLSTMRE

CONFIG = ROOT / "configs" / "bilstm_redocred.yaml"
VARIANTS = {  # key: (LSTM, pair scorer)
    "packed_per_pair": ("packed nn.LSTM", "per-pair bilinear"),
    "packed_entity_pair": ("packed nn.LSTM", "EntityPairBilinear"),
    "hiere_per_pair": ("hiere BiLSTM", "per-pair bilinear"),
    "hiere_entity_pair": ("hiere BiLSTM", "EntityPairBilinear"),
}


class PackedBiLSTM(torch.nn.Module):
    """The textbook bidirectional LSTM over padded sequences: pack, ``nn.LSTM``, unpack."""

    def __init__(self, input_size: int, hidden: int):
        super().__init__()
        self.lstm = torch.nn.LSTM(input_size, hidden, batch_first=True, bidirectional=True)
        self.output_size = 2 * hidden

    def forward(self, inputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = pack_padded_sequence(inputs, lengths.cpu(), batch_first=True, enforce_sorted=False)
        output, _ = self.lstm(packed)
        return pad_packed_sequence(output, batch_first=True, total_length=inputs.shape[1])[0]


def per_pair_bilinear(model: BiLSTMRE):
    """``EntityPairBilinear``'s function computed the textbook way: ``F.bilinear`` on each pair's concatenations."""

    def score(entities, distances, pair_doc, pair_h, pair_t, distance_ht, distance_th):
        head = torch.cat([entities[pair_doc, pair_h], distances[distance_ht]], dim=-1)  # (n_pairs, e + d)
        tail = torch.cat([entities[pair_doc, pair_t], distances[distance_th]], dim=-1)
        return torch.nn.functional.bilinear(head, tail, model.bilinear.bilinear.weight, model.bilinear.bilinear.bias)

    return score


def use_variant(key: str) -> None:
    """Every BiLSTM-RE built in this process gets the layers of variant ``key``."""
    build = BiLSTMRE.__init__

    def swapped(self: BiLSTMRE, *args, **kwargs) -> None:
        build(self, *args, **kwargs)
        if key.startswith("packed"):
            self.lstm = PackedBiLSTM(self.lstm.forward_lstm.input_size, self.config.hidden)
        if key.endswith("per_pair"):
            self.bilinear.forward = per_pair_bilinear(self)

    BiLSTMRE.__init__ = swapped


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--variant"]:  # the child: --variant KEY -- TRAIN ARGS
        from hiere.cli import main as hiere_main

        use_variant(argv[1])
        return hiere_main(["train", *argv[3:]])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bilstm_step")
    parser.add_argument("--steps", "--repeats", type=int, default=2, help="profiled optimizer steps per variant")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=8, help="documents per step (the config's 8)")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--only", default="", help=f"comma-separated variants (default all: {', '.join(VARIANTS)})")
    args = parser.parse_args(argv)
    args.out = args.out.resolve()  # the runs start in ROOT
    keys = [key for key in VARIANTS if not args.only or key in args.only.split(",")]
    unknown = set(args.only.split(",")) - set(VARIANTS) if args.only else set()
    if unknown:
        parser.error(f"unknown --only variants {sorted(unknown)}; known: {', '.join(VARIANTS)}")
    overrides = [f"data.train_slice=[0,{args.batch_size * (args.steps + 1)}]", "data.dev_slice=[450,452]",
                 f"trainer.batch_size={args.batch_size}", f"trainer.precision={args.precision}",
                 *profile_overrides(args.steps, args.threads)]
    commands = {key: [sys.executable, str(Path(__file__).resolve()), "--variant", key, "--", str(CONFIG),
                      "-o", str(args.out / key), *[part for item in overrides for part in ("--set", item)]]
                for key in keys}
    profiles = profile_runs(commands, args.out)
    rows = []
    print(f"\n{args.batch_size} documents per step, {args.steps} profiled steps, {args.precision}, "
          f"{args.threads} thread(s)\n\n| LSTM | pair scorer | s / step | forward + backward |\n|---|---|---|---|")
    for key, profile in profiles.items():
        lstm, scorer = VARIANTS[key]
        if profile is None:
            print(f"| {lstm} | {scorer} | (no profile: see {args.out / key}.train.log) | |")
            continue
        forward_backward = profile["phases"]["forward"]["seconds"] + profile["phases"]["backward"]["seconds"]
        rows.append({"variant": key, "lstm": lstm, "pair_scorer": scorer,
                     "seconds_per_step": profile["seconds_per_step"],
                     "forward_backward_seconds": round(forward_backward, 6), "profile": profile})
        print(f"| {lstm} | {scorer} | {profile['seconds_per_step']:.2f} | {forward_backward:.2f} |")
    write_json_atomic(args.out / "bilstm_step.json", {
        "command": " ".join(["python", "benchmarks/bilstm_step.py", *argv]), "machine": machine(),
        "documents_per_step": args.batch_size, "precision": args.precision, "threads": args.threads, "results": rows,
    }, indent=1)
    return 0 if len(rows) == len(keys) else 1


if __name__ == "__main__":
    sys.exit(main())
