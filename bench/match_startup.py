"""Start-up of incremental matching on a large archive: from the database to a ready index.

The matching stage of ``index``/``watch`` needs a Hamming index over every present image.
Rebuilt from the database (the baseline here, and what a first start does) it reads the
index columns of every row (ids, SHA-256, 8 D4 pHashes, 10 crop hashes, information gate:
~200 bytes per image) and builds the tables; at the end of a run, and after a first
build, it is saved beside the database (``indexer.pipeline.matchindex``), and the next start maps
that file and reads only the rows changed since (``images.revision``).

1. A ``--sample``-image database with real-size 128x96 thumbnails: index columns +
   ``Matcher.from_rows`` against full records (thumbnails, histograms) as before.
2. A SQLite database of ``--n`` synthetic images (random hashes, informative; 128x96
   thumbnails only where an add below plants a neighbour, 16x16 elsewhere, since
   start-up never reads them), built with the real schema.
3. Baseline: every row read, index built (CPU, wall, peak RSS).
4. ``IndexKeeper.open``: first start (no file: built, then saved by a thread; the save
   timed), next start with nothing changed, and after ``--changes`` new rows and a tenth
   of that marked missing and re-indexed with other hashes; ratios against 3.
5. Incremental ``add`` of new images (each with one planted near neighbour, so every
   add fetches records from SQLite) against the rebuilt and the loaded index: median, p99.

    PYTHONPATH=. python bench/match_startup.py [--n 1000000] [--sample 20000] [--changes 1000]

Target (issue 3): the index ready at start-up in <= 2 s for 1 M images.

Measured (2026-12-01, 2 cores, quiet machine; ``--n 1000000 --sample 20000 --adds 200``):
20 k images 0.51 s against 2.31 s for full records (4.5x); 1 M images rebuilt from
every row: columns read in 4.36 s, index built in 5.96 s, 10.32 s in all, peak RSS
1.6 GB; a first start 12.96 s (the build, then the arrays taken for the save), the file
written in 3.95 s by a thread (1,026 MB); next start 0.06 s (169x), after 1,000 new +
100 missing + 100 re-indexed rows 0.22 s (46x; 1,200 images changed) (target met);
incremental add median 11.7 ms against the rebuilt index and 11.1 ms against the loaded
one (p99 19.1 / 17.2 ms), 14.4 candidates per add (the planted neighbour and chance hits
of uniform random hashes).
"""
from __future__ import annotations

import argparse
import resource
import sqlite3
import tempfile
import time
from pathlib import Path

import numpy as np

from db import migrate
from db import pairs as dbpairs
from db.engine import open_engine as make_engine
from db.store import pack_hist, pack_thumb
from indexer.match.engine import Matcher
from indexer.match.records import MatchRecord
from indexer.match.verdict import MatchThresholds
from indexer.pipeline.matchindex import IndexKeeper

COLUMNS = ("revision", "path", "size", "mtime_ns", "sha256", "format", "width", "height", "display_width", "display_height",
           "bit_depth", "orientation", "decoder", "features_version", "indexed_at", "matched_at", "phash", "dhash",
           "phash_d4", "phash_crops", "hist", "luma_mean", "luma_std", "luma_p1", "luma_p50", "luma_p99",
           "clip_high", "clip_low", "entropy", "sharpness", "colourfulness", "ev", "thumb", "thumb_width",
           "thumb_height")


