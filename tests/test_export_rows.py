"""Export rows written where they are computed: the .npz laid out first (NpzSlots), runs
written at their offsets in any order, CRCs joined; any split over any number of workers
gives the same bytes; unreadable images and interruptions handled."""
from __future__ import annotations

import os
import shutil
import zipfile
import zlib

import numpy as np
import pytest
from PIL import Image

from cli import main
from imagefiles import scene
from indexer.commands import export as ex
from indexer.commands.npzslots import NpzSlots, crc32_combine
from indexer.session import open_session
from click.testing import CliRunner


def test_crc32_combine_equals_the_crc_of_the_concatenation():
    rng = np.random.default_rng(0)
    for la, lb in [(0, 5), (7, 0), (1000, 12345), (3, 1 << 20)]:
        a, b = rng.bytes(la), rng.bytes(lb)
        assert crc32_combine(zlib.crc32(a), zlib.crc32(b), len(b)) == zlib.crc32(a + b)


def test_rows_written_out_of_order_make_a_valid_npz(tmp_path):
    x = np.random.default_rng(1).random((7, 3, 5, 4)).astype(np.float32)
    slots = NpzSlots(tmp_path / "x.npz", x.shape, x.dtype)
    runs = [(4, 7), (0, 2), (2, 4)]
    for lo, hi in runs:  # as workers finish: any order
        fd = os.open(slots.path, os.O_WRONLY)
        os.pwrite(fd, x[lo:hi].tobytes(), slots.row_offset + lo * slots.row_bytes)
        os.close(fd)
    crc = 0
    for lo, hi in sorted(runs):  # joined in row order
        crc = crc32_combine(crc, zlib.crc32(x[lo:hi].tobytes()), (hi - lo) * slots.row_bytes)
    slots.close(crc)
    assert not slots.path.exists()
    with zipfile.ZipFile(tmp_path / "x.npz") as z:
        assert z.testzip() is None and z.namelist() == ["x.npy"]
    with np.load(tmp_path / "x.npz") as d:
        np.testing.assert_array_equal(d["x"], x)


def indexed_photos(root):
    """7 JPEGs of different widths, a grey PNG and a (3, 10, 14) uint16 stack, indexed."""
    folder = root / "set"
    folder.mkdir()
    for i in range(7):
        Image.fromarray(scene(400 + i, 80 + 8 * i, 60)).save(folder / f"p{i}.jpg", quality=90)
    Image.fromarray(scene(420, 50, 70)[..., 0]).save(folder / "grey.png")  # a grey photo: 3 channels made
    stack = np.random.default_rng(3).integers(0, 4000, (3, 10, 14)).astype(np.uint16)
    np.save(folder / "s.npy", stack)
    db = root / "e.db"
    assert CliRunner().invoke(main, ["--db", str(db), "index", str(folder), "-j", "1"]).exit_code == 0
    return db, folder


@pytest.fixture(scope="module")
def photos_db(tmp_path_factory):
    """Shared by the tests that only read it (an index run is ~2-4 s at load 10-18)."""
    return indexed_photos(tmp_path_factory.mktemp("rows"))


@pytest.fixture()
def own_photos_db(tmp_path):
    """For a test that damages and removes its files."""
    return indexed_photos(tmp_path)


@pytest.mark.parametrize("normalize,dtype", [("equalize", "float32"), ("zscore", "float32"), ("minmax", "uint8")])
def test_any_split_over_any_workers_writes_the_same_bytes(photos_db, tmp_path, monkeypatch, normalize, dtype):
    """Inline in one run, inline one row a run, and two workers with runs of 3 (11 rows:
    3, 3, 3, 2, finishing in any order): the same bytes. One pool a normalisation (zscore:
    two, its moments pass too): each pool costs seconds on a loaded machine (the test
    took ~20-30 s a case with two pools each)."""
    monkeypatch.setattr(ex, "POOL_MIN", 1)
    db, _ = photos_db
    engine = open_session(str(db), None, readonly=True).engine
    outs = []
    for k, (workers, chunk) in enumerate([(1, 64), (1, 1), (2, 5)]):
        opts = ex.ExportOptions(size=(32, 32), normalize=normalize, dtype=dtype, workers=workers, chunk=chunk)
        r = ex.export(engine, tmp_path / f"o{k}.npz", opts)
        assert r.rows == 11 and not r.skipped
        with zipfile.ZipFile(tmp_path / f"o{k}.npz") as z:  # the member's bytes (the zip holds a time)
            outs.append(z.read("x.npy"))
        assert (tmp_path / f"o{k}.csv").read_text() == (tmp_path / "o0.csv").read_text()
    assert all(o == outs[0] for o in outs)
    with np.load(tmp_path / "o0.npz") as d:
        x = d["x"]
    assert x.shape == (11, 3, 32, 32) and x.dtype == np.dtype(dtype)
    if normalize == "equalize":
        assert x.max() == pytest.approx(1.0) and (x >= 0).all()


