"""``hiere serve`` through FastAPI's TestClient: the same answers as ``hiere extract`` / ``hiere predict``, every
kind of bad input as a 4xx JSON error naming the field, limits, micro-batching and a free event loop."""

from __future__ import annotations

import asyncio
import copy
import json
import re
import time

import httpx
import pytest
from fastapi.testclient import TestClient

import hiere
from hiere.cli import main
from hiere.extract import TRIPLE_FIELDS, extract_text
from hiere.serve.app import STATIC, create_app
from hiere.serve.settings import ServeSettings
from hiere.text.pipeline import TextPipeline
from serve_support import NYT10, document_text, redocred_records, train_bilstm, train_hnre


@pytest.fixture(scope="module")
def doc_model_dir(tmp_path_factory):
    return train_bilstm(tmp_path_factory.mktemp("bilstm"))


@pytest.fixture(scope="module")
def doc_predictor(doc_model_dir):
    return hiere.load(doc_model_dir, device="cpu")


@pytest.fixture(scope="module")
def client(doc_model_dir, doc_predictor):
    app = create_app(ServeSettings(model_dir=str(doc_model_dir), max_texts=4, max_chars=3000, max_records=3),
                     predictor=doc_predictor)
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def bag_client(tmp_path_factory):
    model_dir = train_hnre(tmp_path_factory.mktemp("hnre"))
    app = create_app(ServeSettings(model_dir=str(model_dir), device="cpu"))
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def pipeline():
    return TextPipeline()


def cli_triples(predictor, text, pipeline, **options):
    """What ``hiere extract`` computes for a text (the function behind the command)."""
    return extract_text(predictor, text, pipeline=pipeline, **options)


def plain(triple):
    return {key: triple[key] for key in TRIPLE_FIELDS}


def squash(text):
    return "".join(text.split())


# ------------------------------------------------------------------------------------------------ /extract


def test_extract_answers_the_triples_of_hiere_extract(client, doc_predictor, pipeline):
    text = document_text(450)
    response = client.post("/extract", json={"text": text})
    assert response.status_code == 200
    body = response.json()
    assert body["model"] == "bilstm" and body["task"] == "doc"
    [result] = body["results"]
    expected = cli_triples(doc_predictor, text, pipeline)
    assert expected and [plain(triple) for triple in result["triples"]] == expected


def test_document_view_links_triples_to_mentions_and_evidence(client):
    text = document_text(451)
    [result] = client.post("/extract", json={"text": text}).json()["results"]
    view = result["document"]
    sentences = [text[s["start"] : s["end"]] for s in view["sentences"]]
    assert squash("".join(sentences)) == squash(text)  # every character of the text is in a sentence
    for entity in view["entities"]:
        for mention in entity["mentions"]:
            span = view["sentences"][mention["sentence"]]
            assert span["start"] <= mention["start"] < mention["end"] <= span["end"]
        assert any(squash(text[m["start"] : m["end"]]) == squash(entity["name"]) for m in entity["mentions"])
    assert result["triples"]
    for triple in result["triples"]:
        explanation = triple["explanation"]
        head, tail = view["entities"][explanation["head_entity"]], view["entities"][explanation["tail_entity"]]
        assert (head["name"], head["type"], tail["name"], tail["type"]) == (
            triple["head"], triple["head_type"], triple["tail"], triple["tail_type"])
        assert [sentences[i] for i in explanation["evidence_sentences"]] == triple["evidence"]
        assert explanation["attention"] is None  # a document model: evidence sentences, no bag attention


def mention_span(index, entity, mention=0):
    """Character span of a gold mention in :func:`document_text` (tokens joined by single spaces)."""
    record = redocred_records()[index]
    tokens = [token for sentence in record["sents"] for token in sentence]
    found = record["vertexSet"][entity][mention]
    first = sum(len(sentence) for sentence in record["sents"][: found["sent_id"]]) + found["pos"][0]
    start = sum(len(token) + 1 for token in tokens[:first])
    return start, start + len(" ".join(tokens[first : first - found["pos"][0] + found["pos"][1]]))