def build(path: Path, n: int, *, real: set[int] | range, seed: int = 0) -> np.ndarray:
    """A database of ``n`` informative images with random hashes and SHA-256s; rows in
    ``real`` get a 128x96 thumbnail, the others a 16x16 one (the smallest the
    information gate lets match; read only if a random hash lands within a search
    radius). Returns the pHashes, int64 (n,)."""
    engine = make_engine(f"sqlite:///{path}")
    migrate.upgrade(engine)
    engine.dispose()
    rng = np.random.default_rng(seed)
    hashes = rng.integers(-(2**63), 2**63 - 1, size=(n, 19), dtype=np.int64)  # phash, 8 D4, 10 crops
    hashes[:, 1] = hashes[:, 0]  # D4 identity = the canonical hash
    tw, th = 128, 96
    shas = [f"{v:016x}" * 4 for v in rng.integers(0, 2**63, n)]
    yy, xx = np.mgrid[:th, :tw]
    grey = np.clip(128 + 60 * np.sin(xx / 9.0) * np.cos(yy / 7.0) + rng.normal(0, 6, (th, tw)), 0, 255)
    grey = grey.astype(np.uint8)  # smooth with some noise: compresses about like a photo's thumbnail
    pixels, small = pack_thumb(grey), pack_thumb(grey[:16, :16])
    hist = pack_hist(np.stack([np.bincount(grey.ravel(), minlength=256)] * 4))
    conn = sqlite3.connect(path)
    sql = f"INSERT INTO images ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"

    def rows():
        for i in range(n):
            h = hashes[i]
            yield (i + 1, f"/archive/{i:07}.jpg", 1000, 0, shas[i], "JPEG", 4000, 3000, 4000, 3000, 8, 1, "bench", 2,
                   "2026-12-01 00:00:00", "2026-12-01 00:00:00", int(h[0]), 0, h[1:9].astype("<i8").tobytes(),
                   h[9:].astype("<i8").tobytes(), hist, 0.5, 0.2, 0.0, 0.5, 1.0, 0.0, 0.0, 7.0, 1.0, 0.1, 0.0,
                   *((pixels, tw, th) if i in real else (small, 16, 16)))

    with conn:
        conn.executemany(sql, rows())
    conn.close()
    return hashes[:, 0]


def timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def new_path(engine):
    return Matcher.from_rows(dbpairs.load_index_rows(engine, MatchThresholds()), loader=dbpairs.loader(engine))


def old_path(engine):
    return Matcher.from_records(dbpairs.load_records(engine))


def neighbour(phash: int, rng, bits: int = 4) -> MatchRecord:
    """A new image whose pHash is ``bits`` away from ``phash`` (so it has one candidate)."""
    flips = rng.choice(64, bits, replace=False)
    h = int(np.bitwise_xor(np.int64(phash).view(np.uint64), np.uint64(sum(1 << int(b) for b in flips))).view(np.int64))
    d4 = rng.integers(-(2**63), 2**63 - 1, 8, dtype=np.int64)
    d4[0] = h
    return MatchRecord(id=0, sha256=f"{int(rng.integers(2**63)):016x}" * 4, phash=h, phash_d4=d4,
                       phash_crops=rng.integers(-(2**63), 2**63 - 1, 10, dtype=np.int64),
                       thumb=np.zeros((96, 128), np.uint8), hist=np.zeros((4, 256), np.uint32), width=4000,
                       height=3000, entropy=7.0, luma_std=0.2)


