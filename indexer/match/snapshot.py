"""A built :class:`~indexer.match.engine.Matcher` saved to one file and loaded back.

Building the index of a million images costs seconds (the counting sorts of the
multi-index tables, signatures, sorted id tables) after seconds of reading every row;
loading the arrays back costs a read of the file. The file is an uncompressed NumPy
``.npz`` archive (one member per array, ``info`` a JSON member), replaced atomically,
so a reader sees the old file or the new one. It is a cache: a file that is missing,
unreadable, of another format or built with other index settings is ignored (the
caller rebuilds from the database), never trusted.

Only the incremental-mode state is kept: the entries and their owners, the crop-probe
index, the SHA-256 and twin tables, and what each image's entries are
(:class:`~indexer.match.tables.HeldTable`); not the records cache, not the batch rows.
"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from indexer import atomicfile
from indexer.match.engine import ENTRY_FRACTIONS, Matcher
from indexer.match.mih import MultiIndex
from indexer.match.tables import HELD_FIELDS, Column, HeldTable, KeyIndex
from indexer.match.verdict import MatchThresholds

FORMAT = 1


def config_key(radius: int, th: MatchThresholds) -> dict:
    """What the saved arrays depend on besides the images (the index radius picks the
    table layout, the information gate which images are indexed): a file built with
    another value of any of these is not used."""
    return {"format": FORMAT, "radius": radius, "entry_fractions": ENTRY_FRACTIONS.round(6).tolist(),
            "gate": [th.min_entropy, th.min_luma_std, th.min_side]}


def state_of(m: Matcher) -> dict[str, np.ndarray]:
    """The matcher's arrays by name. Columns it changes in place are copied, so the
    result may be written by another thread while the matcher goes on."""
    out = {f"index.{k}": v for k, v in m.index.state().items()}
    out.update({f"probes.{k}": v for k, v in m.crop_probes.state().items()})
    out.update({"entry_owner": m.entry_owner.view().copy(), "entry_fraction": m.entry_fraction.view().copy(),
                "probe_owner": m.probe_owner.view().copy(), "probe_fraction": m.probe_fraction.view().copy()})
    out["by_sha.keys"], out["by_sha.ids"] = m.by_sha.arrays()
    out["twins.keys"], out["twins.ids"] = m.twins.arrays()
    ids, cols = m.held.arrays()
    out["held.ids"] = ids
    out.update({f"held.{f}": cols[f] for f in HELD_FIELDS})
    twins = sorted(m.twin_of.items())
    out["twin_of"] = np.array(twins, dtype=np.int64).reshape(len(twins), 2)
    out["dead_entries"] = np.array([m.dead_entries], dtype=np.int64)
    return out


def from_state(state: dict[str, np.ndarray], **options) -> Matcher:
    """A matcher over the arrays of :func:`state_of` (``options`` as for ``Matcher``)."""
    m = Matcher(**options)

    def part(prefix: str) -> dict[str, np.ndarray]:
        return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}

    m.index, m.crop_probes = MultiIndex.from_state(part("index.")), MultiIndex.from_state(part("probes."))
    m.entry_owner, m.entry_fraction = Column(np.int64, state["entry_owner"]), Column(np.float64, state["entry_fraction"])
    m.probe_owner, m.probe_fraction = Column(np.int64, state["probe_owner"]), Column(np.float64, state["probe_fraction"])
    m.by_sha = KeyIndex(state["by_sha.keys"], state["by_sha.ids"])
    m.twins = KeyIndex(state["twins.keys"], state["twins.ids"])
    m.held = HeldTable(state["held.ids"], **{f: state[f"held.{f}"] for f in HELD_FIELDS})
    m.twin_of = {int(t): int(r) for t, r in state["twin_of"].tolist()}
    m.dead_entries = int(state["dead_entries"][0])
    return m


def save(path: str | Path, state: dict[str, np.ndarray], info: dict) -> Path:
    """Write ``state`` (from :func:`state_of`) and ``info`` (JSON-able) to ``path``, atomically."""
    blob = np.frombuffer(json.dumps(info, sort_keys=True).encode(), dtype=np.uint8)
    return atomicfile.replace_with(path, lambda handle: np.savez(handle, info=blob, **state))


class Unusable(Exception):
    """The file cannot serve this matcher (missing, damaged, other format or settings)."""


def load(path: str | Path, expect: dict, **options) -> tuple[Matcher, dict]:
    """The matcher saved at ``path`` and its ``info``; raises :class:`Unusable` unless
    the file is whole and its ``info["config"]`` equals ``expect``."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            info = json.loads(archive["info"].tobytes())
            if info.get("config") != expect:
                raise Unusable(f"built with other settings: {info.get('config')} (now {expect})")
            state = {k: archive[k] for k in archive.files if k != "info"}
    except FileNotFoundError as exc:
        raise Unusable("no saved index") from exc
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise Unusable(f"unreadable ({exc})") from exc
    try:
        return from_state(state, **options), info
    except (KeyError, ValueError, IndexError) as exc:
        raise Unusable(f"incomplete ({exc})") from exc
