"""OpenNRE jsonl bag reader: counts on the real NYT10/GIDS files, tokenisation, validation, round trips."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hiere.data.bags import (
    bag_scope,
    flatten_bags,
    parse_bags,
    read_bags,
    read_long_tail,
    read_relation_map,
    tokenize_with_spans,
)
from hiere.errors import HiereInputError

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
NYT_TEST = DATA / "nyt10" / "nyt10sub_test.txt"
NYT_TRAIN = DATA / "nyt10" / "nyt10sub_train.txt"
GIDS_DEV = DATA / "gids" / "gids_dev.txt"


def real_lines(path: Path, count: int, start: int = 0) -> list[dict]:
    with path.open(encoding="utf-8") as handle:
        lines = [json.loads(line) for _, line in zip(range(start + count), handle, strict=False)]
    return lines[start:]


def write_lines(path: Path, records: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def test_bags():
    return read_bags(NYT_TEST, require_labels=True)


def test_nyt10_test_is_5424_pair_bags_with_1947_facts(test_bags):
    bags = test_bags
    assert len(bags) == 5424
    assert sum(len(bag.relations) for bag in bags if not bag.is_na) == 1947
    assert sum(bag.size for bag in bags) == 9604
    assert sum(bag.is_na for bag in bags) == 3666
    assert sum(len(bag.relations) > 1 for bag in bags) == 167  # multi-label entity pairs
    # OpenNRE training bags split a pair by relation: the README's 5,613 bags
    assert len(read_bags(NYT_TEST, mode="pair_relation")) == 5613


def test_nyt10_train_bag_modes():
    by_fact = read_bags(NYT_TRAIN, mode="pair_relation")
    assert len(by_fact) == 1740
    assert sum(bag.is_na for bag in by_fact) == 196
    assert all(len(bag.relations) == 1 for bag in by_fact)
    by_pair = read_bags(NYT_TRAIN, mode="pair")
    assert len(by_pair) == 1734
    assert sum(bag.size for bag in by_pair) == sum(bag.size for bag in by_fact) == 10217


def test_bags_keep_first_appearance_order_and_file_order_inside(test_bags):
    bags = test_bags[:30]
    first_lines = [bag.sentences[0].line for bag in bags]
    assert first_lines == sorted(first_lines)
    assert first_lines[0] == 1
    for bag in bags:
        lines = [s.line for s in bag.sentences]
        assert lines == sorted(lines)
    assert read_bags(NYT_TEST, offset=10, limit=5) == bags[10:15]  # reading again gives identical bags


def test_first_nyt10_line_tokens_and_spans(test_bags):
    bag = test_bags[0]
    assert (bag.head_id, bag.tail_id) == ("m.0xq4r", "m.0qrh9")
    assert (bag.head_name, bag.tail_name) == ("leonardo", "cotter")
    sentence = bag.sentences[0]
    assert sentence.tokens[:4] == ("-lrb-", "cotter", "-rrb-", "\\*")
    assert sentence.tokens[sentence.head[0] : sentence.head[1]] == ("leonardo",)
    assert sentence.tail == (1, 2)
    assert sentence.relation == "NA" and bag.relations == ["NA"]


def test_gids_spans_that_cut_tokens_are_split():
    bags = read_bags(GIDS_DEV, read_relation_map(DATA / "gids" / "gids_rel2id.json"))
    assert len(bags) == 1082
    by_line = {s.line: s for bag in bags for s in bag.sentences}
    london = by_line[37]  # "... Abbey. London, 1969." with the tail span on "London"
    assert london.tokens[london.tail[0] : london.tail[1]] == ("London",)
    assert london.tokens[london.tail[1]] == ","
    perugia = by_line[901]  # tail "Perugia" inside the head "Andrew_of_Perugia"
    assert perugia.tokens[perugia.head[0] : perugia.head[1]] == ("Andrew_of_", "Perugia")
    assert perugia.tokens[perugia.tail[0] : perugia.tail[1]] == ("Perugia",)


def test_multiword_underscore_names_stay_one_token():
    line = real_lines(NYT_TEST, 1, start=2)[0]
    assert line["h"]["name"] == "keith_sonnier"
    sentence = parse_bags([line])[0].sentences[0]
    assert sentence.tokens[sentence.head[0] : sentence.head[1]] == ("keith_sonnier",)
    assert sentence.tokens[sentence.tail[0] : sentence.tail[1]] == ("trisha_brown",)


def test_token_variant_gives_the_same_bags(tmp_path):
    lines = real_lines(NYT_TEST, 40)
    bags = parse_bags(lines)
    token_lines = []
    for line in lines:
        (only,) = parse_bags([line])[0].sentences
        token_lines.append(
            {
                "token": list(only.tokens),
                "h": {**line["h"], "pos": list(only.head)},
                "t": {**line["t"], "pos": list(only.tail)},
                "relation": line["relation"],
            }
        )
    again = read_bags(write_lines(tmp_path / "tokens.txt", token_lines))
    assert [(b.pair, b.relations, b.size) for b in again] == [(b.pair, b.relations, b.size) for b in bags]
    assert [(s.tokens, s.head, s.tail) for b in again for s in b.sentences] == [
        (s.tokens, s.head, s.tail) for b in bags for s in b.sentences
    ]


def test_json_list_file_is_accepted(tmp_path):
    lines = real_lines(NYT_TEST, 12)
    path = tmp_path / "list.json"
    path.write_text(json.dumps(lines), encoding="utf-8")
    assert read_bags(path) == read_bags(write_lines(tmp_path / "lines.txt", lines))


def test_relation_map_from_rel2id_has_na_first():
    relations = read_relation_map(DATA / "nyt10" / "nyt10_rel2id.json")
    assert len(relations) == 56
    assert relations["NA"] == 0
    assert relations["/location/us_county/county_seat"] == 13
    gids = read_relation_map(DATA / "gids" / "gids_rel2id.json")
    assert gids.relations[2] == "/people/person/education./education/education/degree"


def test_long_tail_lists():
    assert len(read_long_tail(DATA / "hnre" / "rel100.txt")) == 32
    assert "/people/person/ethnicity" in read_long_tail(DATA / "hnre" / "rel200.txt")


def test_bag_scope_and_flatten(test_bags):
    assert bag_scope([2, 1, 3]) == [(0, 2), (2, 3), (3, 6)]
    assert bag_scope([]) == []
    bags = test_bags[3600:3620]
    sentences, scope = flatten_bags(bags)
    assert len(sentences) == sum(b.size for b in bags)
    for bag, (start, end) in zip(bags, scope, strict=True):
        assert sentences[start:end] == bag.sentences


def test_relation_indices(test_bags):
    relations = read_relation_map(DATA / "nyt10" / "nyt10_rel2id.json")
    bags = test_bags
    multi = next(b for b in bags if len(b.relations) > 1)
    assert multi.relation_indices(relations) == [relations[r] for r in multi.relations]
    assert bags[0].relation_indices(relations) == [0]


# ---- validation: each bad input names the file, the line and the field ----


def bad_file(tmp_path: Path, edit) -> Path:
    lines = real_lines(NYT_TEST, 3)
    edit(lines[1])
    return write_lines(tmp_path / "bad.txt", lines)


def error_of(path, **options) -> str:
    with pytest.raises(HiereInputError) as caught:
        read_bags(path, **options)
    return str(caught.value)


def test_missing_file(tmp_path):
    assert error_of(tmp_path / "nope.txt") == f"{tmp_path / 'nope.txt'}: file does not exist"


def test_malformed_json_line(tmp_path):
    lines = [json.dumps(r) for r in real_lines(NYT_TEST, 3)]
    lines[2] = lines[2][:-5]
    path = tmp_path / "bad.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    message = error_of(path)
    assert message.startswith(f"{path}: line 3: malformed JSON")


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda r: r["h"].update(pos=[170, 400]), "line 2, field h.pos: character span [170, 400) is"),
        (lambda r: r["t"].update(pos=[12, 6]), "line 2, field t.pos: character span [12, 6) is outside"),
        (lambda r: r["t"].update(pos=[5, 6]), "line 2, field t.pos: character span [5, 6) holds only white"),
        (lambda r: r["t"].update(pos="6-12"), "line 2, field t.pos: must be a [start, end) pair of integers"),
        (lambda r: r.pop("h"), "line 2, field h: missing or not an object"),
        (lambda r: r["t"].pop("id"), "line 2, field t.id: missing or empty"),
        (lambda r: r.update(text="   "), "line 2, field text: empty sentence"),
        (lambda r: r.pop("text"), "line 2, field text: missing: a line needs text"),
        (lambda r: r.update(relation=3), "line 2, field relation: must be a non-empty string"),
    ],
)
def test_bad_lines(tmp_path, edit, expected):
    path = bad_file(tmp_path, edit)
    assert error_of(path).startswith(f"{path}: {expected}")


def test_unknown_relation_with_a_relation_map(tmp_path):
    path = bad_file(tmp_path, lambda r: r.update(relation="/people/person/pet"))
    relations = read_relation_map(DATA / "nyt10" / "nyt10_rel2id.json")
    assert error_of(path, relations=relations) == (
        f"{path}: line 2, field relation: unknown relation '/people/person/pet' (not in the relation map)"
    )
    assert read_bags(path)[1].relations == ["/people/person/pet"]  # without a map any label is accepted


def test_missing_relation_only_when_labels_are_required(tmp_path):
    path = bad_file(tmp_path, lambda r: r.pop("relation"))
    assert "line 2, field relation: missing" in error_of(path, require_labels=True)
    assert read_bags(path)[1].relations == ["NA"]


def test_token_span_outside_sentence(tmp_path):
    line = real_lines(NYT_TEST, 1)[0]
    record = {"token": line["text"].split(), "h": {**line["h"], "pos": [0, 1]}}
    record["t"] = {**line["t"], "pos": [30, 99]}
    path = write_lines(tmp_path / "tokens.txt", [record])
    assert error_of(path) == (
        f"{path}: line 1, field t.pos: token span [30, 99) is outside the sentence (33 tokens)"
    )


def test_unknown_bag_mode():
    with pytest.raises(ValueError, match="unknown bag mode"):
        read_bags(NYT_TEST, mode="relation")


# ---- property tests: random entity spans over real sentences ----

SENTENCES = [line["text"] for path in (GIDS_DEV, NYT_TEST) for line in real_lines(path, 40)]


@st.composite
def span_in(draw, text: str) -> tuple[int, int]:
    start = draw(st.integers(0, len(text) - 1).filter(lambda i: not text[i].isspace()))
    end = draw(st.integers(start + 1, min(len(text), start + 40)))
    return start, end


@st.composite
def real_line(draw) -> dict:
    text = draw(st.sampled_from(SENTENCES))
    head, tail = draw(span_in(text)), draw(span_in(text))
    ids = draw(st.lists(st.sampled_from(["m.0xq4r", "m.0qrh9", "/m/0h3xcfd"]), min_size=2, max_size=2))
    relation = draw(st.sampled_from(["NA", "/people/person/place_of_birth", "/location/location/contains"]))
    return {
        "text": text,
        "h": {"id": ids[0], "name": text[head[0] : head[1]], "pos": list(head)},
        "t": {"id": ids[1], "name": text[tail[0] : tail[1]], "pos": list(tail)},
        "relation": relation,
    }


def squeeze(text: str) -> str:
    return "".join(text.split())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(real_line(), min_size=1, max_size=6))
def test_round_trip_keeps_spans_and_text(tmp_path, lines):
    path = write_lines(tmp_path / "random.txt", lines)
    bags = read_bags(path)
    pairs = list(dict.fromkeys((line["h"]["id"], line["t"]["id"]) for line in lines))
    assert [bag.pair for bag in bags] == pairs
    by_line = {s.line: s for bag in bags for s in bag.sentences}
    assert sorted(by_line) == list(range(1, len(lines) + 1))
    for number, line in enumerate(lines, start=1):
        sentence = by_line[number]
        assert "".join(sentence.tokens) == "".join(line["text"].split())  # no character lost or added
        for key, span in (("h", sentence.head), ("t", sentence.tail)):
            start, end = line[key]["pos"]
            assert "".join(sentence.tokens[span[0] : span[1]]) == squeeze(line["text"][start:end])
    for bag in bags:
        labels = {s.relation for s in bag.sentences} - {"NA"}
        assert bag.relations == (sorted(labels) or ["NA"])


@given(text=st.sampled_from(SENTENCES), data=st.data())
def test_tokenize_with_spans_covers_whole_tokens(text, data):
    spans = [data.draw(span_in(text)) for _ in range(2)]
    tokens, token_spans = tokenize_with_spans(text, spans)
    assert all(token and not any(c.isspace() for c in token) for token in tokens)
    for (start, end), (first, stop) in zip(spans, token_spans, strict=True):
        assert first < stop
        assert "".join(tokens[first:stop]) == squeeze(text[start:end])
    if not any(a < b < c for a, c in spans for span in spans for b in span):  # no span cuts the other
        for (start, end), (first, stop) in zip(spans, token_spans, strict=True):
            assert " ".join(tokens[first:stop]) == " ".join(text[start:end].split())
