"""What the engine knows of an image: the full record (for verification), the few
columns its index needs (for start-up), and a bounded cache between them.

A 1 M-image archive cannot keep every thumbnail in memory (~16 KB each with the
histogram), and need not: the Hamming index needs hashes, and only candidate pairs need
pixels. :class:`IndexRows` holds the index columns as arrays (loaded in one query);
:class:`RecordCache` gives full :class:`MatchRecord` s by id, from memory or from a
loader (the database), keeping the most recently used ``size`` of them.
"""
from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

Loader = Callable[[list[int]], Iterable["MatchRecord"]]


@dataclass
class MatchRecord:
    """Per-image fields the engine needs (as stored by the indexer).

    ``phash``/``dhash``: signed int64; ``phash_d4``: int64 (8,) in ``orient.D4`` order;
    ``phash_crops``: int64 (10,) in ``hashes.CROP_SPECS`` order (a shorter prefix from an
    older features version is accepted); ``thumb``: uint8 (h, w) grey,
    long side 128, display orientation; ``hist``: uint32 (4, 256); ``width``/``height``:
    display size; ``entropy``: bits; ``luma_std``: 0..1; ``camera``: the body
    (:func:`indexer.match.shots.body_key`), None when unknown; ``captured_at``: EXIF
    capture time with sub-seconds, naive local time; ``orientation``: the EXIF tag.
    """

    id: int
    sha256: str
    phash: int
    phash_d4: np.ndarray
    phash_crops: np.ndarray
    thumb: np.ndarray
    hist: np.ndarray
    width: int
    height: int
    entropy: float
    luma_std: float
    dhash: int = 0
    captured_at: datetime | None = None
    format: str | None = None
    camera: tuple[str, str, str] | None = None
    orientation: int | None = None  # EXIF orientation tag (1..8); None when not known
    _content_key: bytes | None = field(default=None, compare=False, repr=False)


@dataclass
class IndexRows:
    """The index columns of ``n`` images, as arrays (row ``i`` is image ``ids[i]``).

    ``ids``: int64 (n,); ``sha``: int64 (n,), the first 8 bytes of the SHA-256 (equal
    files pair; a prefix collision only costs a verification); ``phash``: int64 (n,);
    ``d4``: int64 (n, 8); ``crops``: int64 (n, k), k <= 10 stored crop hashes (rows with
    fewer, from an older features version, are padded with ``phash`` and ``n_crops``
    says how many are real); ``informative``: bool (n,), the information gate.
    """

    ids: np.ndarray
    sha: np.ndarray
    phash: np.ndarray
    d4: np.ndarray
    crops: np.ndarray
    n_crops: np.ndarray
    informative: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, sel: np.ndarray) -> "IndexRows":
        """The rows ``sel`` selects (bool mask or indices), as a new ``IndexRows``."""
        return IndexRows(*(getattr(self, f)[sel] for f in ("ids", "sha", "phash", "d4", "crops", "n_crops",
                                                           "informative")))


def content_key(rec: MatchRecord) -> bytes:
    """Digest of everything :func:`~indexer.match.jobs.run_job` reads from a record (thumbnail, histogram,
    display size, information gate): records with equal keys verify identically."""
    if rec._content_key is None:
        h = hashlib.blake2b(digest_size=16)
        thumb = np.ascontiguousarray(rec.thumb)
        for part in (repr((thumb.shape, rec.width, rec.height, rec.entropy, rec.luma_std)).encode(),
                     thumb.tobytes(), np.ascontiguousarray(rec.hist).tobytes()):
            h.update(part)
        rec._content_key = h.digest()
    return rec._content_key


def sha_prefix(sha256: str) -> int:
    """First 8 bytes of a hex SHA-256 as a signed int64 (any other string: 8 bytes of
    its BLAKE2b digest, so callers may use their own identities)."""
    try:
        value = int(sha256[:16], 16) if len(sha256) >= 16 else None
    except ValueError:
        value = None
    if value is None:
        value = int.from_bytes(hashlib.blake2b(sha256.encode(), digest_size=8).digest(), "big")
    return value - (1 << 64) if value >= 1 << 63 else value


class RecordCache:
    """Full records by id: those put here stay until ``size`` newer ones push them out;
    the others come from ``loader(ids)`` (None: only what was put)."""

    def __init__(self, loader: Loader | None = None, size: int = 1024):  # ~17 KB a record
        self.loader, self.size = loader, size
        self.items: OrderedDict[int, MatchRecord] = OrderedDict()

    def put(self, rec: MatchRecord) -> None:
        self.items[rec.id] = rec
        self.items.move_to_end(rec.id)
        if self.loader is not None:
            while len(self.items) > self.size:
                self.items.popitem(last=False)

    def drop(self, image_id: int) -> None:
        """Forget ``image_id``'s record, if held."""
        self.items.pop(image_id, None)

    def get_many(self, ids: Iterable[int]) -> dict[int, MatchRecord]:
        """The records of ``ids`` (those not in memory in one call of the loader), held
        by the returned dict whatever the cache evicts meanwhile; unknown ids are absent."""
        wanted = list(dict.fromkeys(ids))
        out = {i: self.items[i] for i in wanted if i in self.items}
        missing = [i for i in wanted if i not in out]
        if missing and self.loader is not None:
            out.update((rec.id, rec) for rec in self.loader(missing))
        for image_id in wanted:
            if image_id in out:
                self.put(out[image_id])
        return out

    def __getitem__(self, image_id: int) -> MatchRecord:
        return self.get_many([image_id])[image_id]

    def get(self, image_id: int) -> MatchRecord | None:
        try:
            return self[image_id]
        except KeyError:
            return None

    def __iter__(self) -> Iterator[int]:
        return iter(list(self.items))

    def values(self) -> list[MatchRecord]:
        return list(self.items.values())

    def __contains__(self, image_id: int) -> bool:
        return self.get(image_id) is not None
