"""A group member in words, relative to its keeper: "resized 50%", "mirrored left-right".

A stored pair's ``description`` (:func:`indexer.match.verdict.describe`) says how ``b``
differs from ``a``. A report names each member once, against the keeper, so when the
keeper is ``b`` the words are turned around: the inverse D4 transform, ``1/scale``,
the exposure step negated, greyscale and marks swapped. A member linked to the keeper
only through other members (the spanning tree of identical files, a copy of a copy) is
described along the path: identical files and equal pixels change nothing, so a byte
copy of the half-size copy is "resized 50%" too; two real changes are listed hop by hop
("rotated 90° clockwise (IMG_1_rot.png); then resized 50%"). Pure: rows in, text out.
"""
from __future__ import annotations

import re
from collections import deque
from collections.abc import Mapping, Sequence

from indexer.measure import orient

_TRANSFORM_OF = {words: name for name, words in orient.DESCRIPTION.items() if words}
_RESIZED = re.compile(r"^resized (\d+)%$")
_EV = re.compile(r"^(brighter|darker) by ([0-9.]+) EV$")
_CROPPED = re.compile(r"^cropped to (\d+)% of the area$")
_SHIFTED = re.compile(r"^shifted \(([+-]?\d+), ([+-]?\d+)\) px$")
_MARKED = re.compile(r"^marked over (.*)$")
_EQUAL = ("same_file", "same_pixels")
_SAME_PIXELS = "same pixels, different file"
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
        return _uncropped(m.group(1), ref)
    if m := _SHIFTED.match(phrase):
        return f"shifted ({-int(m.group(1)):+d}, {-int(m.group(2)):+d}) px"
    if m := _MARKED.match(phrase):
        return f"without the mark {ref} carries over {m.group(1)}"
    return phrase  # symmetric: "identical file", "re-encoded", related-shot leads


def _uncropped(kept: str, ref: str) -> str:
    return f"uncropped: {ref} is cropped to {kept}% of it"


def _overlaps(pair, overlaps: Mapping | None) -> tuple[float | None, float | None]:
    if overlaps is not None and (pair.a, pair.b) in overlaps:
        return overlaps[(pair.a, pair.b)]
    return getattr(pair, "overlap_a", None), getattr(pair, "overlap_b", None)


def words_from(pair, start: int, ref: str = "the keeper", overlaps: Mapping | None = None) -> str:
    """How the other image of ``pair`` differs from image ``start`` (a row with ``a``,
    ``b``, ``description``, ``scale``); ``ref`` names ``start`` in the words.

    "cropped to N% of the area" in a stored description does not say which side is the
    crop; the pair's overlaps do (the crop lies wholly inside the other picture): from
    ``overlaps`` ((a, b) -> (overlap_a, overlap_b)) or the row's own ``overlap_a`` /
    ``overlap_b``; without them the description is read as a->b."""
    text = pair.description or pair.verdict
    forward = start == pair.a
    o_start, o_other = _overlaps(pair, overlaps)
    if not forward:
        o_start, o_other = o_other, o_start
    out = []
    for phrase in _phrases(text):
        if (m := _CROPPED.match(phrase)) and o_start is not None and o_other is not None:
            out.append(phrase if o_other >= o_start else _uncropped(m.group(1), ref))
        else:
            out.append(phrase if forward else _reverse_phrase(phrase, pair.scale, ref))
    return ", ".join(w for w in out if w) or text


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


def composed_geometry(keeper: int, member: int, pairs: Sequence) -> tuple[str, float] | None:
    """The D4 transform and scale that take ``keeper`` to ``member``, composed along the
    shortest path of ``pairs`` (each pair: ``b ~ orient.apply(a, transform)``, ``b`` at
    ``scale`` times ``a``'s size): turns composed in path order, scales multiplied, a hop
    read from its ``b`` side inverted. ``("identity", 1.0)`` for the keeper itself; None
    when not connected."""
    if keeper == member:
        return "identity", 1.0
    hops = path_to(keeper, member, pairs)
    if not hops:
        return None
    turn, scale = "identity", 1.0
    for start, p in hops:
        step_turn, step_scale = p.transform or "identity", p.scale or 1.0
        if start != p.a:
            step_turn, step_scale = orient.inverse(step_turn), 1.0 / step_scale
        turn, scale = orient.compose(turn, step_turn), scale * step_scale
    return turn, scale


