"""Storing pairs: the EXIF-predicted delta EV of their two images, whether the matching
stage hands :func:`db.pairs.save_pairs` the exposures it indexed or the function reads
them from ``images`` (planted: exposure time, ISO and f-number differing per file);
a pair stored again replaces the row and regroups."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
from PIL import ExifTags, Image
from sqlalchemy import text

from db import pairs as dbpairs
from indexer.match.engine import PairEvidence
from indexer.synthetic import scenes as synth
from test_groups_current import index, new_session

EXPOSURES = {"a.jpg": (1 / 100, 100, 8.0), "b.jpg": (1 / 200, 400, 8.0), "c.jpg": (1 / 400, 100, 5.6)}


def exif_bytes(t: float, iso: int, n: float) -> bytes:
    exif = Image.Exif()
    sub = exif.get_ifd(ExifTags.IFD.Exif)
    sub[0x829A], sub[0x8827], sub[0x829D] = t, iso, n  # ExposureTime, ISO, FNumber
    return exif.tobytes()


def ev(name: str) -> float:
    """log2 of the planted exposure (time x ISO / N^2)."""
    t, iso, n = EXPOSURES[name]
    return math.log2(t * iso / n**2)


@pytest.fixture()
def library(tmp_path: Path):
    """Three JPEG copies of one picture (qualities 95, 90, 85: derived pairs) with
    planted exposure times, indexed with matching on."""
    root = tmp_path / "photos"
    root.mkdir()
    img = Image.fromarray(synth.scene(21, 256, 192))
    for (name, planted), quality in zip(EXPOSURES.items(), (95, 90, 85)):
        img.save(root / name, quality=quality, exif=exif_bytes(*planted))
    session = new_session(tmp_path)
    index(session, root)
    yield session
    session.engine.dispose()


def stored_pairs(session) -> dict[tuple[str, str], float | None]:
    with session.engine.connect() as conn:
        rows = conn.execute(text("SELECT a.path, b.path, p.delta_ev_exif FROM pairs p "
                                 "JOIN images a ON a.id = p.a_id JOIN images b ON b.id = p.b_id")).all()
    return {(Path(a).name, Path(b).name): dev for a, b, dev in rows}


def test_the_stage_stores_the_planted_exif_delta_ev(library):
    pairs = stored_pairs(library)
    assert pairs, "the copies were not paired"
    for (a, b), dev in pairs.items():
        assert dev == pytest.approx(ev(b) - ev(a))


def test_known_exposures_are_used_and_the_others_read(library):
    """Given one image's exposure, save_pairs takes it as given and reads the other's."""
    with library.engine.connect() as conn:
        ids = dict(conn.execute(text("SELECT path, id FROM images")).all())
    a, c = (next(i for p, i in ids.items() if p.endswith(name)) for name in ("a.jpg", "c.jpg"))
    pe = PairEvidence(a=min(a, c), b=max(a, c), verdict="derived", hamming=0, transform="identity",
                      shift=(0.0, 0.0), scale=1.0, correlation=0.99, hist_sim=0.99, delta_ev=0.0, time_gap_s=None)
    rule = library.settings.group_rule()
    given = {a: ev("a.jpg") + 3.0, c: ev("c.jpg")}  # a.jpg as given: 3 EV more than stored
    names = {a: "a.jpg", c: "c.jpg"}
    dbpairs.save_pairs(library.engine, [pe], group_rule=rule, exif={a: (8 / 100, 100, 8.0)})
    assert stored_pairs(library)[(names[pe.a], names[pe.b])] == pytest.approx(given[pe.b] - given[pe.a])
    dbpairs.save_pairs(library.engine, [pe], group_rule=rule)  # nothing given: both read
    assert stored_pairs(library)[(names[pe.a], names[pe.b])] == pytest.approx(
        ev(names[pe.b]) - ev(names[pe.a]))


def test_a_pair_stored_again_replaces_it_and_regroups(library):
    """Stored again with a related verdict, a copy pair is replaced (no second row) and
    its images leave the group it made; a pair given twice in one call is stored once."""
    with library.engine.connect() as conn:
        ids = dict(conn.execute(text("SELECT path, id FROM images")).all())
    a, c = sorted(next(i for p, i in ids.items() if p.endswith(name)) for name in ("a.jpg", "c.jpg"))
    rule = library.settings.group_rule()

    def pair(verdict: str) -> PairEvidence:
        return PairEvidence(a=a, b=c, verdict=verdict, hamming=0, transform="identity", shift=(0.0, 0.0), scale=1.0,
                            correlation=0.99, hist_sim=0.99, delta_ev=0.0, time_gap_s=None)

    def rows():
        with library.engine.connect() as conn:
            return (conn.execute(text("SELECT verdict FROM pairs WHERE a_id = :a AND b_id = :b"),
                                 {"a": a, "b": c}).scalars().all(),
                    dict(conn.execute(text("SELECT image_id, group_id FROM image_groups")).all()))

    with library.engine.begin() as conn:  # only the planted pair between a and c, nothing else grouped
        conn.execute(text("DELETE FROM pairs"))
        conn.execute(text("DELETE FROM image_groups"))
    now = dbpairs.save_pairs(library.engine, [pair("derived"), pair("derived")], group_rule=rule)
    verdicts, groups = rows()
    assert verdicts == ["derived"] and set(groups) == {a, c} and now[a] == now[c] == groups[a]
    now = dbpairs.save_pairs(library.engine, [pair("similar")], group_rule=rule)
    verdicts, groups = rows()
    assert verdicts == ["similar"] and groups == {} and now[a] is None and now[c] is None
