"""What KMGRE's key mention pairs do on dev: inference-time fusion variants and evidence enrichment.

    python benchmarks/kmgre_analysis.py runs/bench/kmgre_s42 [--threads 1] [--out FILE]

One forward pass over the dev documents of the model's config (``data.dev`` + ``data.dev_slice``)
gives every mention pair's extractor logits and p_ω. From them, without retraining:

* dev F1 / Ign F1 when the entity-pair logits fuse the key pairs (the trained rule: p_ω >= the
  pair's mean), all mention pairs (mean), the pairs the extractor itself is most confident in, the
  p_ω-weighted mean, or the max over mention pairs;
* evidence enrichment: for gold facts with evidence sentences, the share of key pairs whose two
  mentions both lie in evidence sentences, against the same share over all mention pairs
  (a key-instance classifier that finds the right instances has a ratio above 1);
* agreement between the E-step pseudo labels ẑ (from p_θ and the gold labels) and the key pairs.

Prints the report as JSON (with the machine and this process's peak RSS); ``--out`` also writes it, atomically.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch
from harness import machine, self_peak_rss_mb

import hiere
from hiere.data.docred import read_docred
from hiere.io import write_json_atomic
from hiere.losses import adaptive_threshold_scores
from hiere.models.doc.kmgre import KMGRE, segment_mean
from hiere.tasks import get_task


def read_slice(config: dict, split: str, relations) -> list:
    data = config["data"]
    documents = read_docred(data[split], relations.relations)
    bounds = data.get(f"{split}_slice")
    return documents[bounds[0] : bounds[1]] if bounds else documents


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model_dir")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--out", type=Path, help="also write the report (JSON) here")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(args.threads)
    predictor = hiere.load(args.model_dir, device="cpu")
    model: KMGRE = predictor.model
    if not isinstance(model, KMGRE):
        sys.exit(f"{args.model_dir} is not a KMGRE model")
    model.eval()
    relations = model.relations
    dev = read_slice(predictor.config, "dev", relations)
    train = read_slice(predictor.config, "train", relations)
    task = get_task("doc")
    started = time.perf_counter()
    rows, pair_logits, key_logits, pair_rows, mention_pairs, sents, batches = [], [], [], [], [], [], []
    offset, mention_offset = 0, 0
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=predictor.precision == "bf16")
    for start in range(0, len(dev), args.batch_size):
        chunk = list(range(start, min(start + args.batch_size, len(dev))))
        batch = model.collate([model.featurize(dev[i]) for i in chunk])
        with torch.no_grad(), autocast:
            logits, keys = model.mention_pair_logits_and_keys(batch)
        rows.extend((chunk[b], (h, t)) for b, h, t in batch["pairs"])
        pair_logits.append(logits.float())
        key_logits.append(keys.float() if keys is not None else torch.zeros(len(logits)))
        pair_rows.append(batch["mention_pair_row"] + offset)
        mention_pairs.append(batch["mention_pairs"] + mention_offset)
        sents.extend(batch["mention_sent"])
        offset += len(batch["pairs"])
        mention_offset += len(batch["mention_sent"])
        batches.append(batch)
    forward_seconds = time.perf_counter() - started
    pair_logits, key_logits = torch.cat(pair_logits), torch.cat(key_logits)
    pair_row, mention_pairs = torch.cat(pair_rows), torch.cat(mention_pairs)
    n_rows = len(rows)
    p_key = torch.sigmoid(key_logits)
    confidence = torch.sigmoid(pair_logits[:, 1:]).max(dim=-1).values
    key = (p_key >= segment_mean(p_key, pair_row, n_rows)[pair_row]).float()
    variants = {
        "key pairs (p_ω >= mean, trained rule)": key,
        "all mention pairs (mean)": torch.ones(len(pair_row)),
        "extractor's confident pairs (max p_θ >= mean)": (
            confidence >= segment_mean(confidence, pair_row, n_rows)[pair_row]
        ).float(),
        "p_ω-weighted mean": p_key,
    }
    results = {}
    for name, selected in variants.items():
        totals = torch.zeros(n_rows).index_add(0, pair_row, selected)
        weights = selected / totals[pair_row].clamp_min(1e-12)
        entity_logits = torch.zeros(n_rows, pair_logits.shape[1]).index_add(
            0, pair_row, pair_logits * weights[:, None]
        )
        results[name] = score(task, dev, train, rows, entity_logits, relations, model.config.top_k)
    maximum = torch.full((n_rows, pair_logits.shape[1]), -1e30).index_reduce(0, pair_row, pair_logits, "amax")
    results["max over mention pairs"] = score(task, dev, train, rows, maximum, relations, model.config.top_k)

    # evidence enrichment and E-step agreement on gold facts
    row_of = {row: index for index, row in enumerate(rows)}
    in_evidence_key = in_evidence_all = n_key = n_all = 0
    labels = torch.zeros(n_rows, len(relations))
    for doc_index, doc in enumerate(dev):
        for fact in doc.facts:
            labels[row_of[(doc_index, (fact.h, fact.t))], relations[fact.r]] = 1.0
            if not fact.evidence:
                continue
            members = (pair_row == row_of[(doc_index, (fact.h, fact.t))]).nonzero().flatten().tolist()
            evidence = set(fact.evidence)
            for index in members:
                first, second = mention_pairs[index].tolist()
                inside = sents[first] in evidence and sents[second] in evidence
                in_evidence_all += inside
                n_all += 1
                if key[index]:
                    in_evidence_key += inside
                    n_key += 1
    labels[:, 0] = (labels[:, 1:].sum(dim=1) == 0).float()
    pseudo = KMGRE.pseudo_labels(pair_logits, labels, pair_row, n_rows)
    positive_pairs = labels[pair_row, 0] == 0
    share_key, share_all = in_evidence_key / max(1, n_key), in_evidence_all / max(1, n_all)
    report = {
        "command": "python benchmarks/kmgre_analysis.py " + " ".join(sys.argv[1:]),
        "model_dir": str(Path(args.model_dir)),
        "dev_documents": len(dev),
        "entity_pairs": n_rows,
        "mention_pairs": len(pair_row),
        "key_pair_fraction": round(float(key.mean()), 4),
        "forward_seconds": round(forward_seconds, 1),
        "dev_by_inference_fusion": results,
        "evidence_share_key_pairs": round(share_key, 4),
        "evidence_share_all_pairs": round(share_all, 4),
        "evidence_enrichment": round(share_key / share_all, 3) if share_all else None,
        "e_step_agreement_on_related_pairs": round(float((pseudo == key)[positive_pairs].float().mean()), 4),
        "p_key_std_within_entity_pair": round(
            float((p_key - segment_mean(p_key, pair_row, n_rows)[pair_row]).pow(2).mean().sqrt()), 4
        ),
        "machine": machine(),
        "threads": args.threads,
        "peak_rss_mb": round(self_peak_rss_mb(), 1),
    }
    print(json.dumps(report, indent=1, ensure_ascii=False))
    if args.out:
        write_json_atomic(args.out, report, indent=1)


def score(task, dev, train, rows, entity_logits, relations, top_k) -> dict[str, float]:
    scores = adaptive_threshold_scores(entity_logits, top_k)
    records = task.decode(dev, rows, scores, relations, 0.0)
    metrics = task.metrics(dev, records, train)
    return {key: round(metrics[key], 4) for key in ("f1", "ign_f1", "precision", "recall")}


if __name__ == "__main__":
    main()