def test_an_unreadable_photo_is_skipped_and_the_rest_written(own_photos_db, tmp_path, monkeypatch):
    monkeypatch.setattr(ex, "POOL_MIN", 1)
    db, folder = own_photos_db
    engine = open_session(str(db), None, readonly=True).engine
    whole = ex.export(engine, tmp_path / "all.npz", ex.ExportOptions(size=(16, 16), normalize="equalize", workers=1))
    (folder / "p3.jpg").write_bytes(b"not a jpeg any more")
    try:
        for workers in (1, 2):
            out = tmp_path / f"w{workers}.npz"
            r = ex.export(engine, out, ex.ExportOptions(size=(16, 16), normalize="equalize", workers=workers,
                                                        chunk=3))
            assert r.rows == whole.rows - 1 and [p for p, _ in r.skipped] == [str(folder / "p3.jpg")]
            with np.load(out) as d, np.load(tmp_path / "all.npz") as full:
                keep = [i for i, line in enumerate((tmp_path / "all.csv").read_text().splitlines()[1:])
                        if "p3.jpg" not in line]
                assert len(keep) == r.rows
                np.testing.assert_array_equal(d["x"], full["x"][keep])
            assert not out.with_name(out.name + ".part").exists()
    finally:
        shutil.rmtree(folder)


def test_an_interrupted_export_leaves_no_file(photos_db, tmp_path, monkeypatch):
    """Ctrl-C (KeyboardInterrupt in this process while the workers run): the partial file
    is removed and nothing is renamed to OUT."""
    monkeypatch.setattr(ex, "POOL_MIN", 1)
    db, _ = photos_db
    engine = open_session(str(db), None, readonly=True).engine
    real = ex.crc32_combine
    calls = []

    def interrupt(*args):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args)
    monkeypatch.setattr(ex, "crc32_combine", interrupt)
    out = tmp_path / "x.npz"
    with pytest.raises(KeyboardInterrupt):
        ex.export(engine, out, ex.ExportOptions(size=(16, 16), normalize="equalize", workers=2, chunk=2))
    assert not out.exists() and not out.with_name("x.npz.part").exists()


def test_rows_go_direct_when_aligned_and_buffered_otherwise(tmp_path, monkeypatch):
    from indexer.commands import exportrows as er

    flags = []
    real_open = os.open
    monkeypatch.setattr(er.os, "open", lambda p, f, *a: flags.append(f) or real_open(p, f, *a))
    path = tmp_path / "f.bin"
    path.write_bytes(bytes(3 * 4096))
    aligned = er.page_aligned((2, 512))  # 4096 bytes, page-aligned
    aligned[:] = np.arange(1024).reshape(2, 512)
    er.pwrite_rows(str(path), aligned, 4096)
    odd = np.arange(10, dtype=np.float32)  # 40 bytes: not whole pages
    er.pwrite_rows(str(path), odd, 8192)
    got = path.read_bytes()
    assert got[4096:8192] == aligned.tobytes() and got[8192:8232] == odd.tobytes()
    if er.DIRECT_FLAG:
        assert flags[0] & er.DIRECT_FLAG and not flags[-1] & er.DIRECT_FLAG


def test_equalize_8bit_is_normalize_equalize_bit_for_bit():
    """Pillow's histogram and lookup table give nz.equalize's values exactly: padded
    frames with and without real zeros, an unpadded frame, a flat frame."""
    from indexer.commands.exportrows import equalize_8bit
    from indexer.stacks import normalize as nz

    rng = np.random.default_rng(6)
    batch = np.clip(rng.normal(120, 40, (5, 3, 24, 20)), 1, 255).astype(np.uint8)
    batch[1, :, 10:12, 8:10] = 0  # real zeros under the picture
    batch[4] = 77
    pad = np.zeros((5, 24, 20), bool)
    pad[[0, 1, 4], :4] = pad[[0, 1, 4], 20:] = True  # frames 2 and 3 unpadded
    pad[3, :, :2] = False
    batch[np.broadcast_to(pad[:, None], batch.shape)] = 0
    want = nz.equalize(batch, exclude=pad[:, None], fill=0.0, excluded_value=0)
    got = equalize_8bit(batch, pad, np.full(batch.shape, np.nan, np.float32))
    np.testing.assert_array_equal(got, want)
    assert (got[1, :, 10:12, 8:10] > 0).all() and (got[0][:, :4] == 0).all()
