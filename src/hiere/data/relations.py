"""Relation maps: relation id <-> index, with ``NA`` (no relation / threshold class) at index 0."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from hiere.errors import HiereInputError

NA = "NA"


class RelationMap:
    """Ordered relation ids; index 0 is always :data:`NA`. ``names`` maps ids to readable names."""

    def __init__(self, relations: Iterable[str], names: dict[str, str] | None = None):
        ordered = [NA] + [r for r in dict.fromkeys(relations) if r != NA]
        self.relations: list[str] = ordered
        self.index: dict[str, int] = {r: i for i, r in enumerate(ordered)}
        self.names: dict[str, str] = dict(names or {})

    def __len__(self) -> int:
        return len(self.relations)

    def __contains__(self, relation: str) -> bool:
        return relation in self.index

    def __getitem__(self, relation: str) -> int:
        return self.index[relation]

    def name(self, relation: str) -> str:
        return self.names.get(relation, relation)

    @classmethod
    def from_rel_info(cls, path: str | Path) -> RelationMap:
        """DocRED ``rel_info.json`` (id -> name), an OpenNRE ``rel2id.json`` (id -> index) or a saved map."""
        from hiere.io import read_json_file

        raw = read_json_file(path, "relation file")
        if isinstance(raw, dict) and "relations" in raw:
            relations, names = raw["relations"], raw.get("names")
            if not isinstance(relations, list) or not all(isinstance(r, str) for r in relations):
                raise HiereInputError(str(path), None, "relations", "must be a list of relation ids (strings)")
            if names is not None and not isinstance(names, dict):
                raise HiereInputError(str(path), None, "names", "must be an object relation id -> name")
            return cls(relations, names)
        if not isinstance(raw, dict) or not raw:
            raise HiereInputError(str(path), None, None, "expected a JSON object mapping relation ids")
        if all(isinstance(v, int) for v in raw.values()):
            return cls(sorted(raw, key=raw.__getitem__))
        return cls(sorted(raw, key=_relation_sort_key), {k: str(v) for k, v in raw.items()})

    @classmethod
    def from_facts(cls, relations: Iterable[str], names: dict[str, str] | None = None) -> RelationMap:
        return cls(sorted(set(relations), key=_relation_sort_key), names)

    def to_json(self) -> dict:
        return {"relations": self.relations, "names": self.names}

    def save(self, path: str | Path) -> None:
        from hiere.io import write_json_atomic

        write_json_atomic(path, self.to_json(), indent=1)

    @classmethod
    def load(cls, path: str | Path) -> RelationMap:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(raw["relations"], raw.get("names"))


def _relation_sort_key(relation: str) -> tuple:
    """Wikidata ids sort numerically (P6 < P17 < P131), anything else alphabetically."""
    if relation[:1] == "P" and relation[1:].isdigit():
        return (0, int(relation[1:]), relation)
    return (1, 0, relation)
