"""``image_groups`` is current after every write: equal to a fresh recomputation from the
pairs, ids included (a group's id is its keeper's image id), never naming a missing file.

A Hypothesis state machine adds (new pictures, byte copies, resized copies), rewrites,
renames and deletes files in a temporary folder, indexing after each step, and now and
then re-matches the whole database; plain tests pin the issue's repro, a move keeping
its group id, and the daemon's path.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from PIL import Image
from sqlalchemy import text

from db import pairs as dbpairs
from indexer.match.groups import build_groups
from indexer.pipeline.matchstage import rematch
from indexer.pipeline.run import index_paths
from indexer.pipeline.stages import build_stages, close_stages
from indexer.session import Session, open_session
from indexer.synthetic import scenes as synth
from test_watch_helpers import ThreadedDaemon, no_thread_leak, wait_for  # noqa: F401

SIZE = (192, 144)
CONFIG = "[match]\nverify_workers = 1\npool_after = 1000.0\n"  # verify inline: no pool to start


def picture(seed: int, scale: float = 1.0) -> Image.Image:
    img = Image.fromarray(synth.scene(seed, *SIZE))
    if scale != 1.0:
        img = img.resize((round(SIZE[0] * scale), round(SIZE[1] * scale)), Image.Resampling.LANCZOS)
    return img


def native_and_downscale(seed: int, scale: float = 1.25) -> tuple[Image.Image, Image.Image]:
    """A picture made at ``scale`` times SIZE and its downscale to SIZE: the larger holds
    more detail (``picture(seed, 1.25)`` is an upscale, which the keeper rule does not
    prefer for its pixels)."""
    big = Image.fromarray(synth.scene(seed, round(SIZE[0] * scale), round(SIZE[1] * scale)))
    return big, big.resize(SIZE, Image.Resampling.LANCZOS)


STAMPS = [None, ("Acme", "One", "2020:01:01 10:00:00"), ("Acme", "One", "2020:01:01 11:00:00"),
          ("Other", "Two", "2020:01:01 10:00:00")]  # EXIF of JPEG copies: shots, cameras, keeper times


def exif(stamp) -> bytes:
    info = Image.Exif()
    if stamp is not None:
        info[0x010F], info[0x0110], info[0x0132] = stamp  # Make, Model, DateTime
    return info.tobytes()


def new_session(base: Path) -> Session:
    config = base / "photoqa-test.toml"
    config.write_text(CONFIG)
    return open_session(str(base / "db" / "photoqa.db"), str(config))


def index(session: Session, root: Path):
    stages = build_stages(session)
    try:
        summary = index_paths([root], session.store, session.settings.index, workers=1, stages=stages)
    finally:
        errors = close_stages(stages)
    assert not errors
    return summary


def stored(session: Session) -> set[tuple[int, int, bool]]:
    with session.engine.connect() as conn:
        return {(r[0], r[1], bool(r[2])) for r in
                conn.execute(text("SELECT image_id, group_id, is_keeper FROM image_groups"))}


def recomputed(session: Session) -> set[tuple[int, int, bool]]:
    pairs = dbpairs.all_pairs(session.engine)
    infos = dbpairs.keeper_infos(session.engine, {p.a for p in pairs} | {p.b for p in pairs})
    groups = build_groups(pairs, infos, verdicts=session.settings.match.group_verdicts)
    return {(m, g.id, m == g.keeper) for g in groups for m in g.members}


def missing_in_groups(session: Session) -> list[int]:
    with session.engine.connect() as conn:
        return list(conn.execute(text("SELECT g.image_id FROM image_groups g JOIN images i ON i.id = g.image_id "
                                      "WHERE i.missing_since IS NOT NULL")).scalars())


def check_current(session: Session) -> None:
    assert stored(session) == recomputed(session)
    assert missing_in_groups(session) == []


def image_id(session: Session, path: Path) -> int:
    with session.engine.connect() as conn:
        return conn.execute(text("SELECT id FROM images WHERE path = :p"), {"p": str(path)}).scalar_one()


class GroupsStayCurrent(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.base = Path(tempfile.mkdtemp(prefix="photoqa-groups-"))
        self.root = self.base / "photos"
        self.root.mkdir()
        self.session = new_session(self.base)
        self.count = 0
        self.tick = 0

    def teardown(self) -> None:
        self.session.engine.dispose()
        shutil.rmtree(self.base, ignore_errors=True)

    def files(self) -> list[Path]:
        return sorted(self.root.iterdir())

    def name(self, suffix: str = ".png") -> Path:
        self.count += 1
        return self.root / f"f{self.count:03d}{suffix}"

    def written(self, path: Path) -> None:
        """A distinct mtime for each write (two writes in one clock tick look unchanged)."""
        self.tick += 1
        st_ = path.stat()
        os.utime(path, ns=(st_.st_atime_ns, st_.st_mtime_ns + self.tick * 1_000_000_000))

    def done(self) -> None:
        index(self.session, self.root)

    @rule(seed=st.integers(0, 3))
    def add_new(self, seed: int) -> None:
        path = self.name()
        picture(seed).save(path)
        self.written(path)
        self.done()

    @precondition(lambda self: any(self.root.iterdir()))
    @rule(data=st.data(), how=st.sampled_from(["copy", "smaller", "larger", "jpeg"]), stamp=st.sampled_from(STAMPS))
    def add_copy(self, data, how: str, stamp) -> None:
        src = data.draw(st.sampled_from(self.files()))
        if how == "copy":
            dst = self.name(src.suffix)
            shutil.copy2(src, dst)  # same bytes, same mtime
        else:
            with Image.open(src) as img:
                img = img.convert("RGB")
                scale = {"smaller": 0.75, "larger": 1.25, "jpeg": 1.0}[how]
                img = img.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling.LANCZOS)
                dst = self.name(".jpg" if how == "jpeg" else ".png")
                img.save(dst, quality=90, exif=exif(stamp)) if how == "jpeg" else img.save(dst)
            self.written(dst)
        self.done()

    @precondition(lambda self: any(self.root.iterdir()))
    @rule(data=st.data(), seed=st.integers(0, 3), scale=st.sampled_from([1.0, 0.75]))
    def modify(self, data, seed: int, scale: float) -> None:
        path = data.draw(st.sampled_from(self.files()))
        picture(seed, scale).save(path, format="JPEG" if path.suffix == ".jpg" else "PNG")
        self.written(path)
        self.done()

    @precondition(lambda self: any(self.root.iterdir()))
    @rule(data=st.data())
    def move(self, data) -> None:
        path = data.draw(st.sampled_from(self.files()))
        path.rename(self.name(path.suffix))
        self.done()

    @precondition(lambda self: any(self.root.iterdir()))
    @rule(data=st.data())
    def delete(self, data) -> None:
        data.draw(st.sampled_from(self.files())).unlink()
        self.done()

    @rule()
    def rematch(self) -> None:
        rematch(self.session)
        self.done()

    @invariant()
    def groups_are_current(self) -> None:
        check_current(self.session)


GroupsStayCurrent.TestCase.settings = settings(max_examples=10, stateful_step_count=10, deadline=None)
test_groups_stay_current = GroupsStayCurrent.TestCase


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "photos"
    root.mkdir()
    return root


@pytest.fixture
def session(tmp_path):
    s = new_session(tmp_path)
    yield s
    s.engine.dispose()


def test_deleting_the_keeper_of_a_copy_pair_empties_its_group(session, folder):
    """The repro of issue 12: a.png and its byte copy b.png, a.png deleted."""
    picture(1).save(folder / "a.png")
    shutil.copy2(folder / "a.png", folder / "b.png")
    index(session, folder)
    a, b = image_id(session, folder / "a.png"), image_id(session, folder / "b.png")
    assert stored(session) == {(a, a, True), (b, a, False)}  # same everything: the smaller id keeps
    (folder / "a.png").unlink()
    assert index(session, folder).missing == 1
    assert stored(session) == set()
    check_current(session)


def test_a_copy_rewritten_with_the_same_bytes_refreshes_its_group(session, folder):
    """Found by the state machine: three byte copies, the first rewritten with its own
    bytes (a newer mtime, which the keeper rule reads): the stored keeper follows."""
    for name in ("f0.png", "f1.png", "f2.png"):
        picture(0).save(folder / name)
    index(session, folder)
    check_current(session)
    first = folder / "f0.png"
    first.write_bytes(first.read_bytes())
    os.utime(first, ns=(first.stat().st_atime_ns, first.stat().st_mtime_ns + 10**9))
    index(session, folder)
    check_current(session)


def test_a_group_id_is_its_keepers_id_in_the_report_too(session, folder):
    from indexer.commands.dupes import dupes_report

    large, small = native_and_downscale(2)
    small.save(folder / "small.png")
    large.save(folder / "large.png")
    index(session, folder)
    large = image_id(session, folder / "large.png")
    assert {g for _, g, _ in stored(session)} == {large}  # most pixels: the larger copy keeps
    (group,) = dupes_report(session)["groups"]
    assert group["id"] == large and Path(group["keeper"]).name == "large.png"


def test_moved_keeper_keeps_its_group_id(session, folder):
    large, small = native_and_downscale(3)
    large.save(folder / "large.png")
    small.save(folder / "small.png")
    index(session, folder)
    before = stored(session)
    large = image_id(session, folder / "large.png")
    assert {g for _, g, _ in before} == {large}
    (folder / "sub").mkdir()
    (folder / "large.png").rename(folder / "sub" / "renamed.png")
    assert index(session, folder).moved == 1
    assert image_id(session, folder / "sub" / "renamed.png") == large
    assert stored(session) == before
    check_current(session)


def test_rewritten_file_leaves_its_group_in_the_same_transaction(session, folder):
    """A re-indexed file whose bytes changed loses its pairs and its group when its row is
    stored, before any matching (here: none at all)."""
    picture(4).save(folder / "a.png")
    shutil.copy2(folder / "a.png", folder / "b.png")
    index(session, folder)
    assert len(stored(session)) == 2
    from indexer.outcomes import Task
    from indexer.pipeline.analyse import analyse

    picture(5).save(folder / "b.png")
    st_ = (folder / "b.png").stat()
    outcome = analyse(Task(str(folder / "b.png"), st_.st_size, st_.st_mtime_ns), session.settings.index)
    session.store.save_indexed(outcome)
    assert stored(session) == set()
    check_current(session)


def test_daemon_keeps_groups_current(tmp_path, no_thread_leak):  # noqa: F811
    root = tmp_path / "inbox"
    root.mkdir()
    (tmp_path / "photoqa.toml").write_text(CONFIG)  # beside the database: the daemon's settings
    daemon = ThreadedDaemon(tmp_path / "photoqa.db", [root])
    daemon.stages = build_stages(daemon.session)
    with daemon:
        picture(6).save(root / "a.png")
        daemon.wait_status(root / "a.png", "indexed")
        shutil.copy2(root / "a.png", root / "b.png")
        daemon.wait_status(root / "b.png", "indexed")
        wait_for(lambda: len(stored(daemon.session)) == 2, 15, "the copy's group")
        check_current(daemon.session)
        (root / "a.png").unlink()
        daemon.wait_status(root / "a.png", "missing")
        assert stored(daemon.session) == set()  # in the transaction that marked it missing
        check_current(daemon.session)


def test_groups_of_other_verdicts_or_old_numbering_are_rebuilt_at_open(tmp_path, folder):
    from db.groups import VERDICTS_KEY

    session = new_session(tmp_path)
    picture(7).save(folder / "a.png")
    picture(7, 0.75).save(folder / "small.png")
    index(session, folder)
    a = image_id(session, folder / "a.png")
    with session.engine.begin() as conn:  # as an older version left them: numbered from 1, no record
        conn.execute(text("UPDATE image_groups SET group_id = 1"))
        conn.execute(text("DELETE FROM photoqa_meta WHERE key = :k"), {"k": VERDICTS_KEY})
    session.engine.dispose()
    session = new_session(tmp_path)
    assert {g for _, g, _ in stored(session)} == {a}
    session.engine.dispose()
    (tmp_path / "photoqa-test.toml").write_text(CONFIG + 'group_verdicts = ["same_file"]\n')
    session = open_session(str(tmp_path / "db" / "photoqa.db"), str(tmp_path / "photoqa-test.toml"))
    assert stored(session) == set()  # the resized copy is "derived": no group of same_file pairs
    check_current(session)
    session.engine.dispose()
