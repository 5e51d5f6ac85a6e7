"""Array stacks (.npy/.npz) as input: planted hot and dead sites, per-pixel statistics
against NumPy's two-pass results, identical frames grouped, batch hashes equal the
per-image ones, readers for memory-mapped and compressed members agree."""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from cli import main
from indexer.decode import arrays
from indexer.measure import hashes
from indexer.stacks import framehash, frames, pixelstats, sites

HOT = [(1, 2), (3, 3), (6, 0)]  # (y, x)
DEAD = [(0, 0), (4, 5)]


def run(db: Path, *args: str):
    return CliRunner().invoke(main, ["--db", str(db), *map(str, args)], catch_exceptions=False)


def planted_stack(n: int = 1000, seed: int = 0) -> np.ndarray:
    """(n, 7, 7) uint16 Poisson(20) counts; 3 hot sites (+150..300), 2 dead (0); frame 20
    is a copy of frame 10."""
    rng = np.random.default_rng(seed)
    s = rng.poisson(20, (n, 7, 7)).astype(np.uint16)
    for (y, x), extra in zip(HOT, (200, 300, 150)):
        s[:, y, x] += rng.poisson(extra, n).astype(np.uint16)
    for y, x in DEAD:
        s[:, y, x] = 0
    s[20] = s[10]
    return s


def test_pixel_statistics_equal_two_pass_numpy_whatever_the_batches():
    s = planted_stack()[:, None]
    for size in (1, 7, 333, 1000):
        st = pixelstats.stack_statistics((s[i:i + size] for i in range(0, len(s), size)), (1, 7, 7))
        ref_mean = s.astype(np.float64).mean(axis=0)
        ref_var = s.astype(np.float64).var(axis=0, ddof=1)
        np.testing.assert_allclose(st.mean, ref_mean, rtol=1e-9, atol=0)
        np.testing.assert_allclose(st.variance(), ref_var, rtol=1e-9, atol=1e-12)
        assert st.hist.sum(axis=-1).min() == 1000
        assert st.hist[0, 0, 0, 0] == 1000  # a dead site: every frame counts 0


def test_planted_hot_and_dead_sites_found_and_nothing_else():
    s = planted_stack()[:, None]
    st = pixelstats.PixelStats.of_batch(s)
    found = sites.classify(st.mean, st.variance())
    assert {(f.y, f.x) for f in found if f.kind == "hot"} == set(HOT)
    assert {(f.y, f.x) for f in found if f.kind == "dead"} == set(DEAD)


def test_clean_stack_has_no_sites():
    s = np.random.default_rng(3).poisson(20, (1000, 1, 7, 7)).astype(np.uint16)
    st = pixelstats.PixelStats.of_batch(s)
    assert sites.classify(st.mean, st.variance()) == []


def test_batch_hashes_equal_the_per_image_functions():
    rng = np.random.default_rng(1)
    y, x = np.mgrid[0:7, 0:7]
    grey = np.stack([np.clip(127 + 100 * np.sin(x / (2 + i) + i) * np.cos(y / 3.0) + rng.normal(0, 10, (7, 7)),
                             0, 255) for i in range(12)]).astype(np.uint8)
    d4, crops, dh = framehash.phash_d4(grey), framehash.crop_phashes(grey), framehash.dhash(grey)
    for i, g in enumerate(grey):
        assert d4[i].tolist() == hashes.phash_d4(g).tolist()
        assert crops[i].tolist() == hashes.crop_phashes(g).tolist()
        assert dh[i] == hashes.dhash(g)


def test_npz_members_stored_and_compressed_read_the_same(tmp_path):
    s = planted_stack(50)
    vision = np.random.default_rng(2).random((6, 3, 9, 11)).astype(np.float32)
    np.savez(tmp_path / "plain.npz", counts=s, rgb=vision)
    np.savez_compressed(tmp_path / "packed.npz", counts=s, rgb=vision)
    for name in ("plain.npz", "packed.npz"):
        stacks = {st.key: st for st in arrays.open_stacks(tmp_path / name)}
        assert stacks["counts"].shape == arrays.StackShape(50, 1, 7, 7)
        got = np.concatenate([b for _, b in stacks["counts"].batches(16)])
        np.testing.assert_array_equal(got[:, 0], s)
        np.testing.assert_array_equal(stacks["rgb"].frames(2, 4), vision[2:4])
    assert stacks["counts"].frames(10, 11).shape == (1, 1, 7, 7)


def test_a_2d_array_is_one_frame_and_other_ranks_are_refused(tmp_path):
    np.save(tmp_path / "one.npy", np.zeros((5, 6), np.uint8))
    (one,) = arrays.open_stacks(tmp_path / "one.npy")
    assert one.shape == arrays.StackShape(1, 1, 5, 6)
    np.save(tmp_path / "bad.npy", np.zeros((2, 2, 2, 2, 2), np.uint8))
    with pytest.raises(arrays.DecodeError):
        arrays.open_stacks(tmp_path / "bad.npy")