def change_rows(path: Path, n: int, *, new: int, gone: int, rehashed: int, seed: int = 5) -> None:
    """What a day of archive life writes: ``new`` rows stored, ``gone`` marked missing,
    ``rehashed`` re-indexed with other hashes, each with its next revision (as
    ``db.store`` does)."""
    rng = np.random.default_rng(seed)
    conn = sqlite3.connect(path)
    with conn:
        rev = conn.execute("SELECT max(revision) FROM images").fetchone()[0]
        cols = ", ".join(c for c in COLUMNS if c not in ("revision", "path"))
        for i in range(new):
            rev += 1
            conn.execute(f"INSERT INTO images (revision, path, {cols}) SELECT ?, ?, {cols} FROM images WHERE id = ?",
                         (rev, f"/archive/new{i:06}.jpg", int(rng.integers(1, n))))
        picked = rng.choice(np.arange(1, n + 1), gone + rehashed, replace=False).tolist()
        for image_id in picked[:gone]:
            rev += 1
            conn.execute("UPDATE images SET missing_since = '2026-12-01', revision = ? WHERE id = ?", (rev, image_id))
        for image_id in picked[gone:]:
            rev += 1
            h = rng.integers(-(2**63), 2**63 - 1, 19, dtype=np.int64)
            conn.execute("UPDATE images SET phash = ?, phash_d4 = ?, phash_crops = ?, revision = ? WHERE id = ?",
                         (int(h[0]), np.concatenate([[h[0]], h[1:8]]).astype("<i8").tobytes(),
                          h[9:].astype("<i8").tobytes(), rev, image_id))
    conn.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--sample", type=int, default=20_000)
    ap.add_argument("--adds", type=int, default=200)
    ap.add_argument("--changes", type=int, default=1000, help="new rows before the last start (and 10%% of it "
                    "missing, 10%% re-indexed)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="photoqa-bench-") as tmp:
        big, small = Path(tmp) / "big.db", Path(tmp) / "small.db"
        _, w, _ = timed(lambda: build(small, args.sample, real=range(args.sample), seed=1))
        engines = {"small": make_engine(f"sqlite:///{small}")}
        _, w_new, c_new = timed(lambda: new_path(engines["small"]))
        _, w_old, c_old = timed(lambda: old_path(engines["small"]))
        print(f"{args.sample:,} images, 128x96 thumbnails: index columns + from_rows {w_new:.3f} s wall "
              f"({c_new:.3f} s CPU); full records + from_records (before) {w_old:.3f} s wall ({c_old:.3f} s CPU); "
              f"ratio {w_old / w_new:.1f}x")
        engines["small"].dispose()

        rng = np.random.default_rng(7)
        targets = rng.choice(args.n, args.adds, replace=False)
        phashes, w_build, _ = timed(lambda: build(big, args.n, real=set(targets.tolist())))
        print(f"built a {args.n:,}-image database in {w_build:.0f} s ({big.stat().st_size / 1e6:.0f} MB)")
        engine = make_engine(f"sqlite:///{big}")
        rss0 = peak_mb()
        rows, w_rows, c_rows = timed(lambda: dbpairs.load_index_rows(engine, MatchThresholds()))
        m, w_idx, c_idx = timed(lambda: Matcher.from_rows(rows, loader=dbpairs.loader(engine)))
        cold = w_rows + w_idx
        print(f"{args.n:,} images, rebuilt from every row (baseline): index columns read in {w_rows:.2f} s wall "
              f"({c_rows:.2f} s CPU), index built in {w_idx:.2f} s ({c_idx:.2f} s CPU); start-up {cold:.2f} s; "
              f"peak RSS {peak_mb():.0f} MB (+{peak_mb() - rss0:.0f} MB); full records would hold "
              f"~{args.n * (128 * 96 + 4 * 256 * 4) / 2**20:,.0f} MiB of thumbnails and histograms alone")
        rows = None  # free the columns before the next measurement
        cold_matcher = m

        saved = Path(tmp) / "big.db.match-index"
        keeper = IndexKeeper(engine, saved, min_images=0)
        (started, w_first, _) = timed(lambda: keeper.open())
        _, w_save, _ = timed(keeper.wait)
        print(f"first start ({started.how}): {w_first:.2f} s, then the index saved in {w_save:.2f} s "
              f"(a thread, while matching goes on): {saved.stat().st_size / 1e6:,.0f} MB")
        started = None
        warm, w_warm, c_warm = timed(lambda: IndexKeeper(engine, saved, min_images=0).open())
        print(f"next start ({warm.how}, nothing changed): {w_warm:.2f} s wall ({c_warm:.2f} s CPU) "
              f"(target <= 2 s: {'met' if w_warm <= 2 else 'MISSED'}); {cold / w_warm:.1f}x faster than rebuilding")
        warm = None
        change_rows(big, args.n, new=args.changes, gone=args.changes // 10, rehashed=args.changes // 10)
        m_keep = IndexKeeper(engine, saved, min_images=0)
        warm, w_warm, c_warm = timed(lambda: m_keep.open())
        print(f"start after {args.changes:,} new, {args.changes // 10:,} missing and {args.changes // 10:,} "
              f"re-indexed rows ({warm.how}, {warm.changed:,} images changed): {w_warm:.2f} s wall "
              f"({c_warm:.2f} s CPU) (target <= 2 s: {'met' if w_warm <= 2 else 'MISSED'}); "
              f"{cold / w_warm:.1f}x faster than rebuilding")
        m = warm.matcher
        m_keep = None

        def adds(matcher, first_id: int) -> tuple[list[float], list[int]]:
            lat, cands = [], []
            for i, target in enumerate(targets):
                rec = neighbour(int(phashes[target]), np.random.default_rng(int(target)))
                rec.id = first_id + i
                jobs, w, _ = timed(lambda: matcher.add(rec))
                lat.append(w * 1000)
                cands.append(len(jobs))
            return lat, cands

        for label, matcher in (("the rebuilt index", cold_matcher), ("the loaded index (pages touched first here)", m)):
            lat, cands = adds(matcher, args.n + args.changes + 10)
            print(f"incremental add against {label}, {args.n:,} images (10 probes, planted candidate and chance "
                  f"hits fetched from SQLite): median {np.median(lat):.2f} ms, p99 {np.percentile(lat, 99):.2f} ms; "
                  f"candidates per add: mean {np.mean(cands):.1f} (random 64-bit hashes within radius "
                  f"{matcher.radius} / crop radius {matcher.crop_radius} of some entry)")
        engine.dispose()


if __name__ == "__main__":
    main()
