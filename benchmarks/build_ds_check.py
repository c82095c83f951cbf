"""Known-answer check of ``hiere build-ds`` on Re-DocRED, then PCNN+ATT trained on the built bags.

The Re-DocRED dev documents (``dev_revised.json``) are joined back into raw text (each sentence's
tokens joined by spaces, sentences joined by spaces) and written as a JSONL corpus. The KB is their
gold facts by entity name: ``head <tab> relation <tab> tail`` with each entity named by its longest
mention, and every mention name of an entity as an alias. ``hiere build-ds`` (spaCy sentences and
NER, alias matching) turns that corpus into bags, and the bags are scored against the known answer:

* **recovered**: gold (head name, relation, tail name) facts that became a bag (in any split),
  over all gold facts; the rest are facts whose two entities never share a spaCy sentence as
  matched mentions (inter-sentence facts are most of them: DocRED is document-level);
* **noise**: a built sentence is *expressed* when its document has that fact with an evidence
  sentence overlapping the built sentence, else it is noise (the distant-supervision assumption
  failed); a (pair, relation) bag is noise when none of its sentences is expressed. A sentence
  whose document has the fact without evidence sentences (Re-DocRED leaves many added facts
  without) is *unjudged*; shares are over judged sentences and bags.

Then ``python -m hiere train configs/pcnn_att_nyt10.yaml`` runs on the built train/dev splits with
only data paths overridden (plus ``--epochs``), and the PR-AUC on the held-back test pairs is read
from the model directory's ``test_metrics.json`` (a finished training, whose ``test_metrics.json`` exists, is
not run again). The report (``OUTPUT/report.json``, written atomically) names the machine
(:func:`harness.machine`), the build's peak RSS and the training's wall time and peak RSS.

    python benchmarks/build_ds_check.py -o runs/build_ds_check [--limit N] [--no-train] [--epochs E]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # harness, also when a test loads this file
from harness import ROOT, Outcome, Run, machine, run_queue, self_peak_rss_mb, train_command  # noqa: E402

from hiere.build_ds import BuildOptions, build_dataset  # noqa: E402
from hiere.io import write_json_atomic  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "redocred" / "dev_revised.json"


def entity_name(mentions: list[dict]) -> str:
    """The longest mention name (ties: the first), as hiere's clustering names entities."""
    return max(enumerate(mentions), key=lambda im: (len(im[1]["name"]), -im[0]))[1]["name"]


def usable(name: str) -> bool:
    """A name that fits a TSV field: not blank, no tab or line break (a few Re-DocRED names hold a newline)."""
    return bool(name.strip()) and not any(c in name for c in "\t\n\r")


def write_known_answer(documents: list[dict], folder: Path) -> dict[str, Path]:
    """corpus.jsonl, facts.tsv, aliases.tsv, plus sentences.json (character span of each sentence)."""
    folder.mkdir(parents=True, exist_ok=True)
    facts, aliases, spans = set(), set(), []
    with open(folder / "corpus.jsonl", "w", encoding="utf-8") as corpus:
        for document in documents:
            texts = [" ".join(tokens) for tokens in document["sents"]]
            starts, offset = [], 0
            for text in texts:
                starts.append([offset, offset + len(text)])
                offset += len(text) + 1
            spans.append(starts)
            corpus.write(json.dumps({"title": document["title"], "text": " ".join(texts)}, ensure_ascii=False) + "\n")
            names = [entity_name(mentions) for mentions in document["vertexSet"]]
            for index, mentions in enumerate(document["vertexSet"]):
                for mention in mentions:
                    if usable(mention["name"]) and usable(names[index]):
                        aliases.add((names[index], mention["name"]))
            for label in document.get("labels", []):
                if names[label["h"]] != names[label["t"]] and usable(names[label["h"]]) and usable(names[label["t"]]):
                    facts.add((names[label["h"]], label["r"], names[label["t"]]))
    (folder / "facts.tsv").write_text("".join(f"{h}\t{r}\t{t}\n" for h, r, t in sorted(facts)), encoding="utf-8")
    (folder / "aliases.tsv").write_text("".join(f"{e}\t{a}\n" for e, a in sorted(aliases)), encoding="utf-8")
    write_json_atomic(folder / "sentences.json", spans)
    return {"corpus": folder / "corpus.jsonl", "kb": folder / "facts.tsv", "aliases": folder / "aliases.tsv"}


