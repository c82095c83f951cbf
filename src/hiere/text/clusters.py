"""Group entity mentions into entities by string matching (no coreference model).

The rule, applied in three passes over the mentions of one document:

1. **Exact name.** Mentions whose normalized names are equal form one group. The normalized name is
   the casefolded name without a leading "the", a trailing possessive "'s" and every character that is
   not a letter or digit ("U.S." = "US", "The Beatles" = "Beatles", "1997 - 8" = "1997-8"). A group
   takes the type most of its mentions have (ties: the first mention's type).
2. **Last token of a person name.** A one-word ``PER`` group ("Schneider") joins the ``PER`` group
   of a longer name ending with that word ("Willi Schneider"; suffixes such as "Jr." are ignored).
3. **Acronym.** A group whose name is an acronym (2-8 capital letters, dots allowed, not ``PER``,
   ``TIME`` or ``NUM``) joins the group whose initials spell it, skipping function words
   ("FIBT" = "Fédération Internationale de Bobsleigh et de Tobogganing", "U.S." = "United States").

In passes 2 and 3, one candidate is joined; among several, the one whose first mention comes last
before the short form's first mention ("nearest antecedent"); with several and none before it, none
(ambiguous). Mentions that carry a user-given cluster id are grouped by that id first; two user
clusters are never merged, but a mention without an id can join one by the rule.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

FUNCTION_WORDS = frozenset(
    "of the and for in on at to a an de la le les du des del di da et und der von van für &".split()
)
NAME_SUFFIXES = frozenset({"jr", "sr", "ii", "iii", "iv"})
_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")
_ACRONYM = re.compile(r"^(?:[A-Z]\.?){2,8}$")


@dataclass(frozen=True)
class MentionInfo:
    """What clustering needs to know about one mention (in text order)."""

    name: str
    type: str
    position: int  # token index of the mention's start in the document (orders antecedents)
    cluster: str | None = None  # user-given cluster id


def normalize_name(name: str) -> str:
    """``"The U.S.'s"`` -> ``"us"``: casefold, no leading "the" or trailing "'s", letters and digits only."""
    text = name.strip().casefold()
    text = re.sub(r"^the\s+", "", text)
    text = re.sub(r"\s*['’]s$", "", text)
    return "".join(ch for ch in text if ch.isalnum())


def name_words(name: str) -> list[str]:
    """Words without punctuation: ``'Wilfried " Willi " Schneider'`` -> ``[Wilfried, Willi, Schneider]``."""
    return _WORD.findall(name)


def person_last_word(name: str) -> str | None:
    """Casefolded last word of a multi-word person name, skipping suffixes ("Jr."); ``None`` for one word."""
    words = [w for w in name_words(name) if w.casefold() not in NAME_SUFFIXES]
    return words[-1].casefold() if len(words) >= 2 else None


def is_acronym(name: str) -> bool:
    return bool(_ACRONYM.match(name.replace(" ", "")))


def initials(name: str) -> str:
    """Capitalized initials of a name's content words: "United States of America" -> "USA"."""
    words = [w for w in re.split(r"[\s\-–/]+", name) if w]
    return "".join(w[0] for w in words if w.casefold() not in FUNCTION_WORDS and w[0].isupper())


class _UnionFind:
    """Disjoint sets of mention indices that remember the user cluster id of each set."""

    def __init__(self, mentions: Sequence[MentionInfo]):
        self.parent = list(range(len(mentions)))
        self.cluster: dict[int, str | None] = {i: m.cluster for i, m in enumerate(mentions)}

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def can_merge(self, a: int, b: int) -> bool:
        ca, cb = self.cluster[self.find(a)], self.cluster[self.find(b)]
        return ca is None or cb is None or ca == cb

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        root, child = min(ra, rb), max(ra, rb)
        self.parent[child] = root
        self.cluster[root] = self.cluster[root] if self.cluster[root] is not None else self.cluster[child]

    def groups(self) -> dict[int, list[int]]:
        groups: dict[int, list[int]] = {}
        for index in range(len(self.parent)):
            groups.setdefault(self.find(index), []).append(index)
        return groups


def cluster_mentions(mentions: Sequence[MentionInfo]) -> list[list[int]]:
    """Mention indices grouped into entities (see the module docstring); groups in order of first mention."""
    sets = _UnionFind(mentions)
    first_of_cluster: dict[str, int] = {}
    for index, mention in enumerate(mentions):  # pass 0: user cluster ids
        if mention.cluster is not None:
            sets.union(index, first_of_cluster.setdefault(mention.cluster, index))

    by_key: dict[str, list[int]] = {}
    for index, mention in enumerate(mentions):  # pass 1: exact normalized name
        key = normalize_name(mention.name)
        if not key:
            continue
        for other in by_key.get(key, []):
            if sets.can_merge(other, index):
                sets.union(other, index)
                break
        else:
            by_key.setdefault(key, []).append(index)

    groups = sets.groups()
    group_type = {root: entity_type([mentions[i] for i in members]) for root, members in groups.items()}
    group_name = {root: canonical_name([mentions[i] for i in members]) for root, members in groups.items()}
    group_start = {root: min(mentions[i].position for i in members) for root, members in groups.items()}

    def attach(short: int, candidates: list[int]) -> None:
        candidates = [c for c in candidates if sets.find(c) != sets.find(short) and sets.can_merge(c, short)]
        if len(candidates) > 1:
            before = [c for c in candidates if group_start[c] < group_start[short]]
            candidates = [max(before, key=group_start.__getitem__)] if before else []
        if candidates:
            sets.union(candidates[0], short)

    last_words: dict[str, list[int]] = {}  # pass 2: one-word person names -> longer person names
    for root, name in group_name.items():
        word = person_last_word(name) if group_type[root] == "PER" else None
        if word:
            last_words.setdefault(word, []).append(root)
    for root, name in group_name.items():
        words = name_words(name)
        if group_type[root] == "PER" and len(words) == 1:
            attach(root, last_words.get(words[0].casefold(), []))

    by_initials: dict[str, list[int]] = {}  # pass 3: acronyms -> the name whose initials spell them
    for root, name in group_name.items():
        if not is_acronym(name) and group_type[root] not in ("TIME", "NUM"):
            spelled = initials(name)
            if len(spelled) >= 2:
                by_initials.setdefault(spelled.upper(), []).append(root)
    for root, name in group_name.items():
        if is_acronym(name) and group_type[root] not in ("PER", "TIME", "NUM"):
            attach(root, by_initials.get(name.replace(".", "").replace(" ", "").upper(), []))

    final = sets.groups().values()
    return sorted(final, key=lambda members: min(mentions[i].position for i in members))


def entity_type(mentions: Sequence[MentionInfo]) -> str:
    """The type most of the mentions have (ties: the earliest such mention's type)."""
    counts = Counter(m.type for m in mentions)
    best = max(counts.values())
    return min((m for m in mentions if counts[m.type] == best), key=lambda m: m.position).type


def canonical_name(mentions: Sequence[MentionInfo]) -> str:
    """The longest mention name (ties: the earliest), used as the entity's name in triples."""
    return max(mentions, key=lambda m: (len(m.name), -m.position)).name
