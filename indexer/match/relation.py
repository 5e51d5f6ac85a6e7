"""A group member in words, relative to its keeper: "resized 50%", "mirrored left-right".

A stored pair's ``description`` (:func:`indexer.match.verdict.describe`) says how ``b``
differs from ``a``. A report names each member once, against the keeper, so when the
keeper is ``b`` the words are turned around: the inverse D4 transform, ``1/scale``,
the exposure step negated, greyscale and marks swapped. A member linked to the keeper
only through other members (the spanning tree of identical files, a copy of a copy) is
described against the member it is linked to, named, which the report lists too
("identical file to IMG_1.jpg"): one line per file stays short. Pure: rows in, text out.
"""
from __future__ import annotations

import re
from collections import deque
from collections.abc import Sequence

from indexer.measure import orient

_TRANSFORM_OF = {words: name for name, words in orient.DESCRIPTION.items() if words}
_RESIZED = re.compile(r"^resized (\d+)%$")
_EV = re.compile(r"^(brighter|darker) by ([0-9.]+) EV$")
_CROPPED = re.compile(r"^cropped to (\d+)% of the area$")
_SHIFTED = re.compile(r"^shifted \(([+-]?\d+), ([+-]?\d+)\) px$")
_MARKED = re.compile(r"^marked over (.*)$")
_SWAPS = {"converted to greyscale": "in colour: {ref} is a greyscale copy",
          "in colour: the first is a greyscale copy": "converted to greyscale"}


def _phrases(text: str) -> list[str]:
    """Split a description at its commas, keeping parenthesised parts whole."""
    out, depth, cur = [], 0, ""
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    return [p for p in (*out, cur.strip()) if p]


def _reverse_phrase(phrase: str, scale: float | None, ref: str) -> str:
    if phrase in _TRANSFORM_OF:
        return orient.DESCRIPTION[orient.inverse(_TRANSFORM_OF[phrase])]
    if phrase in _SWAPS:
        return _SWAPS[phrase].format(ref=ref)
    if m := _RESIZED.match(phrase):
        value = 100 / scale if scale else 10000 / max(1, int(m.group(1)))
        return f"resized {value:.0f}%"
    if m := _EV.match(phrase):
        return f"{'darker' if m.group(1) == 'brighter' else 'brighter'} by {m.group(2)} EV"
    if m := _CROPPED.match(phrase):
        return f"wider: {ref} keeps {m.group(1)}% of it"
    if m := _SHIFTED.match(phrase):
        return f"shifted ({-int(m.group(1)):+d}, {-int(m.group(2)):+d}) px"
    if m := _MARKED.match(phrase):
        return f"without the mark {ref} carries over {m.group(1)}"
    return phrase  # symmetric: "identical file", "re-encoded", related-shot leads


def words_from(pair, start: int, ref: str = "the keeper") -> str:
    """How the other image of ``pair`` differs from image ``start`` (a row with ``a``,
    ``b``, ``description``, ``scale``); ``ref`` names ``start`` in the words."""
    text = pair.description or pair.verdict
    if start == pair.a:
        return text
    return ", ".join(w for w in (_reverse_phrase(p, pair.scale, ref) for p in _phrases(text)) if w) or text


def path_to(keeper: int, member: int, pairs: Sequence) -> list:
    """The pairs of the shortest path from ``keeper`` to ``member`` (breadth first over
    ``pairs``, ties by the order given); empty when they are not connected."""
    links: dict[int, list] = {}
    for p in pairs:
        links.setdefault(p.a, []).append(p)
        links.setdefault(p.b, []).append(p)
    came: dict[int, tuple] = {keeper: (None, None)}
    todo = deque([keeper])
    while todo and member not in came:
        x = todo.popleft()
        for p in links.get(x, ()):
            y = p.b if p.a == x else p.a
            if y not in came:
                came[y] = (x, p)
                todo.append(y)
    if member not in came:
        return []
    hops, node = [], member
    while came[node][0] is not None:
        prev, p = came[node]
        hops.append((prev, p))
        node = prev
    return hops[::-1]


def relation_to_keeper(keeper: int, member: int, pairs: Sequence, names: dict[int, str] | None = None) -> str:
    """``member`` in words relative to ``keeper``, or, when the shortest path of
    ``pairs`` passes through other members, relative to the last of them, named by
    ``names`` (id -> short name)."""
    hops = path_to(keeper, member, pairs)
    if not hops:
        return ""
    start, p = hops[-1]
    if len(hops) == 1:
        return words_from(p, start)
    name = (names or {}).get(start, f"image {start}")
    if p.verdict == "same_file":
        return f"identical file to {name}"
    if p.verdict == "same_pixels":
        return f"same pixels as {name}, different file"
    return f"{words_from(p, start, ref=name)} (relative to {name})"
