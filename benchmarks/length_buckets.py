"""What ``trainer.length_buckets`` and ``trainer.fused`` save for the transformer models.

    python benchmarks/length_buckets.py [--buckets 0 4 16 64] [--epochs 3] [--threads 1]

1. Padding. For ATLOP/KMGRE on the Re-DocRED training split (configs/atlop_redocred.yaml, 450 documents,
   batch 4) and BERT+ATT/HiCLRE on the GIDS training split (configs/bert_att_gids.yaml), the epochs' batches
   are built exactly as the trainer builds them (``epoch_batches``) and the token slots the encoder
   processes are counted: a batch of documents is padded to its longest document, or, past the encoder's
   limit, cut into overlapping windows padded to the longest window; a batch of bags is padded to its
   longest sentence. Reported: real tokens / slots (the share of encoder work that is not padding).
2. The optimizer update. Median time of one AdamW step over ATLOP's parameters (MiniLM + heads) with the
   per-tensor loop (``fused=False``), the multi-tensor path (``foreach``) and the fused kernel: the optimizer
   alone on random gradients, not a training step (those are timed by the trainer: ``trainer.profile_steps``).

With the machine (:func:`harness.machine`) and this process's peak RSS; ``--out`` is written atomically.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch
from harness import ROOT, machine, self_peak_rss_mb

from hiere.config import load_config
from hiere.io import write_json_atomic
from hiere.models import get_model_class
from hiere.tasks import get_task
from hiere.training.trainer import build_relations, epoch_batches, read_split


def build(config_path: Path):
    os.chdir(ROOT)
    config = load_config(config_path)
    model_class = get_model_class(config["model"]["name"])
    model_config = model_class.Config.from_dict(config["model"])
    task = get_task(model_class.task)
    relations = build_relations(task, config, config["data"]["train"])
    examples = read_split(task, config, "train", relations, **model_class.training_read_options(model_config))
    model = model_class(model_config, model_class.build_resources(model_config, examples, relations))
    return config, model, [model.featurize(example) for example in examples]


def document_slots(model, features: list[dict], batch: list[int]) -> tuple[int, int]:
    lengths = [len(features[i]["input_ids"]) for i in batch]
    encoder = model.encoder
    if max(lengths) <= encoder.max_length:
        return sum(lengths), len(lengths) * max(lengths)
    windows = [size + 2 for length in lengths for _, size in encoder.windows(length)]
    return sum(windows), len(windows) * max(windows)


def bag_slots(features: list[dict], batch: list[int]) -> tuple[int, int]:
    lengths = [len(sentence["input_ids"]) for i in batch for sentence in features[i]["sentences"]]
    return sum(lengths), len(lengths) * max(lengths)


def padding_table(name: str, config: dict, model, features: list[dict], buckets: list[int], epochs: int) -> list[dict]:
    batch_size, seed = int(config["trainer"]["batch_size"]), int(config["trainer"]["seed"])
    rows = []
    for bucket in buckets:
        real = slots = 0
        for epoch in range(1, epochs + 1):
            order = torch.randperm(len(features), generator=torch.Generator().manual_seed(seed + epoch)).tolist()
            for batch in epoch_batches(order, batch_size, features, bucket, seed * 1_000_003 + epoch):
                used, total = (
                    document_slots(model, features, batch) if model.task == "doc" else bag_slots(features, batch)
                )
                real, slots = real + used, slots + total
        rows.append({"data": name, "length_buckets": bucket, "real_tokens": real, "token_slots": slots,
                     "real_share": round(real / slots, 4)})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def optimizer_step_seconds(model, mode: str, repeats: int) -> float:
    parameters = [p for p in model.parameters() if p.requires_grad]
    for parameter in parameters:
        parameter.grad = torch.randn_like(parameter) * 1e-3
    options = {"loop": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}[mode]
    optimizer = torch.optim.AdamW(parameters, lr=1e-5, **options)
    optimizer.step()  # state allocation
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--buckets", type=int, nargs="+", default=[0, 4, 16, 64])
    parser.add_argument("--epochs", type=int, default=3, help="epochs of batches counted per setting")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args()
    out = args.out.resolve() if args.out else None  # build() changes into ROOT
    torch.set_num_threads(args.threads)

    results: dict = {"machine": machine(), "threads": args.threads, "padding": []}
    config, atlop, features = build(ROOT / "configs" / "atlop_redocred.yaml")
    results["padding"] += padding_table("redocred (atlop, batch 4)", config, atlop, features, args.buckets, args.epochs)
    bag_config, bert_att, bag_features = build(ROOT / "configs" / "bert_att_gids.yaml")
    results["padding"] += padding_table(
        f"gids (bert_att, batch {bag_config['trainer']['batch_size']})",
        bag_config, bert_att, bag_features, args.buckets, args.epochs,
    )
    atlop.init_pretrained()
    n_parameters = sum(p.numel() for p in atlop.parameters() if p.requires_grad)
    results["adamw_step"] = {"parameters": n_parameters}
    for mode in ("loop", "foreach", "fused"):
        seconds = optimizer_step_seconds(atlop, mode, args.repeats)
        results["adamw_step"][mode] = round(seconds, 4)
        print(f"AdamW step over {n_parameters:,} parameters, {mode}: {seconds * 1000:.1f} ms", flush=True)
    results["peak_rss_mb"] = round(self_peak_rss_mb(), 1)
    if out:
        write_json_atomic(out, results, indent=1)


if __name__ == "__main__":
    main()
