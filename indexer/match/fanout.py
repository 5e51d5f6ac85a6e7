"""Which candidate pairs of a new image to verify: one member per existing group.

A new copy of a picture that already has k copies indexed is a hash candidate of all
k of them; verifying every candidate costs k alignments, so a group of n copies added
one by one costs n(n-1)/2 and the archive's matching grows with the square of its
largest group (1,644 pairs stored for 437 images of 60 groups before this). Groups are
connected components of the copy pairs, so one verified copy edge into a group joins
the new image to all of it: :func:`plan` sends, per group its candidates hit, the
group's keeper when it is a candidate (the original, so the pair stored is the one a
report shows: a copy of the keeper read through a greyscale member came out as
"converted to greyscale; then ... in colour"), else the best-hashing member (lowest
Hamming distance, then lowest id), and keeps up to ``tries - 1`` others in reserve, verified one at a time only
while the members tried gave no group verdict (a crop of a crop may align with one
member and not another). Candidates in no group are verified up to ``loose`` of them,
the closest first (lowest Hamming distance, then most hash hits, then lowest id). With
``tries = 2`` a group of n copies costs at most 2(n-1) verifications; a look-alike that
is no copy costs at most ``tries`` per group it hits.

Why a cap on candidates in no group: the crop channel searches 11 entries with 3 probes
out to 14 bits, where unrelated pictures meet by chance at a fixed rate per indexed
image (two uniform 64-bit hashes within 12 bits: 2.3e-7). On bench/soak.py's archive the
candidates kept per new image rose from 0.12 (first 1,000 images) to 2.0 (8,000), 96%
of them crop-channel hits at 10-14 bits and all rejected by pixels: verification per
image grew with N (CPU per image 25 -> 50 ms, img/s 38 -> 10 by 8,000 images). Photos of
one scene (bursts) also meet each other, and not by chance. Ranked by distance, a copy's
original comes first (0-10 bits for every transform of bench/neardup_eval.py but
extreme crops) and the cap binds only on the chance tail. What is given up: a new image
whose true partners in no group number more than ``loose``, or an extreme crop (12-14
bits) outranked by ``loose`` closer look-alikes, is not paired with the farther ones
(``photoqa dupes --rematch`` verifies every candidate pair). Real look-alikes pay for it
too: ../shared/data's scenes, photos and exif-samples (195 images) give the same 45
grouped images and the same 53 group pairs with ``loose = 4`` as uncapped, but 44
"similar" pairs instead of 86 (one test scene shot by several cameras, 8-12 bits apart:
each new shot is paired with its 4 closest look-alikes, not with all).

What is given up: pairs between the new image and the group's other members are not
stored. They are implied (a copy of a copy), and a report names each member against
its keeper along the path of stored pairs (:mod:`indexer.match.relation`); a pair a
user asks about directly can still be verified (``photoqa dupes --rematch`` verifies
every candidate pair). The same holds for a group's related shots: a loose image related
to a member by a clear ``exposure_variant`` pair is not verified against each copy that
joins the group (:func:`implied`; ``dupes --related`` lists the member's group as its
copies), and an image found to be such an exposure of one member is not tried against
another (:meth:`Plan.concluded` with ``related``). Pure: pair keys and ids in, a plan out.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

PairKey = tuple[int, int]


@dataclass
class Plan:
    """The pairs to verify now, and per group the members held in reserve.

    ``now``: pair keys (a < b) to verify at once; ``reserve``: group id -> further
    pair keys, best first; ``group``: pair key -> the group of its partner (grouped
    partners only); ``settled``: groups already joined by a verified copy edge."""

    now: list[PairKey]
    dropped: int = 0  # candidates in no group left unverified by the ``loose`` cap
    reserve: dict[int, list[PairKey]] = field(default_factory=dict)
    group: dict[PairKey, int] = field(default_factory=dict)
    settled: set[int] = field(default_factory=set)

    def concluded(self, key: PairKey, joined: bool, *, related: bool = False) -> PairKey | None:
        """Record the verdict of ``key`` (``joined``: a group verdict; ``related``: a
        related verdict that another member would give too, :func:`implies`); returns the
        next pair of that group to verify, or None (no group, group joined or related,
        reserve empty)."""
        g = self.group.get(key)
        if g is None or g in self.settled:
            return None
        if joined:
            self.settled.add(g)
            self.reserve.pop(g, None)
            return None
        if related:  # the reserve is for a copy one member fails to align, not for another exposure
            self.reserve.pop(g, None)
            return None
        left = self.reserve.get(g)
        return left.pop(0) if left else None


def plan(new_id: int, best_hamming: Mapping[PairKey, int], group_of: Mapping[int, int], *,
         tries: int = 2, stands_for: Mapping[int, int] | None = None, loose: int = 0,
         hits: Mapping[PairKey, int] | None = None) -> Plan:
    """Plan the verification of ``new_id``'s candidate pairs.

    ``best_hamming``: pair key (a < b, one side ``new_id``) -> the lowest Hamming
    distance among its hash hits; ``group_of``: image id -> group id (the keeper's id)
    for partners that belong to a group of two or more; ``tries`` >= 1: members of one
    group verified at most; ``stands_for``: group id -> the member that stands for its
    keeper among the candidates (a byte or content twin of the keeper is indexed in its
    place), preferred as the keeper is; ``loose``: candidates in no group verified at
    most (0: all), ranked by ``best_hamming`` then ``hits`` (pair key -> hash hits that
    proposed it; missing: 1)."""
    stands_for, hits = stands_for or {}, hits or {}
    if tries < 1:
        raise ValueError("tries must be at least 1")
    now: list[PairKey] = []
    by_group: dict[int, list[tuple[int, int, int, PairKey]]] = {}
    for key, hamming in best_hamming.items():
        partner = key[0] if key[1] == new_id else key[1]
        g = group_of.get(partner)
        if g is None:
            now.append(key)
        else:
            by_group.setdefault(g, []).append((partner not in (g, stands_for.get(g)), hamming, partner, key))
    dropped = 0
    if loose and len(now) > loose:
        now.sort(key=lambda k: (best_hamming[k], -hits.get(k, 1), k[0] if k[1] == new_id else k[1]))
        now, dropped = now[:loose], len(now) - loose
    out = Plan(now, dropped)
    for g, members in sorted(by_group.items()):
        ranked = [key for *_, key in sorted(members)]
        out.now.append(ranked[0])
        if len(ranked) > 1 and tries > 1:
            out.reserve[g] = ranked[1:tries]
        for key in ranked[:tries]:
            out.group[key] = g
    return out


def unheld(new_id: int, best_hamming: Mapping[PairKey, int], group_of: Mapping[int, int], held: set[PairKey], *,
           loose: int = 0, hits: Mapping[PairKey, int] | None = None) -> dict[PairKey, int]:
    """The part of ``best_hamming`` to :func:`plan` now while the ``held`` pairs wait for
    their partners' own pairs to be stored (a partner may be about to join a group).

    Pairs with grouped partners (``group_of``) all go; of those in no group, only the ones
    ranked within ``loose`` (0: all) among them and the held ones, by :func:`plan`'s
    order: a held partner may still end in no group, and the cap must not be spent on
    candidates it would outrank (the pairs planned now and later are then among those
    one plan made after every partner was stored would choose)."""
    hits = hits or {}
    free = [key for key in best_hamming if key not in held]
    lone = [key for key in free if partner(key, new_id) not in group_of]
    if loose:
        ranked = sorted([*lone, *(key for key in held if key in best_hamming)],
                        key=lambda k: (best_hamming[k], -hits.get(k, 1), partner(k, new_id)))
        allowed = set(ranked[:loose])
        lone = [key for key in lone if key in allowed]
    keep = set(lone)
    return {key: best_hamming[key] for key in free if key in keep or partner(key, new_id) in group_of}


# A loose image L (in no group) related to a member M of a group G by a stored
# ``exposure_variant`` pair is a candidate of every later copy of M: on
# bench/end_to_end.py's dense set its 24 exposure copies cost 335 of 754 verification jobs,
# each proving again what (L, M) and (M, copy) imply. A copy joining G is therefore not
# verified against L (:func:`implied`). Only pairs far from the verdict's thresholds imply
# it: copies of one picture measure |delta EV| within 0.02 of each other against a third
# image (verdict.MatchThresholds' table) but rank correlations down to 0.931 against
# ``exposure_corr_rank`` 0.93 on that set, so a pair nearer than these margins might
# measure another verdict (``derived`` would join L to G) against a different copy.
IMPLIED_VERDICTS = ("exposure_variant",)
EV_MARGIN = 0.1  # EV beyond ``exposure_ev``
CORR_MARGIN = 0.02  # rank correlation beyond ``exposure_corr_rank``


def implies(delta_ev: float | None, corr_rank: float | None, *, exposure_ev: float,
            exposure_corr_rank: float) -> bool:
    """Whether a stored ``exposure_variant`` pair (L, M) of ``delta_ev`` (EV) and rank
    correlation ``corr_rank`` is clear enough of the thresholds (``exposure_ev``,
    ``exposure_corr_rank`` of :class:`~indexer.match.verdict.MatchThresholds`) that a copy
    of M would measure the same verdict against L."""
    return (delta_ev is not None and corr_rank is not None and abs(delta_ev) >= exposure_ev + EV_MARGIN
            and corr_rank >= exposure_corr_rank + CORR_MARGIN)


def implied(new_id: int, keys: Iterable[PairKey], links: Mapping[int, set[int]],
            groups: set[int]) -> dict[PairKey, set[int]]:
    """The pairs of ``keys`` not to verify while ``new_id``'s verdicts against ``groups``
    (the groups it is being verified against) are unknown: pair key -> the groups of
    ``groups`` its partner L is related to (``links``: loose image -> groups of the
    members its stored implying pairs reach, :func:`implies`). If ``new_id`` joins one of
    them, its pair with L is implied (a copy of a member of the group L is related to)
    and not verified; if it joins none, the pair is verified as any other."""
    out = {}
    for key in keys:
        gs = set(links.get(partner(key, new_id), ())) & groups
        if gs:
            out[key] = gs
    return out


def partner(key: PairKey, new_id: int) -> int:
    """The image of pair ``key`` that is not ``new_id``."""
    return key[0] if key[1] == new_id else key[1]