def test_several_texts_keep_their_order_titles_and_entities(client, doc_predictor, pipeline):
    texts = [document_text(452), document_text(453)]
    entities = [{"start": start, "end": end, "type": kind}
                for (start, end), kind in ((mention_span(453, 0), "PER"), (mention_span(453, 1), "LOC"))]
    request = {"texts": [texts[0], {"text": texts[1], "title": "second", "entities": entities}]}
    results = client.post("/extract", json=request).json()["results"]
    assert [result["title"] for result in results] == [None, "second"]
    assert [plain(t) for t in results[0]["triples"]] == cli_triples(doc_predictor, texts[0], pipeline)
    assert [plain(t) for t in results[1]["triples"]] == cli_triples(doc_predictor, texts[1], pipeline,
                                                                    entities=entities)
    spans = sorted((m["start"], m["end"]) for e in results[1]["document"]["entities"] for m in e["mentions"])
    assert spans == sorted((e["start"], e["end"]) for e in entities)


def test_threshold_and_top_k_filter_the_triples(client):
    text = document_text(450)
    everything = client.post("/extract", json={"text": text}).json()["results"][0]["triples"]
    scores = [triple["score"] for triple in everything]
    cut = sorted(scores)[len(scores) // 2]
    above = client.post("/extract", json={"text": text, "threshold": cut}).json()["results"][0]["triples"]
    assert above == [triple for triple in everything if triple["score"] >= cut] and len(above) < len(everything)
    best = client.post("/extract", json={"text": text, "top_k": 3}).json()["results"][0]["triples"]
    assert best == everything[:3]


# ------------------------------------------------------------------------------------------------ bad input


LONG = "word " * 700  # 3500 characters: over the fixture's max_chars of 3000
BAD_JSON_REQUESTS = [
    # (body, content type, status, field, words of the message)
    (b'{"text": "Marie Curie was born', "application/json", 400, "body", "malformed JSON"),
    (b'{"text": 1e}', "application/json", 400, "body", "malformed JSON"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe", "application/json", 400, "body", "binary data"),
    (b"\xff\xd8\xff\xe0 JFIF", None, 400, "body", "binary data"),
    (b"text=Marie+Curie", "application/x-www-form-urlencoded", 415, "body", "Content-Type: application/json"),
    (b"", "application/json", 422, "body", "missing"),
    (b"[1, 2]", "application/json", 422, "body", "valid dictionary"),
]
BAD_FIELD_REQUESTS = [
    # (JSON request, status, field, words of the message)
    ({"text": 5}, 422, "text", "valid string"),
    ({"text": ["Marie", "Curie"]}, 422, "text", "valid string"),
    ({"text": "Marie Curie was born in Warsaw.", "threshold": "high"}, 422, "threshold", "valid number"),
    ({"text": "Marie Curie was born in Warsaw.", "top_k": 0}, 422, "top_k", "greater than or equal to 1"),
    ({"text": "Marie Curie was born in Warsaw.", "top_k": "3"}, 422, "top_k", "valid integer"),
    ({"texts": "Marie Curie was born in Warsaw."}, 422, "texts", "valid list"),
    ({"texts": ["Marie Curie.", {"text": "Paris.", "entities": [{"start": "0", "end": 5}]}]}, 422,
     "texts[1].entities[0].start", "valid integer"),
    ({"text": "Marie Curie.", "entities": [{"start": 0, "end": 5, "cluster": 1.5}]}, 422, "entities[0].cluster",
     "valid string or a valid integer"),
    ({"text": "Marie Curie was born in Warsaw.", "treshold": 0.5}, 422, "treshold", "unknown field"),
    ({"texts": [{"text": "Marie Curie.", "titel": "x"}]}, 422, "texts[0].titel", "unknown field"),
    ({"text": "Marie Curie was born in Warsaw.", "entities": [{"start": 24, "end": 90}]}, 422, "entities[0].end",
     "outside the text (31 characters)"),
    ({"texts": ["Paris.", {"text": "Marie Curie.", "entities": [{"start": 7, "end": 40, "type": "PER"}]}]}, 422,
     "texts[1].entities[0].end", "outside the text"),
    ({"text": "Marie Curie was born in Warsaw.", "entities": [{"start": 9, "end": 3}]}, 422, "entities[0].end",
     "empty"),
    ({"text": "Marie Curie was born in Warsaw.", "entities": [{"start": 0, "end": 5, "type": "ANIMAL"}]}, 422,
     "entities[0].type", "unknown type"),
    ({"text": "Marie Curie was born in Warsaw.", "entities": [{"start": 11, "end": 12}]}, 422, "entities[0].start",
     "covers no token"),
    ({"text": ""}, 422, "text", "empty"),
    ({"text": " \n\t "}, 422, "text", "empty"),
    ({"texts": ["Marie Curie was born in Warsaw.", ""]}, 422, "texts[1].text", "empty"),
    ({"texts": []}, 422, "texts", "empty list"),
    ({}, 422, "text", "give text"),
    ({"text": "Paris.", "texts": ["Rome."]}, 422, "texts", "either text or texts"),
    ({"texts": ["Paris."], "entities": []}, 422, "entities", "each text its own entities"),
    ({"text": "PNG\u0000\u0001\u0002\u0003IHDR\u0000\u0000"}, 422, "text", "binary data"),
    ({"texts": ["Rome.", "\u0007\u0008\u0001\u0002\u0003\u0004 abc"]}, 422, "texts[1].text", "binary data"),
    ({"text": "Мария Склодовская-Кюри родилась в Варшаве и работала в Париже."}, 422, "text",
     "does not look like English"),
    ({"texts": ["Marie Curie was born in Warsaw."] * 5}, 413, "texts", "limit is 4"),
    ({"text": LONG}, 413, "text", "limit is 3,000"),
    ({"texts": ["Rome.", LONG]}, 413, "texts[1].text", "limit is 3,000"),
]


def check_error(response, status, field, words):
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["status"] == status and body["field"] == field, body
    assert words in body["message"], body
    assert body["errors"][0] == {"field": field, "message": body["message"]}
    assert "Traceback" not in response.text and "File \"" not in response.text


@pytest.mark.parametrize(("body", "content_type", "status", "field", "words"), BAD_JSON_REQUESTS)
def test_a_body_that_is_not_a_json_object_is_a_4xx_naming_the_body(client, body, content_type, status, field,
                                                                    words):
    headers = {"content-type": content_type} if content_type else {}
    check_error(client.post("/extract", content=body, headers=headers), status, field, words)


@pytest.mark.parametrize(("request_json", "status", "field", "words"), BAD_FIELD_REQUESTS)
def test_a_bad_field_is_a_4xx_naming_it(client, request_json, status, field, words):
    check_error(client.post("/extract", json=request_json), status, field, words)


def test_every_bad_text_of_a_request_is_named(client):
    response = client.post("/extract", json={"texts": ["", "Marie Curie was born in Warsaw.", 7]})
    check_error(response, 422, "texts[2].text", "valid string")
    response = client.post("/extract", json={"texts": ["", "Marie Curie was born in Warsaw.", "\u0000\u0000"]})
    assert [error["field"] for error in response.json()["errors"]] == ["texts[0].text", "texts[2].text"]


def test_a_request_over_the_size_limit_is_refused_before_it_is_read(doc_model_dir, doc_predictor):
    app = create_app(ServeSettings(model_dir=str(doc_model_dir), max_request_bytes=1000), predictor=doc_predictor)
    with TestClient(app) as small:
        check_error(small.post("/extract", json={"text": "Marie Curie was born in Warsaw. " * 40}), 413, "body",
                    "limit is 1,000 bytes")
        chunks = (b'{"text": "' + b"Warsaw " * 50, b"Warsaw " * 100 + b'"}')  # no Content-Length: counted as read
        check_error(small.post("/extract", content=iter(chunks), headers={"content-type": "application/json"}),
                    413, "body", "over 1,000 bytes")
        assert small.post("/extract", json={"text": "Marie Curie was born in Warsaw."}).status_code == 200


def test_unknown_routes_and_methods_are_json_errors(client):
    check_error(client.get("/nothing-here"), 404, None, "no such page")
    check_error(client.get("/extract"), 405, None, "GET is not allowed")


def test_a_failing_model_is_a_500_without_traceback(doc_model_dir, doc_predictor, monkeypatch):
    app = create_app(ServeSettings(model_dir=str(doc_model_dir)), predictor=doc_predictor)

    def broken(*args, **kwargs):
        raise RuntimeError("out of memory in a kernel")

    with TestClient(app, raise_server_exceptions=False) as broken_client:
        monkeypatch.setattr(app.state.service.predictor, "predict", broken)
        response = broken_client.post("/extract", json={"text": document_text(450)})
    assert response.status_code == 500 and response.json()["message"].startswith("internal error (RuntimeError)")
    assert "Traceback" not in response.text and "kernel" not in response.text


# ------------------------------------------------------------------------------------------------ /predict


def test_predict_answers_the_records_of_hiere_predict(client, doc_predictor, doc_model_dir, tmp_path):
    documents = [copy.deepcopy(record) for record in redocred_records()[450:452]]
    for document in documents:
        document.pop("labels", None)
    response = client.post("/predict", json={"documents": documents})
    assert response.status_code == 200
    body = response.json()
    (tmp_path / "docs.json").write_text(json.dumps(documents))
    assert main(["predict", str(doc_model_dir), str(tmp_path / "docs.json"), "-o", str(tmp_path / "pred.json"),
                 "--device", "cpu"]) == 0
    assert body["task"] == "doc" and body["predictions"] == json.loads((tmp_path / "pred.json").read_text())


@pytest.mark.parametrize(("change", "status", "field", "words"), [
    (lambda docs: docs[1]["vertexSet"][1][0].update(pos=[0, 999]), 422, "documents[1].vertexSet[1][0].pos",
     "outside sentence 0"),
    (lambda docs: docs[0]["vertexSet"][0][0].update(sent_id=40), 422, "documents[0].vertexSet[0][0].sent_id",
     "out of range"),
    (lambda docs: docs[0]["vertexSet"][0][0].update(sent_id="0"), 422, "documents[0].vertexSet[0][0].sent_id",
     "valid integer"),
    (lambda docs: docs[1].update(sents=[]), 422, "documents[1].sents", "empty document"),
    (lambda docs: docs[0]["labels"][0].update(r="P999999"), 422, "documents[0].labels[0].r", "unknown relation"),
    (lambda docs: docs[0].pop("title"), 422, "documents[0].title", "missing"),
    (lambda docs: docs.extend(copy.deepcopy(docs)), 413, "documents", "limit is 3"),
])
def test_bad_documents_are_a_4xx_naming_the_field(client, change, status, field, words):
    documents = [copy.deepcopy(record) for record in redocred_records()[450:452]]
    change(documents)
    check_error(client.post("/predict", json={"documents": documents}), status, field, words)


def test_predict_needs_the_records_of_the_models_task(client):
    sentence = json.loads((NYT10 / "nyt10sub_test.txt").read_text().splitlines()[0])
    check_error(client.post("/predict", json={"sentences": [sentence]}), 422, "sentences",
                "document-level model: send documents")
    check_error(client.post("/predict", json={"documents": []}), 422, "documents", "empty list")
    check_error(client.post("/predict", json={}), 422, "documents", "missing")


# ------------------------------------------------------------------------------------------------ bag models


def test_bag_model_triples_carry_per_level_attention(bag_client, pipeline):
    text = document_text(0)
    response = bag_client.post("/extract", json={"text": text, "top_k": 5})
    assert response.status_code == 200
    [result] = response.json()["results"]
    predictor = bag_client.app.state.service.predictor
    assert [plain(t) for t in result["triples"]] == cli_triples(predictor, text, pipeline)[:5]
    sentences = [text[s["start"] : s["end"]] for s in result["document"]["sentences"]]
    for triple in result["triples"]:
        attention = triple["explanation"]["attention"]
        assert len(attention["levels"]) == 3 and attention["levels"][0] == triple["relation"]  # then ancestors
        assert all(len(level) == len(attention["sentences"]) for level in attention["weights"])
        assert all(abs(sum(level) - 1) < 1e-3 for level in attention["weights"])  # softmax over the bag
        assert [sentences[i] for i in attention["sentences"]] == triple["evidence"]


def test_bag_predict_answers_ranked_records_and_names_bad_sentences(bag_client):
    lines = [json.loads(line) for line in (NYT10 / "nyt10sub_test.txt").read_text().splitlines()[:6]]
    response = bag_client.post("/predict", json={"sentences": lines})
    assert response.status_code == 200
    predictor = bag_client.app.state.service.predictor
    assert response.json()["predictions"] == predictor.predict(lines)
    lines[3]["h"]["pos"] = [0, 10_000]
    check_error(bag_client.post("/predict", json={"sentences": lines}), 422, "sentences[3].h.pos",
                "outside the text")
    check_error(bag_client.post("/predict", json={"documents": []}), 422, "documents",
                "bag-level model: send sentences")


# ------------------------------------------------------------------------------------------------ the service


def test_health_and_model_describe_the_loaded_model(client, doc_predictor):
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["model"] == "bilstm" and health["pending_texts"] == 0
    info = client.get("/model").json()
    assert info["name"] == "bilstm" and info["task"] == "doc"
    assert [r["id"] for r in info["relations"]] == doc_predictor.relations.relations
    assert info["threshold"] == pytest.approx(doc_predictor.threshold)
    assert info["config"]["model"]["hidden"] == 16 and info["limits"]["max_texts"] == 4
    schema = client.get("/openapi.json").json()
    for path in ("/extract", "/predict", "/health", "/model"):
        assert path in schema["paths"]
    assert "ExtractRequest" in schema["components"]["schemas"] and client.get("/docs").status_code == 200


def test_concurrent_texts_share_model_calls_and_the_loop_stays_free(doc_model_dir, doc_predictor, monkeypatch):
    """8 clients at once: one batch, one forward pass; /health answers while the model works."""
    app = create_app(ServeSettings(model_dir=str(doc_model_dir), batch_window_ms=300), predictor=doc_predictor)
    service = app.state.service
    calls = []
    real_predict = doc_predictor.predict

    def slow_predict(examples, **options):
        calls.append(len(list(examples)))
        time.sleep(1.0)  # the model is busy: the event loop must not be
        return real_predict(examples, **options)

    monkeypatch.setattr(doc_predictor, "predict", slow_predict)
    texts = [document_text(450 + i) for i in range(8)]
    finished = {}

    async def scenario():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://serve") as http:
            await asyncio.get_running_loop().run_in_executor(service.executor, service.warm_up)

            async def post(index):
                response = await http.post("/extract", json={"text": texts[index]})
                finished[f"extract {index}"] = time.monotonic()
                return response

            async def health():
                await asyncio.sleep(0.6)  # the batch is in the model by now
                response = await http.get("/health")
                finished["health"] = time.monotonic()
                return response

            responses = await asyncio.gather(*(post(i) for i in range(8)), health())
            await service.batcher.stop()
            return responses

    *extracted, health = asyncio.run(scenario())
    assert health.status_code == 200 and all(response.status_code == 200 for response in extracted)
    assert list(service.batcher.batch_sizes) == [8] and calls == [8]  # one batch, one predict call
    assert finished["health"] < min(value for key, value in finished.items() if key != "health")
    monkeypatch.undo()
    pipeline = TextPipeline()
    for text, response in zip(texts, extracted, strict=True):
        triples = response.json()["results"][0]["triples"]
        assert [plain(t) for t in triples] == cli_triples(doc_predictor, text, pipeline)


def test_a_full_queue_answers_503_busy(doc_model_dir, doc_predictor):
    app = create_app(ServeSettings(model_dir=str(doc_model_dir), max_pending_texts=2), predictor=doc_predictor)
    with TestClient(app) as busy:
        response = busy.post("/extract", json={"texts": ["Marie Curie was born in Warsaw."] * 3})
    assert response.status_code == 503 and response.headers["retry-after"] == "1"
    assert "waiting for the model" in response.json()["message"]


# ------------------------------------------------------------------------------------------------ page and CLI


def test_the_page_and_its_files_are_served_and_load_nothing_from_elsewhere(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for name in ("index.html", "app.js", "style.css"):
        content = (STATIC / name).read_text(encoding="utf-8")
        assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", content), name  # no CDN, works offline
        assert "@import" not in content and "url(http" not in content
        assert client.get(f"/static/{name}").status_code == 200
    examples = client.get("/examples").json()
    assert len(examples) == 4 and all(example["text"] and example["title"] for example in examples)


def test_cli_serve_help_teaches_and_a_bad_model_dir_is_one_line(tmp_path, capsys):
    assert main(["serve", "--help"]) == 0  # main() returns argparse's exit code
    help_text = capsys.readouterr().out
    for words in ("POST /extract", "POST /predict", "GET  /health", "--max-texts", "--batch-window-ms", "/docs"):
        assert words in help_text
    for workers in ("1", "2"):
        assert main(["serve", str(tmp_path / "missing"), "--workers", workers]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith("hiere: error:") and "not a hiere model directory" in err[-1]
    assert main(["serve", str(tmp_path), "--max-texts", "0"]) == 2
    assert capsys.readouterr().err.strip() == "hiere: error: max_texts must be at least 1, got 0"
