"""Relation hierarchies for HNRE (Han et al., EMNLP 2018, Sec. 3.2: the chain ``(r^0, ..., r^{k-1})``).

Levels follow the paper's numbering: level 0 holds the relations themselves (``r^0``, the finest),
level ``k-1`` the coarsest ancestors. Two sources:

* relation names that are paths: ``/people/person/place_lived`` with ``levels=3`` gives the chain
  ``r^0 = /people/person/place_lived``, ``r^1 = /people/person``, ``r^2 = /people``;
* a JSON file ``{relation: [ancestor, ...]}`` listing each relation's ancestors from the coarsest to
  the finest (as a path reads), e.g. ``{"P131": ["location", "administrative"]}``.

``NA`` is its own chain (an ``NA`` node on every level). A chain shorter than the hierarchy is padded
on the fine side with the relation itself, so every relation has one node per level.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from hiere.data.relations import NA
from hiere.errors import HiereConfigError, HiereInputError


def path_ancestors(relation: str, levels: int) -> list[str]:
    """``/people/person/place_lived``, 3 levels -> ``["/people", "/people/person"]`` (coarse to fine)."""
    parts = [p for p in relation.strip("/").split("/") if p]
    return ["/" + "/".join(parts[:depth]) for depth in range(1, min(levels, len(parts)))]


class RelationHierarchy:
    """Node names per level and, per relation, the node index on each level (``chain``)."""

    def __init__(self, relations: Iterable[str], ancestors: dict[str, list[str]], levels: int):
        if levels < 1:
            raise HiereConfigError(f"a relation hierarchy needs at least 1 level, got {levels}")
        self.n_levels = levels
        self.relations: list[str] = list(dict.fromkeys(relations))
        self.nodes: list[list[str]] = [[] for _ in range(levels)]  # level -> node names
        node_index: list[dict[str, int]] = [{} for _ in range(levels)]
        self.chains: dict[str, list[int]] = {}
        for relation in self.relations:
            names = self._chain_names(relation, ancestors.get(relation, []))
            chain = []
            for level, name in enumerate(names):
                if name not in node_index[level]:
                    node_index[level][name] = len(self.nodes[level])
                    self.nodes[level].append(name)
                chain.append(node_index[level][name])
            self.chains[relation] = chain

    def _chain_names(self, relation: str, ancestors: list[str]) -> list[str]:
        """Node names of ``relation`` on levels 0..k-1 (fine to coarse)."""
        if relation == NA:
            return [NA] * self.n_levels
        coarse_to_fine = [a for a in ancestors if a != relation][: self.n_levels - 1]
        padding = [relation] * (self.n_levels - 1 - len(coarse_to_fine))
        return [relation, *padding, *reversed(coarse_to_fine)]

    @classmethod
    def from_paths(cls, relations: Iterable[str], levels: int = 3) -> RelationHierarchy:
        """Hierarchy from relation names that are paths (Freebase ``/domain/type/property``)."""
        relations = list(relations)
        if levels > 1 and not any("/" in r.strip("/") for r in relations if r != NA):
            raise HiereConfigError(
                "relation names are not paths (no '/'); give a hierarchy file (model.hierarchy: FILE.json)"
            )
        return cls(relations, {r: path_ancestors(r, levels) for r in relations if r != NA}, levels)

    @classmethod
    def from_file(cls, path: str | Path, relations: Iterable[str]) -> RelationHierarchy:
        """Hierarchy from a JSON file ``{relation: [coarsest ancestor, ..., finest ancestor]}``."""
        path = Path(path)
        if not path.exists():
            raise HiereInputError(str(path), None, None, "hierarchy file does not exist")
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise HiereInputError(
                str(path), None, None, f"malformed JSON ({error.msg}, line {error.lineno})"
            ) from None
        if not isinstance(raw, dict):
            raise HiereInputError(
                str(path), None, None, "expected a JSON object: relation -> list of ancestors"
            )
        for relation, chain in raw.items():
            if not isinstance(chain, list) or not all(isinstance(a, str) for a in chain):
                raise HiereInputError(
                    str(path), f"relation {relation!r}", "ancestors", "must be a list of strings"
                )
        relations = list(relations)
        missing = [r for r in relations if r != NA and r not in raw]
        if missing:
            raise HiereInputError(
                str(path),
                f"relation {missing[0]!r}",
                None,
                f"has no chain ({len(missing)} relations missing)",
            )
        depth = max((len([a for a in raw[r] if a != r]) for r in relations if r != NA), default=0)
        return cls(relations, {r: raw[r] for r in relations if r != NA}, depth + 1)

    def chain(self, relation: str) -> list[int]:
        """Node index of ``relation`` on each level 0..k-1 (level 0 = the relation itself)."""
        return self.chains[relation]

    def chain_names(self, relation: str) -> list[str]:
        return [self.nodes[level][index] for level, index in enumerate(self.chains[relation])]

    def level_sizes(self) -> list[int]:
        return [len(names) for names in self.nodes]

    def to_json(self) -> dict[str, Any]:
        return {
            "levels": self.n_levels,
            "relations": self.relations,
            "nodes": self.nodes,
            "chains": self.chains,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> RelationHierarchy:
        """Restore a hierarchy saved with :meth:`to_json` (``Resources.extra["hierarchy"]``)."""
        hierarchy = cls.__new__(cls)
        hierarchy.n_levels = int(raw["levels"])
        hierarchy.relations = list(raw["relations"])
        hierarchy.nodes = [list(names) for names in raw["nodes"]]
        hierarchy.chains = {r: [int(i) for i in chain] for r, chain in raw["chains"].items()}
        return hierarchy
