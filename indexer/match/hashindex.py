"""The candidate index: which hashes of which images a matcher searches, and what it holds.

Every informative image puts its canonical pHash and the pHashes of its crops
(``hashes.CROP_SPECS``) in one :class:`~indexer.match.mih.MultiIndex` as *entries*
(owner id, crop fraction), and its crop-channel probes (canonical and centred crops) in a
second one, so that an image added later meets, with its off-centre crop entries, the
probes of the images indexed before it (as the batch join does from either side).
Alongside: image ids by SHA-256 prefix, indexed images by hash signature (twin
candidates), twin links (twin -> representative) and what is held of each image
(:class:`~indexer.match.tables.HeldTable`).

Arrays only (entry hashes, owners, crop fractions; a few hundred bytes per image): full
records are the matcher's business. :meth:`HashIndex.forget` leaves an image's entries in
the tables with no owner until :meth:`HashIndex.compact` (a forgotten representative's
twin takes its entries over, having the same hashes); :meth:`HashIndex.state` and
:meth:`HashIndex.from_state` are what the saved index file holds.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import numpy as np

from indexer.match.mih import MultiIndex
from indexer.match.records import IndexRows
from indexer.match.tables import HELD_FIELDS, Column, Held, HeldTable, KeyIndex, TwinLinks
from indexer.measure.hashes import CROP_SPECS

CROP_FRACTIONS = tuple(f for f, _, _ in CROP_SPECS)  # per stored crop hash, in order
ENTRY_FRACTIONS = np.array((1.0, *CROP_FRACTIONS))
PROBE_CROPS = 2  # the centred crops (CROP_SPECS[:2]) are probed; every crop is an entry
CROP_CHANNEL = np.array([0, *range(8, 8 + PROBE_CROPS)])  # probe rows searched at crop_radius


def probe_hashes(rows: IndexRows) -> np.ndarray:
    """Probe hashes, int64 (n, 8 + PROBE_CROPS): the 8 D4 pHashes, then the centred crop
    hashes (a missing one, from an older record, repeats the canonical hash: it only
    repeats row 0's hits)."""
    crops = np.where(np.arange(PROBE_CROPS) < rows.n_crops[:, None], rows.crops[:, :PROBE_CROPS],
                     rows.phash[:, None])
    return np.concatenate([rows.d4, crops], axis=1)


def probe_fractions(rows: IndexRows) -> np.ndarray:
    """Crop fraction of each probe, float (n, 8 + PROBE_CROPS) (padding probes: 1.0)."""
    f = np.ones((len(rows), 8 + PROBE_CROPS))
    f[:, 8:] = np.where(np.arange(PROBE_CROPS) < rows.n_crops[:, None], ENTRY_FRACTIONS[1:1 + PROBE_CROPS], 1.0)
    return f


def signatures(rows: IndexRows) -> np.ndarray:
    """A 64-bit digest of each row's 19 hashes (pHash, 8 D4, 10 crops), int64 (n,):
    equal for images the Hamming index cannot tell apart (copies whose pixels measure the
    same). Multiply-xor mixing with the 64-bit golden-ratio constant, wrapping."""
    acc = rows.phash.astype(np.uint64)
    with np.errstate(over="ignore"):
        for col in (*rows.d4.T, *rows.crops.T):
            acc = (acc ^ col.astype(np.uint64)) * np.uint64(0x9E3779B97F4A7C15)
    return acc.view(np.int64)


def _entries(rows: IndexRows, sel: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Index entries of rows ``sel`` (bool (n,)): canonical pHash then stored crop hashes.
    Returns (hashes int64, owners int64, fractions float64, entries per row int64 (n,),
    0 for rows not selected); a row's entries are consecutive, rows in order."""
    entries = np.concatenate([rows.phash[sel, None], rows.crops[sel]], axis=1)
    width = entries.shape[1]
    counts = np.zeros(len(rows), dtype=np.int64)
    counts[sel] = 1 + rows.n_crops[sel]
    if (counts[sel] == width).all():  # the usual case: no padding to drop
        return (entries.ravel(), np.repeat(rows.ids[sel], width), np.tile(ENTRY_FRACTIONS[:width], len(entries)),
                counts)
    real = np.arange(width) < counts[sel][:, None]  # drop padding of old rows
    return (entries[real], np.broadcast_to(rows.ids[sel, None], entries.shape)[real],
            np.broadcast_to(ENTRY_FRACTIONS[:width], entries.shape)[real], counts)


def _crop_channel(rows: IndexRows, sel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Crop-channel probes of rows ``sel`` (3 a row, in order) and their fractions."""
    return (probe_hashes(rows)[sel][:, CROP_CHANNEL].ravel(),
            probe_fractions(rows)[sel][:, CROP_CHANNEL].ravel())


def _held_columns(rows: IndexRows, sig: np.ndarray, indexed: np.ndarray, counts: np.ndarray,
                  first_entry: int, first_probe: int) -> dict[str, np.ndarray]:
    """:class:`~indexer.match.tables.Held` columns of ``rows`` whose ``indexed`` ones had
    their entries appended from ``first_entry`` and probes from ``first_probe``."""
    starts = first_entry + np.cumsum(counts) - counts
    probe_starts = first_probe + len(CROP_CHANNEL) * (np.cumsum(indexed) - indexed)
    return dict(sig=sig, sha=rows.sha, estart=np.where(indexed, starts, -1), ecount=np.where(indexed, counts, 0),
                pstart=np.where(indexed, probe_starts, -1))


def _empty() -> np.ndarray:
    return np.zeros(0, dtype=np.int64)


class Hits(NamedTuple):
    """Hash hits of some probes on held images (entries of forgotten images left out),
    one per element, in the search's order: the probe's number, the image hit, the crop
    fraction of the hash hit, the Hamming distance."""

    probe: np.ndarray
    owner: np.ndarray
    fraction: np.ndarray
    distance: np.ndarray

    def rows(self) -> Iterable[tuple[int, int, float, int]]:
        return zip(*(a.tolist() for a in self))


class _Table:
    """A MultiIndex of hashes with an owner and a crop fraction per hash."""

    def __init__(self, hashes: MultiIndex, owner: Column, fraction: Column):
        if not len(hashes) == len(owner) == len(fraction):
            raise ValueError(f"arrays of unequal lengths {(len(hashes), len(owner), len(fraction))}")
        self.hashes, self.owner, self.fraction = hashes, owner, fraction

    @classmethod
    def of(cls, hashes: np.ndarray, owners: np.ndarray, fractions: np.ndarray, radius: int) -> "_Table":
        return cls(MultiIndex(hashes, radius=radius), Column(np.int64, owners), Column(np.float64, fractions))

    def add(self, hashes: np.ndarray, owners: np.ndarray, fractions: np.ndarray) -> int:
        """Append; returns the number of the first one added."""
        first = int(self.hashes.add(hashes)[0]) if len(hashes) else len(self.hashes)
        self.owner.extend(owners)
        self.fraction.extend(fractions)
        return first

    def hits(self, found: tuple[np.ndarray, np.ndarray, np.ndarray]) -> Hits:
        p, e, d = found
        owner = self.owner.view()[e]
        alive = owner >= 0  # -1: a forgotten image's
        return Hits(p[alive], owner[alive], self.fraction.view()[e][alive], d[alive])

    def without_dead(self) -> tuple["_Table", np.ndarray]:
        """This table without unowned hashes, and each kept hash's new number (by old number)."""
        alive = self.owner.view() >= 0
        return (_Table.of(self.hashes.all_hashes()[alive], self.owner.view()[alive], self.fraction.view()[alive],
                          self.hashes.radius), np.cumsum(alive) - 1)

    def state(self, prefix: str, owner: str, fraction: str) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """(the MultiIndex's arrays, the columns) by name; the columns, changed in place, are copied."""
        out = {f"{prefix}.{k}": v for k, v in self.hashes.state().items()}
        return out, {owner: self.owner.view().copy(), fraction: self.fraction.view().copy()}

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray], prefix: str, owner: str, fraction: str) -> "_Table":
        part = {k[len(prefix) + 1:]: v for k, v in state.items() if k.startswith(prefix + ".")}
        return cls(MultiIndex.from_state(part), Column(np.int64, state[owner]), Column(np.float64, state[fraction]))


class HashIndex:
    """Entries, crop-channel probes and bookkeeping of the images a matcher holds.

    Built in one go (:meth:`build`), loaded (:meth:`from_state`) or empty (:meth:`empty`);
    changed by :meth:`hold`, :meth:`forget`, :meth:`promote_lowest` and :meth:`compact`.
    """

    def __init__(self, entries: _Table, probes: _Table, by_sha: KeyIndex, by_sig: KeyIndex, twin_of: TwinLinks,
                 held: HeldTable, dead_entries: int = 0):
        self._entries, self._probes = entries, probes
        self._by_sha = by_sha  # image ids by SHA-256 prefix (equal files always pair)
        # indexed images by hash signature: a copy with an indexed image's 19 hashes and
        # content (what verification reads) is its twin: linked to it, not indexed, not probed
        self._by_sig = by_sig
        self._twin_of = twin_of  # twin id -> representative id
        self._held = held  # every image held: signature, SHA-256, where its entries are
        self._dead = dead_entries  # entries of forgotten images still in the tables (owner -1)

    @classmethod
    def empty(cls, radius: int) -> "HashIndex":
        """An index holding nothing; ``radius`` picks the tables' layout."""
        return cls(_Table.of(_empty(), _empty(), np.zeros(0), radius),
                   _Table.of(_empty(), _empty(), np.zeros(0), radius), KeyIndex(_empty(), _empty()), KeyIndex(_empty(), _empty()), TwinLinks(), HeldTable.empty())

    @classmethod
    def build(cls, rows: IndexRows, sig: np.ndarray, indexed: np.ndarray, twin_of: dict[int, int],
              radius: int) -> "HashIndex":
        """Hold ``rows`` (signatures ``sig``): index the ``indexed`` ones, link the twins in
        ``twin_of`` (id -> representative)."""
        entries, owners, fractions, counts = _entries(rows, indexed)
        probes, fractions_p = _crop_channel(rows, indexed)
        return cls(_Table.of(entries, owners, fractions, radius),
                   _Table.of(probes, np.repeat(rows.ids[indexed], len(CROP_CHANNEL)), fractions_p, radius),
                   KeyIndex(rows.sha, rows.ids), KeyIndex(sig[indexed], rows.ids[indexed]),
                   TwinLinks(twin_of.items()), HeldTable(rows.ids, **_held_columns(rows, sig, indexed, counts, 0, 0)))

    def state(self) -> dict[str, np.ndarray]:
        """The arrays by name (:meth:`from_state`). Columns changed in place are copied,
        so the result may be written by another thread while the index goes on."""
        out, cols = self._entries.state("index", "entry_owner", "entry_fraction")
        probes, probe_cols = self._probes.state("probes", "probe_owner", "probe_fraction")
        out.update(probes)
        out.update({**cols, **probe_cols})
        out["by_sha.keys"], out["by_sha.ids"] = self._by_sha.arrays()
        out["twins.keys"], out["twins.ids"] = self._by_sig.arrays()
        ids, held = self._held.arrays()
        out["held.ids"] = ids
        out.update({f"held.{f}": held[f] for f in HELD_FIELDS})
        twins = sorted(self._twin_of.items())
        out["twin_of"] = np.array(twins, dtype=np.int64).reshape(len(twins), 2)
        out["dead_entries"] = np.array([self._dead], dtype=np.int64)
        return out

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray]) -> "HashIndex":
        """The index over the arrays of :meth:`state` (used as given, not copied); raises
        ValueError or KeyError when they do not fit together."""
        sizes = {"held": tuple(len(state[f"held.{f}"]) for f in ("ids", *HELD_FIELDS)),
                 "keys": (len(state["by_sha.keys"]), len(state["by_sha.ids"]), len(state["held.ids"]))}
        for name, lengths in sizes.items():
            if len(set(lengths)) != 1:
                raise ValueError(f"{name} arrays of unequal lengths {lengths}")
        return cls(_Table.from_state(state, "index", "entry_owner", "entry_fraction"),
                   _Table.from_state(state, "probes", "probe_owner", "probe_fraction"),
                   KeyIndex(state["by_sha.keys"], state["by_sha.ids"], presorted=True),
                   KeyIndex(state["twins.keys"], state["twins.ids"], presorted=True),
                   TwinLinks((int(t), int(r)) for t, r in state["twin_of"].tolist()),
                   HeldTable(state["held.ids"], **{f: state[f"held.{f}"] for f in HELD_FIELDS}),
                   int(state["dead_entries"][0]))

    # what it holds

    def __len__(self) -> int:
        """Images held."""
        return len(self._held)

    def __contains__(self, image_id: int) -> bool:
        return image_id in self._held

    def held_ids(self) -> np.ndarray:
        """Ids of the images held, ascending."""
        return self._held.arrays()[0]

    @property
    def entry_count(self) -> int:
        """Entries in the tables, of forgotten images too (:attr:`dead_entries`)."""
        return len(self._entries.hashes)

    @property
    def probe_count(self) -> int:
        return len(self._probes.hashes)

    @property
    def dead_entries(self) -> int:
        return self._dead

    def twin_links(self) -> dict[int, int]:
        """twin id -> representative id (a copy)."""
        return dict(self._twin_of)

    def representative(self, image_id: int) -> int:
        """The indexed image that stands for ``image_id`` (its representative when it is a
        twin, else itself)."""
        return self._twin_of.get(image_id, image_id)

    def same_sha(self, sha: int) -> list[int]:
        """Images held with this SHA-256 prefix, ascending."""
        return self._by_sha.get(sha)

    def sha_groups(self) -> Iterable[list[int]]:
        """Every set of two or more images sharing a SHA-256 prefix."""
        return self._by_sha.groups()

    def same_signature(self, sig: int) -> list[int]:
        """Indexed images with this hash signature, ascending (twin candidates)."""
        return self._by_sig.get(sig)

    def stale(self, present: IndexRows) -> np.ndarray:
        """bool (n,): rows of ``present`` not held, or whose hashes, SHA-256 or information
        gate differ from what is held."""
        found, held = self._held.lookup(present.ids)
        twins = np.fromiter(self._twin_of, dtype=np.int64, count=len(self._twin_of))
        gated_in = (held["estart"] >= 0) | np.isin(present.ids, twins)  # indexed, or a twin of one that is
        return (~found | (held["sig"] != signatures(present)) | (held["sha"] != present.sha)
                | (gated_in != present.informative))

    # search

    def query(self, probes: np.ndarray, radius: int) -> Hits:
        """Entries within ``radius`` of a few probes (incremental mode)."""
        return self._entries.hits(self._entries.hashes.query(probes, radius=radius))

    def join(self, probes: np.ndarray, radius: int) -> Hits:
        """Entries within ``radius`` of many probes (batch mode: a bucket-level join)."""
        return self._entries.hits(self._entries.hashes.join(probes, radius=radius))

    def query_probes(self, hashes: np.ndarray, radius: int) -> Hits:
        """Crop-channel probes of indexed images within ``radius`` of ``hashes`` (the
        off-centre crop entries of an image being added)."""
        return self._probes.hits(self._probes.hashes.query(hashes, radius=radius))

    # changes

    def hold(self, rows: IndexRows, sig: np.ndarray, indexed: np.ndarray, twin_of: dict[int, int]) -> None:
        """Hold new ``rows`` (none held now): index the entries and crop-channel probes of
        the ``indexed`` ones, link the twins in ``twin_of`` (id -> representative)."""
        entries, owners, fractions, counts = _entries(rows, indexed)
        first_entry = self._entries.add(entries, owners, fractions)
        probes, fractions_p = _crop_channel(rows, indexed)
        first_probe = self._probes.add(probes, np.repeat(rows.ids[indexed], len(CROP_CHANNEL)), fractions_p)
        cols = _held_columns(rows, sig, indexed, counts, first_entry, first_probe)
        for i, image_id in enumerate(rows.ids.tolist()):
            self._held.set(image_id, Held(*(int(cols[f][i]) for f in HELD_FIELDS)))
            self._by_sha.add(int(rows.sha[i]), image_id)
            if indexed[i]:
                self._by_sig.add(int(sig[i]), image_id)
        self._twin_of.update(twin_of)

    def promote_lowest(self, twin_of: dict[int, int]) -> None:
        """Of images with equal hashes and content the lowest id is the representative
        (as at start-up): a new twin with a lower id than its representative takes over."""
        for twin in sorted(twin_of):
            rep = self._twin_of.get(twin)
            if rep is not None and twin < rep:
                self._hand_over(rep, twin)

    def forget(self, ids: Iterable[int]) -> list[int]:
        """Take images out: their entries stay in the tables with no owner (:meth:`compact`
        drops them) and a representative's lowest-id twin takes them over (it has the same
        hashes). Returns the ids that were held."""
        ids = [i for i in dict.fromkeys(int(i) for i in ids) if i in self._held]
        gone = set(ids)
        for image_id in ids:
            held = self._held.get(image_id)
            if held.estart >= 0:  # a representative: its entries go to a twin, or to nobody
                heirs = [t for t in self._twin_of.twins_of(image_id) if t not in gone]
                if heirs:
                    self._hand_over(image_id, heirs[0])
                    held = self._held.get(image_id)
                else:
                    self._own(held, -1)
                    self._by_sig.remove(held.sig, image_id)
                    self._dead += held.ecount
            self._by_sha.remove(held.sha, image_id)
            self._held.set(image_id, None)
            self._twin_of.pop(image_id, None)
        return ids

    def _own(self, held: Held, owner: int) -> None:
        """Give the entries and crop-channel probes ``held`` describes to ``owner`` (-1: none)."""
        self._entries.owner.view()[held.estart:held.estart + held.ecount] = owner
        self._probes.owner.view()[held.pstart:held.pstart + len(CROP_CHANNEL)] = owner

    def _hand_over(self, rep: int, twin: int) -> None:
        """``twin`` (equal hashes and content) becomes the representative instead of
        ``rep``, which becomes its twin: entries, twin table and links move over."""
        old, new = self._held.get(rep), self._held.get(twin)
        self._own(old, twin)
        self._held.set(twin, new._replace(estart=old.estart, ecount=old.ecount, pstart=old.pstart))
        self._held.set(rep, old._replace(estart=-1, ecount=0, pstart=-1))
        self._by_sig.remove(old.sig, rep)
        self._by_sig.add(old.sig, twin)
        for other in self._twin_of.twins_of(rep):
            self._twin_of[other] = twin
        del self._twin_of[twin]
        self._twin_of[rep] = twin

    def compact(self) -> None:
        """Rebuild the tables without the entries of forgotten images (:attr:`dead_entries`);
        entry numbers change, each image's entries stay consecutive."""
        if not self._dead:
            return
        self._entries, moved = self._entries.without_dead()
        self._probes, probe_moved = self._probes.without_dead()
        ids, cols = self._held.arrays()
        on = cols["estart"] >= 0
        cols["estart"][on], cols["pstart"][on] = moved[cols["estart"][on]], probe_moved[cols["pstart"][on]]
        self._held = HeldTable(ids, **cols)
        self._dead = 0
