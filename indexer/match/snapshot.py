"""A built :class:`~indexer.match.engine.Matcher` saved to one file and loaded back.

Building the index of a million images costs seconds (the counting sorts of the
multi-index tables, signatures, sorted id tables) after seconds of reading every row;
loading the arrays back costs a read of the file (layout: :func:`save`). The file is
replaced atomically, so a reader sees the old file or the new one. It is a cache: a file that is missing,
unreadable, of another format or built with other index settings is ignored (the
caller rebuilds from the database), never trusted.

Only the candidate index is kept (:meth:`~indexer.match.hashindex.HashIndex.state`: the
entries and their owners, the crop-probe index, the SHA-256 and twin tables, and what
each image's entries are); not the records cache, not the batch rows.
"""
from __future__ import annotations

import json
import mmap
import os
from pathlib import Path

import numpy as np

from indexer import atomicfile
from indexer.match.engine import Matcher
from indexer.match.hashindex import CROP_CHANNEL, ENTRY_FRACTIONS, PROBE_CROPS
from indexer.match.params import MatchParams
from indexer.match.records import Loader

FORMAT = 1


def config_key(params: MatchParams) -> dict:
    """What the saved arrays depend on besides the images (the index radius picks the
    table layout, the information gate which images are indexed): a file built with
    another value of any of these is not used."""
    th = params.thresholds
    return {"format": FORMAT, "radius": params.radius, "entry_fractions": ENTRY_FRACTIONS.round(6).tolist(),
            "crop_channel": CROP_CHANNEL.tolist(), "probe_fractions": ENTRY_FRACTIONS[1:1 + PROBE_CROPS].tolist(),
            "gate": [th.min_entropy, th.min_luma_std, th.min_side]}


def state_of(m: Matcher) -> dict[str, np.ndarray]:
    """The matcher's saved arrays by name (its candidate index's), safe to write from
    another thread while the matcher goes on."""
    return m.index.state()


MAGIC = b"PHOTOQA-MATCH-INDEX\n"
_ALIGN = 64


def save(path: str | Path, state: dict[str, np.ndarray], info: dict) -> Path:
    """Write ``state`` (from :func:`state_of`) and ``info`` (JSON-able) to ``path``, atomically.

    Layout: :data:`MAGIC`, an 8-byte little-endian header length, a JSON header (``info``
    and each array's name, dtype, shape and offset), then the arrays' bytes, each at a
    64-byte boundary. (NumPy's ``.npz`` reader copies members in small chunks: 1.2 s per
    240 MB measured, against a plain read into the array.)
    """
    arrays, offset, layout = [], 0, []
    for name, value in state.items():
        arr = np.ascontiguousarray(value)
        layout.append([name, arr.dtype.str, list(arr.shape), offset])
        arrays.append(arr)
        offset += -(-arr.nbytes // _ALIGN) * _ALIGN
    header = json.dumps({"info": info, "arrays": layout}, sort_keys=True).encode()
    start = -(-(len(MAGIC) + 8 + len(header)) // _ALIGN) * _ALIGN

    def write(handle) -> None:
        handle.write(MAGIC + len(header).to_bytes(8, "little") + header)
        handle.write(b"\0" * (start - len(MAGIC) - 8 - len(header)))
        for arr in arrays:
            handle.write(memoryview(arr.reshape(-1).view(np.uint8)))
            handle.write(b"\0" * (-arr.nbytes % _ALIGN))

    return atomicfile.replace_with(path, write)


class Unusable(Exception):
    """The file cannot serve this matcher (missing, damaged, other format or settings)."""


def read(path: str | Path) -> tuple[dict[str, np.ndarray], dict]:
    """The arrays and ``info`` of a file :func:`save` wrote; raises :class:`Unusable`.

    The arrays are a private copy-on-write mapping of the file (``mmap.ACCESS_COPY``):
    opening costs no read, pages come from the page cache (or disk) when first touched,
    and changes made in memory never reach the file. The file is only ever replaced by
    a rename, so the mapped one stays whole while it is in use.
    """
    try:
        with open(path, "rb") as handle:
            if handle.read(len(MAGIC)) != MAGIC:
                raise Unusable("unreadable (not a photoqa matching index)")
            size = int.from_bytes(handle.read(8), "little")
            header = json.loads(handle.read(size))
            start = -(-(len(MAGIC) + 8 + size) // _ALIGN) * _ALIGN
            total = os.fstat(handle.fileno()).st_size
            mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_COPY)
        state = {}
        for name, dtype, shape, offset in header["arrays"]:
            dtype, count = np.dtype(dtype), int(np.prod(shape, dtype=np.int64))
            if start + offset + count * dtype.itemsize > total:
                raise Unusable(f"unreadable (truncated at {name})")
            state[name] = (np.frombuffer(mapped, dtype=dtype, count=count, offset=start + offset).reshape(shape)
                           if count else np.zeros(shape, dtype=dtype))
    except FileNotFoundError as exc:
        raise Unusable("no saved index") from exc
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise Unusable(f"unreadable ({exc})") from exc
    return state, header["info"]


def load(path: str | Path, expect: dict, params: MatchParams = MatchParams(), *, loader: Loader | None = None,
         pixels_equal=None) -> tuple[Matcher, dict]:
    """The matcher saved at ``path`` (with ``params``, ``loader`` and ``pixels_equal`` as
    for :class:`~indexer.match.engine.Matcher`) and its ``info``; raises :class:`Unusable`
    unless the file is whole and its ``info["config"]`` equals ``expect``."""
    state, info = read(path)
    if info.get("config") != expect:
        raise Unusable(f"built with other settings: {info.get('config')} (now {expect})")
    try:
        return Matcher.from_state(state, params, loader=loader, pixels_equal=pixels_equal), info
    except (KeyError, ValueError, IndexError) as exc:
        raise Unusable(f"incomplete ({exc})") from exc