def score_known_answer(documents: list[dict], out: Path, spans: list[list[list[int]]]) -> dict:
    """Recovered gold facts and noise of the built bags (see the module docstring)."""
    gold = set()
    evidence: dict[tuple[int, str, str, str], set[int]] = defaultdict(set)  # (doc, h, r, t) -> sentence ids
    for number, document in enumerate(documents):
        names = [entity_name(mentions) for mentions in document["vertexSet"]]
        for label in document.get("labels", []):
            key = (names[label["h"]], label["r"], names[label["t"]])
            if key[0] != key[2]:
                gold.add(key)
                evidence[(number, *key)].update(label.get("evidence") or [])
    bags: dict[tuple[str, str, str], set[str]] = defaultdict(set)  # bag -> statuses of its sentences
    status_counts: dict[str, int] = defaultdict(int)
    for split in ("train", "dev", "test"):
        with open(out / f"{split}.jsonl", encoding="utf-8") as handle:
            for raw in handle:
                record = json.loads(raw)
                if record["relation"] == "NA":
                    continue
                key = (record["h"]["id"], record["relation"], record["t"]["id"])
                doc = int(record["source"]["doc"].rsplit("line ", 1)[1]) - 1
                start, end = record["source"]["start"], record["source"]["end"]
                sent_ids = {i for i, (a, b) in enumerate(spans[doc]) if a < end and start < b}
                fact = (doc, *key)
                if fact in evidence and not evidence[fact]:
                    status = "unjudged"  # the document has the fact but names no evidence sentence
                else:
                    status = "expressed" if evidence.get(fact, set()) & sent_ids else "noise"
                status_counts[status] += 1
                bags[key].add(status)
    recovered = len(gold & set(bags))
    bag_status = {key: "expressed" if "expressed" in s else "unjudged" if "unjudged" in s else "noise"
                  for key, s in bags.items()}
    noise_bags = sum(1 for s in bag_status.values() if s == "noise")
    judged_bags = sum(1 for s in bag_status.values() if s != "unjudged")
    judged_lines = status_counts["expressed"] + status_counts["noise"]
    return {
        "gold_facts": len(gold),
        "recovered_facts": recovered,
        "recovered_share": round(recovered / len(gold), 4) if gold else 0.0,
        "positive_bags": len(bags),
        "judged_bags": judged_bags,
        "noise_bags": noise_bags,
        "noise_share_of_judged_bags": round(noise_bags / judged_bags, 4) if judged_bags else 0.0,
        "positive_sentences": sum(status_counts.values()),
        "sentences": dict(sorted(status_counts.items())),
        "noise_share_of_judged_sentences": round(status_counts["noise"] / judged_lines, 4) if judged_lines else 0.0,
    }


def train_pcnn(out: Path, run_dir: Path, epochs: int | None, config: str) -> tuple[list[str], dict, dict | None]:
    """``hiere train CONFIG`` on the built bags (unless ``run_dir`` holds a finished run): the command, the test
    metrics, and the training process's exit code, wall seconds and peak RSS (None when it was not run)."""
    overrides = [f"data.train={out / 'train.jsonl'}", f"data.dev={out / 'dev.jsonl'}",
                 f"data.test={out / 'test.jsonl'}", f"data.relations={out / 'rel2id.json'}", "data.long_tail=null"]
    if epochs is not None:
        overrides.append(f"trainer.epochs={epochs}")
    command = train_command(config, run_dir, overrides)
    outcomes: list[Outcome] = []
    if not (run_dir / "test_metrics.json").exists():
        run = Run(run_dir.name, run_dir.parent, [("train", command)])

        def done(_: Run, outcome: Outcome) -> bool:
            outcomes.append(outcome)
            return False

        run_queue([run], 1, done)
        if outcomes[0].exit_code:
            raise SystemExit(f"training exited with {outcomes[0].exit_code}: see {run.log('train')}")
    process = dataclasses.asdict(outcomes[0]) if outcomes else None
    return command, json.loads((run_dir / "test_metrics.json").read_text()), process


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-o", "--output", required=True, help="work folder (corpus, KB, bags, model)")
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="DocRED JSON (default: Re-DocRED dev_revised)")
    parser.add_argument("--limit", type=int, default=None, help="first N documents only (smoke test)")
    parser.add_argument("--match", default="both", choices=["alias", "ner", "both"])
    parser.add_argument("--na-ratio", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--no-train", action="store_true", help="build and score the bags only")
    parser.add_argument("--epochs", type=int, default=None, help="trainer.epochs (default: the config's)")
    parser.add_argument("--config", default="configs/pcnn_att_nyt10.yaml")
    args = parser.parse_args(argv)

    if "test" in Path(args.data).name:
        parser.error("never use a test split for this check")
    documents = json.loads(Path(args.data).read_text(encoding="utf-8"))[: args.limit]
    work = Path(args.output).resolve()
    paths = write_known_answer(documents, work / "input")
    spans = json.loads((work / "input" / "sentences.json").read_text())
    started = time.perf_counter()
    stats = build_dataset(paths["corpus"], paths["kb"], work / "bags", paths["aliases"],
                          options=BuildOptions(match=args.match, na_ratio=args.na_ratio, seed=args.seed,
                                               provenance=True), progress=True)
    build_seconds = time.perf_counter() - started
    report = {
        "command": " ".join([sys.executable, *sys.argv]),
        "data": f"{args.data} ({len(documents)} documents)",
        "machine": machine(),
        "build_seconds": round(build_seconds, 1),
        "build_peak_rss_mb": round(self_peak_rss_mb(), 1),
        "build": {key: stats[key] for key in ("documents", "sentences", "sentences_with_pair", "lines", "bags",
                                              "na_share_of_bags", "kb_facts", "kb_facts_matched")},
        "known_answer": score_known_answer(documents, work / "bags", spans),
    }
    if not args.no_train:
        command, metrics, process = train_pcnn(work / "bags", work / "pcnn_att", args.epochs, args.config)
        report["train_command"] = " ".join(command)
        report["train_process"] = process
        report["test_metrics"] = {k: v for k, v in metrics.items() if isinstance(v, int | float)}
    print(json.dumps(report, indent=1))
    write_json_atomic(work / "report.json", report, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
