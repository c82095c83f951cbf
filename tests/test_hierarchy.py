"""Relation hierarchies (HNRE chains) on the real NYT10, GIDS and Re-DocRED relation sets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hiere.data.hierarchy import RelationHierarchy, path_ancestors
from hiere.data.relations import NA, RelationMap
from hiere.errors import HiereConfigError, HiereInputError
from hiere.models.base import Resources

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="module")
def nyt10_relations() -> RelationMap:
    return RelationMap.from_rel_info(DATA / "nyt10" / "nyt10_rel2id.json")


@pytest.fixture(scope="module")
def gids_relations() -> RelationMap:
    return RelationMap.from_rel_info(DATA / "gids" / "gids_rel2id.json")


def test_path_ancestors_coarse_to_fine():
    assert path_ancestors("/people/person/place_lived", 3) == ["/people", "/people/person"]
    assert path_ancestors("/people/person/place_lived", 2) == ["/people"]
    assert path_ancestors("/people/person/place_lived", 1) == []


def test_nyt10_three_levels(nyt10_relations):
    hierarchy = RelationHierarchy.from_paths(nyt10_relations.relations, levels=3)
    assert hierarchy.n_levels == 3
    assert hierarchy.chain_names("/people/person/place_lived") == [
        "/people/person/place_lived",
        "/people/person",
        "/people",
    ]
    # siblings share their ancestors' nodes, cousins only the top one
    lived, birth = (
        hierarchy.chain("/people/person/place_lived"),
        hierarchy.chain("/people/person/place_of_birth"),
    )
    death = hierarchy.chain("/people/deceased_person/place_of_death")
    assert lived[0] != birth[0] and lived[1:] == birth[1:]
    assert death[1] != lived[1] and death[2] == lived[2]
    # NA is its own chain, node 0 on every level (NA comes first in the relation map)
    assert hierarchy.chain(NA) == [0, 0, 0]
    assert all(NA not in hierarchy.chain_names(r) for r in nyt10_relations.relations[1:])
    domains = {r.split("/")[1] for r in nyt10_relations.relations[1:]}
    assert domains == {"location", "base", "business", "people", "sports", "time", "broadcast", "film"}
    types = {"/".join(r.split("/")[:3]) for r in nyt10_relations.relations[1:]}
    assert hierarchy.level_sizes() == [56, len(types) + 1, len(domains) + 1]


def test_nyt10_number_of_levels_is_configurable(nyt10_relations):
    two = RelationHierarchy.from_paths(nyt10_relations.relations, levels=2)
    assert two.chain_names("/location/location/contains") == ["/location/location/contains", "/location"]
    one = RelationHierarchy.from_paths(nyt10_relations.relations, levels=1)
    assert one.level_sizes() == [56]
    assert one.chain("/location/location/contains") == [nyt10_relations["/location/location/contains"]]


def test_gids_hierarchy(gids_relations):
    hierarchy = RelationHierarchy.from_paths(gids_relations.relations, levels=3)
    institution = "/people/person/education./education/education/institution"
    degree = "/people/person/education./education/education/degree"
    assert hierarchy.chain_names(institution) == [institution, "/people/person", "/people"]
    assert hierarchy.chain(institution)[1:] == hierarchy.chain(degree)[1:]
    assert hierarchy.chain(institution)[1:] == hierarchy.chain("/people/person/place_of_birth")[1:]
    assert hierarchy.level_sizes() == [5, 3, 2]  # level 1: NA, /people/person, /people/deceased_person


def test_short_paths_are_padded_with_the_relation():
    hierarchy = RelationHierarchy.from_paths([NA, "/people/person/nationality", "/film/featured"], levels=4)
    assert hierarchy.chain_names("/film/featured") == [
        "/film/featured",
        "/film/featured",
        "/film/featured",
        "/film",
    ]
    assert hierarchy.chain_names("/people/person/nationality")[1:] == [
        "/people/person/nationality",
        "/people/person",
        "/people",
    ]


def test_wikidata_ids_need_a_hierarchy_file():
    relations = RelationMap.from_rel_info(DATA / "redocred" / "rel_info.json")
    with pytest.raises(HiereConfigError, match="hierarchy file"):
        RelationHierarchy.from_paths(relations.relations, levels=3)


def test_hierarchy_file_for_relations_without_paths(tmp_path):
    names = json.loads((DATA / "redocred" / "rel_info.json").read_text())
    relations = [NA, "P17", "P131", "P150", "P569", "P570"]
    assert all(r in names for r in relations[1:])
    chains = {
        "P17": ["location"],  # country
        "P131": ["location", "administrative"],  # located in the administrative territorial entity
        "P150": ["location", "administrative"],  # contains administrative territorial entity
        "P569": ["time", "life"],  # date of birth
        "P570": ["time", "life"],  # date of death
    }
    path = tmp_path / "hierarchy.json"
    path.write_text(json.dumps(chains))
    hierarchy = RelationHierarchy.from_file(path, relations)
    assert hierarchy.n_levels == 3
    assert hierarchy.chain_names("P131") == ["P131", "administrative", "location"]
    assert hierarchy.chain_names("P17") == ["P17", "P17", "location"]
    assert hierarchy.chain("P131")[1:] == hierarchy.chain("P150")[1:]
    assert hierarchy.chain("P569")[2] != hierarchy.chain("P17")[2]
    assert hierarchy.chain_names(NA) == [NA, NA, NA]


def test_hierarchy_file_errors(tmp_path):
    missing = tmp_path / "nope.json"
    with pytest.raises(HiereInputError, match="does not exist"):
        RelationHierarchy.from_file(missing, [NA, "P17"])
    broken = tmp_path / "broken.json"
    broken.write_text('{"P17": ["location"')
    with pytest.raises(HiereInputError, match="malformed JSON"):
        RelationHierarchy.from_file(broken, [NA, "P17"])
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps({"P17": ["location"]}))
    with pytest.raises(HiereInputError, match="relation 'P131'.*has no chain"):
        RelationHierarchy.from_file(partial, [NA, "P17", "P131"])
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"P17": "location"}))
    with pytest.raises(HiereInputError, match="field ancestors"):
        RelationHierarchy.from_file(wrong, [NA, "P17"])


def test_round_trip_through_resources(tmp_path, nyt10_relations):
    hierarchy = RelationHierarchy.from_paths(nyt10_relations.relations, levels=3)
    Resources(nyt10_relations, extra={"hierarchy": hierarchy.to_json()}).save(tmp_path)
    restored = RelationHierarchy.from_json(Resources.load(tmp_path).extra["hierarchy"])
    assert restored.nodes == hierarchy.nodes
    assert all(restored.chain(r) == hierarchy.chain(r) for r in nyt10_relations.relations)


def test_levels_must_be_positive(nyt10_relations):
    with pytest.raises(HiereConfigError, match="at least 1 level"):
        RelationHierarchy.from_paths(nyt10_relations.relations, levels=0)
