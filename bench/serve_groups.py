"""Time of a ``photoqa serve`` groups page on a large archive.

Builds a SQLite database of N duplicate groups (a keeper and one byte-identical copy
each, with its same_file pair and image_groups rows, written straight into the tables:
no decoding), then times through Starlette's TestClient:

* baseline: ``dupes_report`` once (what ``photoqa dupes`` computes), in this run;
* the first groups page (the group order from one aggregate over ``image_groups``, then
  the report of that page's groups only);
* the next pages (the order cached; the report of the page's groups);
* the same after a change to the database (a decision: the order is recomputed).

Usage: python bench/serve_groups.py [GROUPS=100000]

2026-12-07, 100,000 groups, load 6-9 on 2 shared cores: baseline 18.8 s; first page
350 ms; next pages median 28 ms, max 30 ms; after a change 288 ms (target: 300 ms a
page). Before the page made its own groups' report: 25-43 s, 100 ms, 29-36 s.
"""
from __future__ import annotations

import sys
import tempfile
import time
import zlib
from datetime import datetime
from pathlib import Path

import numpy as np
from sqlalchemy import insert

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from db.models import Image, ImageGroup, Pair  # noqa: E402
from indexer.session import open_session  # noqa: E402


def build(db: Path, groups: int) -> None:
    session = open_session(str(db))
    now = datetime(2026, 12, 1)
    hist = zlib.compress(np.zeros((4, 256), "<u4").tobytes())
    thumb = zlib.compress(np.zeros((24, 32), np.uint8).tobytes())
    blank = dict(size=1_000_000, mtime_ns=0, format="JPEG", width=4000, height=3000, display_width=4000,
                 display_height=3000, bit_depth=8, orientation=1, decoder="bench", features_version=1,
                 indexed_at=now, matched_at=now, phash=0, dhash=0, phash_d4=b"", phash_crops=b"", hist=hist,
                 luma_mean=0.4, luma_std=0.2, luma_p1=0.0, luma_p50=0.4, luma_p99=1.0, clip_high=0.0, clip_low=0.0,
                 entropy=7.0, sharpness=100.0, colourfulness=30.0, ev=0.0, thumb=thumb, thumb_width=32,
                 thumb_height=24)
    with session.engine.begin() as conn:
        for start in range(0, groups, 5000):
            rows, pairs, members = [], [], []
            for g in range(start, min(groups, start + 5000)):
                a, b = 2 * g + 1, 2 * g + 2
                sha = f"{g:064x}"
                rows += [dict(blank, id=a, path=f"/photos/{g // 1000:03d}/IMG_{g:06d}.jpg", sha256=sha, revision=a),
                         dict(blank, id=b, path=f"/backup/{g // 1000:03d}/IMG_{g:06d}.jpg", sha256=sha, revision=b,
                              size=1_000_000 + g)]
                pairs.append(dict(a_id=a, b_id=b, verdict="same_file", hamming=0, transform="identity",
                                  description="identical file", match_version=1, found_at=now))
                members += [dict(image_id=a, group_id=a, is_keeper=True), dict(image_id=b, group_id=a, is_keeper=False)]
            conn.execute(insert(Image), rows)
            conn.execute(insert(Pair), pairs)
            conn.execute(insert(ImageGroup), members)
    session.engine.dispose()


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main(groups: int) -> None:
    from starlette.testclient import TestClient

    from indexer.commands.dupes import dupes_report
    from indexer.web.app import ServeOptions, create_app

    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        print(f"building {groups} groups: {timed(lambda: build(db, groups)):.1f} s")
        baseline = timed(lambda: dupes_report(open_session(str(db), readonly=True)))
        print(f"baseline dupes_report: {baseline * 1000:.0f} ms")
        with TestClient(create_app(ServeOptions(db=str(db))), base_url="http://127.0.0.1") as c:
            first = timed(lambda: c.get("/groups?page=1").raise_for_status())
            later = [timed(lambda p=p: c.get(f"/groups?page={p}").raise_for_status()) for p in (2, 50, 400, 2000)]
            c.app.state.photoqa.reports.token = None  # as after a change: the report is recomputed
            changed = timed(lambda: c.get("/groups?page=3").raise_for_status())
        print(f"first page (report computed): {first * 1000:.0f} ms = {first / baseline:.2f} x baseline")
        print(f"next pages (cached): median {np.median(later) * 1000:.0f} ms, max {max(later) * 1000:.0f} ms "
              f"= {np.median(later) / baseline:.3f} x baseline")
        print(f"a page after a change: {changed * 1000:.0f} ms = {changed / baseline:.2f} x baseline")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)
