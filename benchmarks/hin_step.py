"""Time HIN training steps (forward + backward) on 12 real Re-DocRED documents, fp32 vs bf16 autocast.

    python benchmarks/hin_step.py [--config configs/hin_glove.yaml] [--threads 1] [--repeats 3]

The model is built from the config's ``model`` section on the first 12 documents of dev_revised.json and run
in training mode in batches of the config's ``trainer.batch_size``; reported is the median over ``--repeats``
of the time for all 12 documents (after one warm-up pass), per precision, with the machine's load average.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import time
from pathlib import Path

import torch
import yaml

from hiere.data.docred import read_docred
from hiere.data.relations import RelationMap
from hiere.models import get_model_class

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "redocred"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "hin_glove.yaml")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    config = yaml.safe_load(args.config.read_text())
    options = {key: value for key, value in config["model"].items() if key != "name"}
    model_class = get_model_class(config["model"]["name"])
    model_config = model_class.Config.from_dict(options)
    relations = RelationMap.from_rel_info(DATA / "rel_info.json")
    documents = read_docred(DATA / "dev_revised.json", relations.relations, limit=12)
    torch.manual_seed(0)
    model = model_class(model_config, model_class.build_resources(model_config, documents, relations))
    model.init_pretrained()
    model.train()
    features = [model.featurize(doc) for doc in documents]
    size = int(config["trainer"]["batch_size"])
    batches = [model.collate(features[i : i + size]) for i in range(0, len(features), size)]

    def step(precision: str) -> float:
        context = (
            torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()
        )
        start = time.perf_counter()
        for batch in batches:
            with context:
                loss = model(batch)["loss"]
            loss.backward()
        model.zero_grad(set_to_none=True)
        return time.perf_counter() - start

    print(f"{args.config.name}: 12 documents, batch {size}, {args.threads} thread(s), "
          f"load average {os.getloadavg()[0]:.1f}")
    for precision in ("fp32", "bf16"):
        step(precision)
        seconds = statistics.median(step(precision) for _ in range(args.repeats))
        print(f"{precision}: {seconds:.2f} s per 12 documents ({12 / seconds:.1f} documents/s)", flush=True)


if __name__ == "__main__":
    main()