def relation_to_keeper(keeper: int, member: int, pairs: Sequence, names: dict[int, str] | None = None,
                       overlaps: Mapping | None = None) -> str:
    """``member`` in words relative to ``keeper``, along the shortest path of ``pairs``.

    Identical files and equal pixels change nothing on the way: a path of such hops only
    is "identical file" (every hop ``same_file``) or "same pixels, different file"; a
    path with one change is that change, turned to read from the keeper's side ("resized
    50%" for a byte copy of the half-size copy); several changes are listed hop by hop,
    each naming the file it leads to (``names``: id -> short name), joined with "; then "."""
    hops = path_to(keeper, member, pairs)
    if not hops:
        return ""
    if len(hops) == 1:
        start, p = hops[0]
        return words_from(p, start, overlaps=overlaps)
    changes = [(start, p) for start, p in hops if p.verdict not in _EQUAL]
    if not changes:
        return "identical file" if all(p.verdict == "same_file" for _, p in hops) else _SAME_PIXELS
    names = names or {}
    if len(changes) > 1 and (composed := _compose(changes, overlaps)) is not None:
        return composed
    words = []
    for i, (start, p) in enumerate(changes):
        ref = "the keeper" if i == 0 else names.get(start, f"image {start}")
        text = words_from(p, start, ref=ref, overlaps=overlaps)
        if i < len(changes) - 1:
            end = p.b if p.a == start else p.a
            text += f" ({names.get(end, f'image {end}')})"
        words.append(text)
    return "; then ".join(words)


def _compose(changes: list, overlaps: Mapping | None) -> str | None:
    """One description for several changes in a row (each ``(start, pair)``, read from
    ``start``): D4 turns composed, scales multiplied, EV steps summed, "re-encoded" and
    "converted to greyscale" kept (and dropped when a later hop is in colour again: a
    path through a greyscale copy), crops' kept areas multiplied; None when a change is
    of another kind (an uncrop, a shift, a mark), which a list of hops says better."""
    turn, scale, ev, recoded, grey, area = "identity", 1.0, 0.0, False, False, 1.0
    for start, p in changes:
        for phrase in _phrases(words_from(p, start, overlaps=overlaps)):
            if phrase in _TRANSFORM_OF:
                turn = orient.compose(turn, _TRANSFORM_OF[phrase])
            elif m := _RESIZED.match(phrase):
                step = p.scale if p.scale else int(m.group(1)) / 100
                scale *= step if start == p.a or not p.scale else 1 / step
            elif m := _EV.match(phrase):
                ev += float(m.group(2)) * (1 if m.group(1) == "brighter" else -1)
            elif phrase in ("re-encoded", "same picture, re-encoded"):
                recoded = True
            elif phrase == "converted to greyscale":
                grey = True
            elif m := _CROPPED.match(phrase):
                area *= int(m.group(1)) / 100  # crops in a row keep the product of their areas
            elif grey and phrase.startswith("in colour"):
                grey = False  # colour on both ends: a hop through a greyscale copy changes nothing
            else:
                return None
    words = [orient.DESCRIPTION[turn], f"resized {100 * scale:.0f}%" if abs(scale - 1) >= 0.03 else "",
             f"cropped to {100 * area:.0f}% of the area" if area < 0.995 else "",
             f"{'brighter' if ev > 0 else 'darker'} by {abs(ev):.1f} EV" if abs(ev) >= 0.05 else "",
             "re-encoded" if recoded else "", "converted to greyscale" if grey else ""]
    return ", ".join(w for w in words if w) or "same picture, re-encoded"
