"""The saved matching index end to end: ``index`` runs that load it and catch up on what
changed (new, deleted, overwritten, renamed files, a file moved onto another's path)
store the same pairs as runs that rebuild from every row, and it is refused when it
belongs to another database or other settings."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from sqlalchemy import text

import imagefiles as F
from cli import main
from db import indexrows
from db import pairs as dbpairs
from indexer.pipeline import matchindex
from indexer.synthetic import scenes as synth
from indexer.pipeline.matchstage import matcher_params
from indexer.match import snapshot
from indexer.match.engine import Matcher
from indexer.session import open_session


def run(db: Path, *args) -> None:
    result = CliRunner().invoke(main, ["--db", str(db), *map(str, args)], catch_exceptions=False)
    assert result.exit_code == 0, result.output


def stored_pairs(db: Path) -> set[tuple[str, str, str]]:
    session = open_session(str(db))
    with session.engine.connect() as conn:
        rows = conn.execute(text("SELECT a.path, b.path, p.verdict FROM pairs p JOIN images a ON a.id = p.a_id "
                                 "JOIN images b ON b.id = p.b_id")).all()
    session.engine.dispose()
    return {(Path(a).name, Path(b).name, v) for a, b, v in rows}


def proposals_of_every_image(m: Matcher, session) -> dict:
    """What each stored image (as a new image) proposes against ``m``."""
    out = {}
    for rec in dbpairs.load_records(session.engine):
        rec.id += 100_000
        rec.sha256 = "f" * 64  # no equal-SHA proposals: the hash index is what is compared
        rec.thumb = rec.thumb ^ np.uint8(1)  # other content: not a twin, so the index is searched
        out[rec.id] = set(m.propose_and_add(rec))
        m.forget([rec.id])
    return out


def assert_open_equals_fresh_build(db: Path) -> str:
    """The saved index opened and brought up to date proposes what a build from every row
    does; returns how it was opened."""
    session = open_session(str(db))
    params = matcher_params(session)
    keeper = matchindex.IndexKeeper(session.engine, matchindex.index_file(session.url, ""), params, min_images=0)
    started = keeper.open()
    fresh = Matcher.from_rows(indexrows.load_index_rows(session.engine, session.settings.verdict),
                              params, loader=dbpairs.loader(session.engine))
    assert proposals_of_every_image(started.matcher, session) == proposals_of_every_image(fresh, session)
    assert sorted(started.matcher.index.twin_links().items()) == sorted(fresh.index.twin_links().items())
    assert started.matcher.index.held_ids().tolist() == fresh.index.held_ids().tolist()
    session.engine.dispose()
    return started.how


@pytest.fixture
def folders(tmp_path, monkeypatch):
    """A photo folder, a database that keeps its index file and one that never does."""
    photos = tmp_path / "photos"
    a = Image.fromarray(synth.scene(21, 480, 360))
    F.save(photos / "a.jpg", a, "JPEG", quality=92)
    shutil.copy(photos / "a.jpg", photos / "a_copy.jpg")
    F.save(photos / "a_half.jpg", a.resize((240, 180), Image.Resampling.LANCZOS), "JPEG", quality=85)
    F.save(photos / "b.jpg", Image.fromarray(synth.scene(22, 480, 360)), "JPEG", quality=92)
    F.save(photos / "c.jpg", Image.fromarray(synth.scene(23, 480, 360)), "JPEG", quality=92)
    kept, control = tmp_path / "kept" / "photoqa.db", tmp_path / "control" / "photoqa.db"
    for db, value in ((kept, ""), (control, "off")):
        db.parent.mkdir()
        (db.parent / "photoqa.toml").write_text(f'[match]\nindex_file = "{value}"\nindex_file_min = 0\n'
                                                "index_file_resave = 0\n")
    hows = []
    real_open = matchindex.IndexKeeper.open

    def recording_open(self):
        started = real_open(self)
        hows.append(started.how)
        return started

    monkeypatch.setattr(matchindex.IndexKeeper, "open", recording_open)
    return photos, kept, control, hows


def index_both(photos: Path, kept: Path, control: Path) -> None:
    for db in (kept, control):
        run(db, "index", photos, "--workers", "1")
    assert stored_pairs(kept) == stored_pairs(control)


def test_runs_with_the_saved_index_store_what_rebuilding_runs_store(folders):
    photos, kept, control, hows = folders
    index_both(photos, kept, control)
    saved = kept.with_name("photoqa.db.match-index")
    assert saved.exists() and not control.with_name("photoqa.db.match-index").exists()
    assert hows == ["built (no saved index)", "built (no saved index)"]

    a = Image.open(photos / "a.jpg")
    F.save(photos / "a_rot.png", a.rotate(90, expand=True), "PNG")  # new: pairs with a through the loaded index
    (photos / "c.jpg").unlink()  # gone
    F.save(photos / "b.jpg", Image.fromarray(synth.scene(24, 480, 360)), "JPEG", quality=92)  # overwritten
    os.replace(photos / "a_half.jpg", photos / "a_small.jpg")  # renamed
    hows.clear()
    index_both(photos, kept, control)
    assert hows[0] == "loaded" and hows[1].startswith("built")
    pairs = stored_pairs(kept)
    assert any({"a_rot.png"} & {x, y} and {"a.jpg", "a_copy.jpg"} & {x, y} for x, y, _ in pairs)
    assert assert_open_equals_fresh_build(kept) == "loaded"

    os.replace(photos / "a_small.jpg", photos / "b.jpg")  # onto another's path: b's row is deleted
    F.save(photos / "d.jpg", Image.fromarray(synth.scene(25, 480, 360)), "JPEG", quality=92)
    index_both(photos, kept, control)
    assert assert_open_equals_fresh_build(kept) == "loaded"


def test_index_of_another_database_or_other_settings_is_rebuilt(folders, tmp_path):
    photos, kept, control, hows = folders
    run(kept, "index", photos, "--workers", "1")
    saved = kept.with_name("photoqa.db.match-index")
    other = tmp_path / "other" / "photoqa.db"
    other.parent.mkdir()
    (other.parent / "photoqa.toml").write_text("[match]\nindex_file_min = 0\n")
    run(other, "index", photos, "--workers", "1")
    shutil.copy(saved, other.with_name(saved.name))  # same rows, another database's instance id
    hows.clear()

    def new_photo(seed: int) -> None:  # the matching stage opens its index for a new image
        F.save(photos / f"n{seed}.jpg", Image.fromarray(synth.scene(seed, 320, 240)), "JPEG", quality=90)

    new_photo(30)
    run(other, "index", photos, "--workers", "1")
    assert hows == ["built (saved for another database)"]

    (kept.parent / "photoqa.toml").write_text("[match]\nindex_file_min = 0\nradius = 8\ncrop_radius = 12\n")
    run(kept, "index", photos, "--workers", "1")
    assert hows[-1].startswith("built (built with other settings")
    kept.with_name(saved.name).write_bytes(b"not an index")
    new_photo(31)
    run(kept, "index", photos, "--workers", "1")
    assert hows[-1].startswith("built (unreadable")
    assert snapshot.read(kept.with_name(saved.name))[0]["held.ids"].size == 7  # saved again, whole
    new_photo(32)
    run(kept, "index", photos, "--workers", "1")
    assert hows[-1] == "loaded"


def test_small_archives_leave_no_file(tmp_path):
    photos = tmp_path / "photos"
    F.save(photos / "a.jpg", Image.fromarray(synth.scene(21, 320, 240)), "JPEG", quality=92)
    db = tmp_path / "photoqa.db"
    run(db, "index", photos, "--workers", "1")
    assert not db.with_name("photoqa.db.match-index").exists()


def test_a_run_that_changed_little_leaves_the_saved_index_for_the_next_to_replay(folders):
    """With the default ``index_file_resave`` a run adding a few images does not rewrite
    the file; the next start replays those rows and proposes what a fresh build does."""
    photos, kept, control, hows = folders
    (kept.parent / "photoqa.toml").write_text("[match]\nindex_file_min = 0\n")
    index_both(photos, kept, control)  # first start: built and saved
    saved = kept.with_name("photoqa.db.match-index")
    before = saved.read_bytes()
    a = Image.open(photos / "a.jpg")
    F.save(photos / "a_rot.png", a.rotate(90, expand=True), "PNG")
    index_both(photos, kept, control)
    assert saved.read_bytes() == before
    F.save(photos / "a_flip.png", a.transpose(Image.Transpose.FLIP_LEFT_RIGHT), "PNG")
    (photos / "c.jpg").unlink()
    index_both(photos, kept, control)  # replays a_rot's row, and the new ones
    assert saved.read_bytes() == before and hows[-2] == "loaded"
    assert assert_open_equals_fresh_build(kept) == "loaded"


def test_rows_deleted_behind_its_back_are_noticed(folders):
    """Another writer deletes a row and adds one (no changed row says what went): the
    present-row count differs from what the index holds, so the ids are compared."""
    photos, kept, control, hows = folders
    run(kept, "index", photos, "--workers", "1")
    session = open_session(str(kept))
    with session.engine.begin() as conn:
        gone = conn.execute(text("SELECT id FROM images WHERE path LIKE '%a_half.jpg'")).scalar()
        conn.execute(text("DELETE FROM images WHERE id = :i"), {"i": gone})
        cols = [c for c in conn.execute(text("SELECT * FROM images LIMIT 1")).keys() if c not in ("id", "path")]
        conn.execute(text(f"INSERT INTO images (path, {', '.join(cols)}) SELECT path || '.copy', "
                          f"{', '.join(cols)} FROM images WHERE path LIKE '%c.jpg'"))  # revision not bumped
    session.engine.dispose()
    assert assert_open_equals_fresh_build(kept) == "loaded"
    held = snapshot.read(kept.with_name("photoqa.db.match-index"))[0]["held.ids"]
    assert gone in held.tolist()  # the file still has it; the opened index did not (checked above)


def test_a_running_daemon_saves_its_index_when_idle(folders, tmp_path):
    """The matching stage of a long-running ``watch`` saves the index once enough images
    changed and no new one came for ``save_idle`` seconds, not only when it stops."""
    from indexer.pipeline.matchstage import MatchStage
    from indexer.pipeline.run import index_paths

    photos, kept, control, hows = folders
    run(kept, "index", photos, "--workers", "1")
    saved = kept.with_name("photoqa.db.match-index")
    before = saved.read_bytes()
    session = open_session(str(kept))
    stage = MatchStage(session)
    F.save(photos / "e.jpg", Image.fromarray(synth.scene(26, 320, 240)), "JPEG", quality=90)
    index_paths([photos], session.store, session.settings.index, workers=1, stages=[stage])
    stage.flush_due()
    assert stage.unsaved >= 1 and saved.read_bytes() == before  # not idle yet
    stage.last_add -= stage.save_idle
    stage.flush_due()
    stage.keeper.wait()
    assert stage.unsaved == 0 and saved.read_bytes() != before
    held = snapshot.read(saved)[0]["held.ids"].tolist()
    with session.engine.connect() as conn:
        assert held == conn.execute(text("SELECT id FROM images WHERE missing_since IS NULL ORDER BY id")).scalars().all()
    stage.close()
    session.engine.dispose()


def test_an_index_file_that_cannot_be_written_is_a_message_not_a_failure(tmp_path):
    photos = tmp_path / "photos"
    F.save(photos / "a.jpg", Image.fromarray(synth.scene(21, 320, 240)), "JPEG", quality=92)
    db = tmp_path / "photoqa.db"
    (tmp_path / "photoqa.toml").write_text('[match]\nindex_file = "/proc/photoqa/none/x.match-index"\n'
                                           "index_file_min = 0\n")
    result = CliRunner().invoke(main, ["--db", str(db), "index", str(photos), "--workers", "1"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "could not save the matching index to /proc/photoqa/none/x.match-index" in result.stderr
    assert "the next start rebuilds it" in result.stderr