def test_frame_measurements_match_numpy():
    s = planted_stack(40)[:, None]
    fb = frames.measure_batch(s)
    np.testing.assert_allclose(fb.luma_mean, (s / 65535.0).reshape(40, -1).mean(axis=1), rtol=1e-5)
    assert fb.sha256[10] == fb.sha256[20] and len(set(fb.sha256)) == 39
    assert fb.hist[:, 3].sum(axis=1).tolist() == [49] * 40


def test_index_stack_rows_groups_and_sensor_defects(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    np.save(folder / "det.npy", planted_stack())
    db = tmp_path / "t.db"
    result = run(db, "index", folder, "--sensor", "det7", "-j", "1", "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["frames"] == 1000
    con = sqlite3.connect(db)
    rows = con.execute("SELECT path, container, array_key, frame FROM images WHERE frame IN (10, 20) "
                       "ORDER BY frame").fetchall()
    stack = str(folder / "det.npy")
    assert rows == [(stack + "#10", stack, "", 10), (stack + "#20", stack, "", 20)]
    groups = con.execute("SELECT g.group_id, COUNT(*) FROM image_groups g GROUP BY g.group_id").fetchall()
    assert len(groups) == 1 and groups[0][1] == 2
    members = {r[0] for r in con.execute("SELECT i.frame FROM images i JOIN image_groups g ON g.image_id = i.id")}
    assert members == {10, 20}
    defects = {(r[1], r[0], r[2]) for r in con.execute("SELECT x, y, kind FROM sensor_defects")}
    assert defects == {(y, x, "hot") for y, x in HOT} | {(y, x, "dead") for y, x in DEAD}
    # unchanged on a second run: no rows rewritten; with --sensor its statistics read again
    ids = con.execute("SELECT MIN(id), MAX(id) FROM images").fetchone()
    for extra in ((), ("--sensor", "det7")):
        again = run(db, "index", folder, "-j", "1", "--format", "json", *extra)
        assert json.loads(again.stdout)["frames"] == 0
        assert con.execute("SELECT COUNT(*), MIN(id), MAX(id) FROM images").fetchone() == (1000, *ids)
    assert len(con.execute("SELECT * FROM sensor_defects").fetchall()) == 5
    assert con.execute("SELECT frames FROM sensors").fetchone()[0] == 1000


def test_stack_stats_command_prints_and_writes_npz(tmp_path):
    np.save(tmp_path / "det.npy", planted_stack())
    out = tmp_path / "det.stats.npz"
    result = run(tmp_path / "unused.db", "stack-stats", tmp_path / "det.npy", "--out", out, "--format", "json")
    assert result.exit_code == 0, result.output
    (report,) = json.loads(result.stdout)
    assert {(s["y"], s["x"]) for s in report["sites"]} == set(HOT) | set(DEAD)
    with np.load(out) as data:
        np.testing.assert_allclose(data["mean"][0], planted_stack().astype(np.float64).mean(axis=0), rtol=1e-9)
        assert data["hist"].shape == (1, 7, 7, 256)
    bad = tmp_path / "x.npy"
    bad.write_bytes(b"not an array")
    assert run(tmp_path / "unused.db", "stack-stats", bad).exit_code == 2


def test_frames_get_qa_flags_unless_raw_sensor_data(tmp_path):
    rng = np.random.default_rng(4)
    vision = rng.integers(60, 200, (4, 1, 48, 48)).astype(np.uint8)
    vision[1] = 3  # a black frame: dark, low information
    np.save(tmp_path / "vision.npy", vision)
    db = tmp_path / "v.db"
    assert run(db, "index", tmp_path / "vision.npy", "-j", "1").exit_code == 0
    con = sqlite3.connect(db)
    flagged = {(r[0], r[1]) for r in con.execute(
        "SELECT i.frame, f.name FROM image_flags f JOIN images i ON i.id = f.image_id")}
    assert (1, "dark") in flagged
    assert not any(frame != 1 and name == "dark" for frame, name in flagged)
    raw = tmp_path / "raw"
    raw.mkdir()
    np.save(raw / "det.npy", planted_stack(50))
    db2 = tmp_path / "r.db"
    assert run(db2, "index", raw, "--sensor", "d", "-j", "1").exit_code == 0
    assert sqlite3.connect(db2).execute("SELECT COUNT(*) FROM image_flags").fetchone()[0] == 0


def test_damaged_stacks_are_failure_rows_with_no_frames_left(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    np.savez_compressed(folder / "cut.npz", x=planted_stack(10000))  # damage at ~5000: after a batch of 4096
    data = (folder / "cut.npz").read_bytes()
    (folder / "cut.npz").write_bytes(data[: len(data) // 2])  # the zip directory is gone
    damaged = bytearray(data)
    damaged[len(data) // 2] ^= 0xFF  # deflate data damaged half-way: found after batches were stored
    (folder / "crc.npz").write_bytes(bytes(damaged))
    np.save(folder / "ok.npy", planted_stack(30))
    db = tmp_path / "t.db"
    result = run(db, "index", folder, "-j", "1", "--format", "json")
    assert result.exit_code == 0
    con = sqlite3.connect(db)
    assert sorted(con.execute("SELECT path, kind FROM failures")) == [
        (str(folder / "crc.npz"), "corrupt"), (str(folder / "cut.npz"), "corrupt")]
    assert con.execute("SELECT DISTINCT container FROM images").fetchall() == [(str(folder / "ok.npy"),)]


def test_dupes_apply_says_why_it_leaves_stack_frames_alone(tmp_path):
    """Two identical frames of one stack are grouped; ``--apply trash`` plans nothing for
    the copy frame but says why (it used to say "gone since indexing"), and the stack file
    is untouched."""
    import json

    from click.testing import CliRunner

    from cli import main
    from indexer.decode.arrays import stack_of

    stack = np.random.default_rng(3).integers(0, 4000, size=(4, 16, 16)).astype(np.uint16)
    stack[2] = stack[1]
    path = tmp_path / "s.npy"
    np.save(path, stack)
    before = path.read_bytes()
    db = tmp_path / "photoqa.db"
    runner = CliRunner()
    assert runner.invoke(main, ["--db", str(db), "index", str(path)]).exit_code == 0
    out = runner.invoke(main, ["--db", str(db), "dupes", "--apply", "trash", "--yes", "--format", "json"])
    actions = json.loads(out.stdout)["actions"]
    assert actions and all("a frame of the array stack s.npy" in a["state"] for a in actions), actions
    assert path.read_bytes() == before
    assert stack_of(f"{path}#2") == str(path) and stack_of(f"{path}#k:2") == str(path)
    assert stack_of(str(tmp_path / "a#1.jpg")) is None and stack_of(str(path)) is None


def sensor_totals(db: Path) -> tuple[int, pixelstats.PixelStats]:
    """(sensors.frames, the detector's merged statistics file) of the one stack sensor."""
    con = sqlite3.connect(db)
    frames_, name = con.execute("SELECT frames, accumulator FROM sensors").fetchone()
    with np.load(db.with_name(db.name + ".sensors") / name) as f:
        return frames_, pixelstats.PixelStats.from_arrays(f)


def test_sensor_statistics_merge_across_runs_and_never_count_a_stack_twice(tmp_path):
    """Two halves of one Poisson stack indexed in two runs under one --sensor give the
    whole stack's per-site mean and variance (NumPy two-pass, 1e-9 relative); indexing
    either again adds nothing; a changed file replaces its own share only."""
    whole = planted_stack(1000, seed=3)
    for name, part in (("a", whole[:400]), ("b", whole[400:])):
        (tmp_path / name).mkdir()
        np.save(tmp_path / name / "det.npy", part)
    db = tmp_path / "t.db"
    x = whole.astype(np.float64)[:, None]

    def check(expected: np.ndarray) -> None:
        frames_, stats = sensor_totals(db)
        assert frames_ == len(expected)
        np.testing.assert_allclose(stats.mean, expected.mean(axis=0), rtol=1e-9, atol=0)
        np.testing.assert_allclose(stats.variance(), expected.var(axis=0, ddof=1), rtol=1e-9, atol=0)
        assert int(stats.hist.sum()) == expected.size

    assert run(db, "index", tmp_path / "a", "--sensor", "det7", "-j", "1").exit_code == 0
    check(x[:400])
    assert run(db, "index", tmp_path / "b", "--sensor", "det7", "-j", "1").exit_code == 0
    check(x)
    for again in ("a", "b"):  # unchanged: rows and statistics stand, nothing counted twice
        assert run(db, "index", tmp_path / again, "--sensor", "det7", "-j", "1").exit_code == 0
        check(x)
    defects = {(r[1], r[0], r[2]) for r in sqlite3.connect(db).execute("SELECT x, y, kind FROM sensor_defects")}
    assert defects == {(y, x_, "hot") for y, x_ in HOT} | {(y, x_, "dead") for y, x_ in DEAD}
    # file b rewritten with 100 other frames: its share is replaced, a's kept
    other = planted_stack(100, seed=9)
    np.save(tmp_path / "b" / "det.npy", other)
    assert run(db, "index", tmp_path / "b", "--sensor", "det7", "-j", "1").exit_code == 0
    check(np.concatenate([x[:400], other.astype(np.float64)[:, None]]))
