"""What NER and clustering cost: ``hiere extract`` on raw text vs the same model given gold entities.

The held-out Re-DocRED documents (default: the last 50 of dev_revised.json) are turned back into raw
text (each sentence's tokens joined by spaces, sentences joined by spaces). ``hiere extract`` reads
that text (spaCy NER + string-match clustering) and its triples are scored against the gold facts
*by entity name*: a triple ``(head, relation, tail)`` is correct when some gold fact has that relation,
a head entity with a mention named ``head`` and a tail entity with a mention named ``tail``
(names compared without case and spaces). The same model given the gold documents (gold entities)
is scored the same way and with the official DocRED scorer, so the difference is what NER and
clustering cost. ``reachable recall`` is the share of gold facts whose head and tail entities both
have a mention name among the entities spaCy found: the recall ceiling of the text pipeline.

    python benchmarks/extract_benchmark.py MODEL_DIR [--data FILE --offset 450 --limit 50] [--stream N] [--json FILE]

The report names the machine (:func:`harness.machine`) and this process's peak RSS; ``--json`` is written
atomically.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import torch
from harness import ROOT, machine, rss_mb, self_peak_rss_mb

import hiere
from hiere.data.docred import Document, read_docred
from hiere.extract import extract, triples_from_predictions
from hiere.io import write_json_atomic
from hiere.metrics.doc import f1_score, score_documents
from hiere.text.clusters import MentionInfo, cluster_mentions
from hiere.text.pipeline import TextPipeline

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "redocred" / "dev_revised.json"


def squash(name: str) -> str:
    return "".join(name.split()).casefold()


def document_text(document: Document) -> str:
    return " ".join(" ".join(sentence) for sentence in document.sents)


def gold_spans(document: Document, with_clusters: bool) -> list[dict]:
    """The gold mentions as character spans of :func:`document_text`, with type (and gold cluster)."""
    starts, position = [], 0
    for token in document.tokens:
        starts.append(position)
        position += len(token) + 1
    spans = []
    for index, entity in enumerate(document.entities):
        for mention in entity:
            first, last = document.mention_span(mention)
            span = {"start": starts[first], "end": starts[last - 1] + len(document.tokens[last - 1]),
                    "type": mention.type}
            if with_clusters:
                span["cluster"] = index
            spans.append(span)
    return spans


def clustering_agreement(documents: list[Document]) -> dict[str, float]:
    """Pairwise precision and recall of :func:`cluster_mentions` against the gold coreference links,
    run on the gold mentions (names, types, positions) of ``documents``."""
    same_pred = same_gold = both = 0
    for document in documents:
        mentions = sorted(
            (document.mention_span(m)[0], m.name, m.type, index)
            for index, entity in enumerate(document.entities) for m in entity
        )
        groups = cluster_mentions([MentionInfo(name, kind, position) for position, name, kind, _ in mentions])
        predicted = {i: g for g, members in enumerate(groups) for i in members}
        for i, j in itertools.combinations(range(len(mentions)), 2):
            gold_link, predicted_link = mentions[i][3] == mentions[j][3], predicted[i] == predicted[j]
            same_pred += predicted_link
            same_gold += gold_link
            both += gold_link and predicted_link
    return {"pairwise_precision": both / same_pred, "pairwise_recall": both / same_gold,
            "documents": len(documents)}


def score_by_name(gold: list[Document], triples_per_doc: list[list[dict]]) -> dict[str, float | int]:
    """Precision, recall and F1 of name triples against the gold facts (see the module docstring)."""
    n_pred = n_pred_correct = n_gold = n_gold_found = 0
    for document, triples in zip(gold, triples_per_doc, strict=True):
        names = [{squash(m.name) for m in entity} for entity in document.entities]
        facts = {(f.h, f.t, f.r) for f in document.facts}
        predicted = {(squash(t["head"]), t["relation"], squash(t["tail"])) for t in triples}
        found = set()
        for head, relation, tail in predicted:
            hits = {(h, t, r) for h, t, r in facts if r == relation and head in names[h] and tail in names[t]}
            n_pred_correct += bool(hits)
            found |= hits
        n_pred += len(predicted)
        n_gold += len(facts)
        n_gold_found += len(found)
    precision = n_pred_correct / n_pred if n_pred else 0.0
    recall = n_gold_found / n_gold if n_gold else 0.0
    return {"precision": precision, "recall": recall, "f1": f1_score(precision, recall),
            "n_pred": n_pred, "n_gold": n_gold}


def entity_coverage(gold: list[Document], parsed: list[Document]) -> dict[str, float]:
    """Gold entities with a mention name spaCy found, and gold facts with both ends found."""
    n_entities = n_found = n_facts = n_reachable = 0
    for document, found_doc in zip(gold, parsed, strict=True):
        found_names = {squash(m.name) for entity in found_doc.entities for m in entity}
        hit = [bool({squash(m.name) for m in entity} & found_names) for entity in document.entities]
        n_entities += len(hit)
        n_found += sum(hit)
        facts = {(f.h, f.t, f.r) for f in document.facts}
        n_facts += len(facts)
        n_reachable += sum(hit[h] and hit[t] for h, t, _ in facts)
    return {"gold_entities_found": n_found / n_entities, "reachable_recall": n_reachable / n_facts,
            "entities_per_doc": sum(len(d.entities) for d in parsed) / len(parsed),
            "gold_entities_per_doc": n_entities / len(gold)}


def stream_memory(predictor, pipeline: TextPipeline, texts: list[str], n_docs: int, folder: Path) -> dict:
    """Stream ``n_docs`` documents (the texts repeated) from a file through :func:`extract`, sampling
    the resident memory every 50 documents: a flat curve means constant memory."""
    from hiere.extract import iter_documents

    path = folder / "stream.txt"
    with path.open("w", encoding="utf-8") as handle:
        for index in range(n_docs):
            handle.write(texts[index % len(texts)] + "\n")
    samples, start = [], time.perf_counter()
    for index, _ in enumerate(extract(predictor, iter_documents(path), pipeline=pipeline, skip_errors=True), 1):
        if index % 50 == 0:
            samples.append((index, round(rss_mb() or float("nan"), 1)))
    return {"documents": n_docs, "rss_mib_every_50_docs": samples, "seconds": time.perf_counter() - start}


def main(argv: list[str] | None = None) -> int:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("model_dir", help="a trained document-level model directory")
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="DocRED JSON with the held-out documents")
    parser.add_argument("--offset", type=int, default=450, help="first held-out document (default 450)")
    parser.add_argument("--limit", type=int, default=50, help="number of held-out documents (default 50)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    parser.add_argument("--stream", type=int, default=0,
                        help="also stream this many documents (the held-out texts repeated) from a file and "
                        "report resident memory every 50 documents")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    gold = read_docred(args.data, offset=args.offset, limit=args.limit)
    predictor = hiere.load(args.model_dir, device="cpu")
    pipeline = TextPipeline()
    pipeline.nlp  # noqa: B018  (load spaCy before timing)

    start = time.perf_counter()
    gold_records = predictor.predict(gold, explain=False)
    gold_seconds = time.perf_counter() - start
    official = score_documents(gold, gold_records)
    by_title: dict[str, list[dict]] = {}
    for record in gold_records:
        by_title.setdefault(record["title"], []).append(record)
    gold_triples = [triples_from_predictions(d, by_title.get(d.title, []), predictor.relations) for d in gold]
    gold_by_name = score_by_name(gold, gold_triples)

    texts = [document_text(d) for d in gold]
    start = time.perf_counter()
    parsed = [pipeline.parse(text, title=d.title).document for text, d in zip(texts, gold, strict=True)]
    parse_seconds = time.perf_counter() - start
    start = time.perf_counter()
    text_triples = list(extract(predictor, texts, pipeline=pipeline))
    extract_seconds = time.perf_counter() - start
    text_by_name = score_by_name(gold, text_triples)
    # the same text with the gold mentions as user entities: with gold clusters (isolates spaCy's
    # sentences and tokens), then without (isolates the clustering rule)
    ablations = {}
    for label, with_clusters in (("gold_mentions_gold_clusters", True), ("gold_mentions_rule_clusters", False)):
        records = [{"text": t, "entities": gold_spans(d, with_clusters)} for t, d in zip(texts, gold, strict=True)]
        ablations[label] = score_by_name(gold, list(extract(predictor, records, pipeline=pipeline)))
    coverage = entity_coverage(gold, parsed)
    clustering = clustering_agreement(read_docred(args.data, limit=args.offset)) if args.offset else {}

    streaming = {}
    if args.stream:
        import tempfile

        with tempfile.TemporaryDirectory() as folder:
            streaming = stream_memory(predictor, pipeline, texts, args.stream, Path(folder))

    report = {
        "command": " ".join(["python", "benchmarks/extract_benchmark.py", *(argv or sys.argv[1:])]),
        "data": f"{args.data} documents [{args.offset}, {args.offset + len(gold)})",
        "machine": machine(),
        "torch_threads": torch.get_num_threads(),
        "gold_entities_official": {k: official[k] for k in ("precision", "recall", "f1", "n_pred", "n_gold")},
        "gold_entities_by_name": gold_by_name,
        "extract_by_name": text_by_name,
        **ablations,
        "coverage": coverage,
        "clustering_rule_on_gold_mentions_of_documents_before_offset": clustering,
        "streaming": streaming,
        "seconds": {"model_on_gold_docs": gold_seconds, "spacy_parse_and_cluster": parse_seconds,
                    "extract_total": extract_seconds, "docs": len(gold)},
        "peak_rss_mb": round(self_peak_rss_mb(), 1),
    }
    print(json.dumps(report, indent=1))
    rows = [
        ("gold entities, official DocRED scorer", report["gold_entities_official"]),
        ("gold entities, scored by name", gold_by_name),
        ("raw text + gold mentions and clusters (--entities)", ablations["gold_mentions_gold_clusters"]),
        ("raw text + gold mentions, clustering rule", ablations["gold_mentions_rule_clusters"]),
        ("hiere extract on raw text (spaCy NER + clustering rule)", text_by_name),
    ]
    print("\n| setting | P | R | F1 | predicted | gold facts |\n|---|---|---|---|---|---|")
    for label, m in rows:
        print(f"| {label} | {100 * m['precision']:.2f} | {100 * m['recall']:.2f} | {100 * m['f1']:.2f} "
              f"| {m['n_pred']} | {m['n_gold']} |")
    print(f"\ngold entities found by name: {100 * coverage['gold_entities_found']:.1f}%; reachable recall "
          f"{100 * coverage['reachable_recall']:.1f}%; entities/doc {coverage['entities_per_doc']:.1f} "
          f"(gold {coverage['gold_entities_per_doc']:.1f}); extract {len(gold) / extract_seconds:.2f} docs/s")
    if streaming:
        print(f"streaming {streaming['documents']} documents from a file: resident MiB every 50 documents "
              f"{[mib for _, mib in streaming['rss_mib_every_50_docs']]}")
    if clustering:
        print(f"clustering rule on the gold mentions of documents [0, {args.offset}): pairwise precision "
              f"{clustering['pairwise_precision']:.3f}, recall {clustering['pairwise_recall']:.3f}")
    if args.json:
        write_json_atomic(args.json, report, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
