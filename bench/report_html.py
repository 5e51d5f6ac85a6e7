"""Time of ``photoqa report --html`` against the size of the archive.

Builds SQLite databases of N duplicate groups as ``serve_groups.py`` does (a keeper and
one byte-identical copy each, rows written straight into the tables; the files do not
exist, so thumbnails are the stored grey ones: the decode is left out, what is timed is
the pages), then exports each with ``--no-pair-pictures`` and reports the time per group.

Baseline (same run): ``dupes_report`` once on the same database, what ``photoqa dupes``
computes; the export renders every group, image and pair page on top of it. Linear
scaling shows as a flat time per group across N.

Usage: python bench/report_html.py [N ...]   (default: 500 2000)
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from serve_groups import build  # noqa: E402

from indexer.commands.dupes import dupes_report  # noqa: E402
from indexer.session import open_session  # noqa: E402
from indexer.web.report import export_html  # noqa: E402


def main(sizes: list[int]) -> None:
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            db = Path(tmp) / "bench.db"
            build(db, n)
            t0 = time.perf_counter()
            dupes_report(open_session(str(db), readonly=True))
            base = time.perf_counter() - t0
            t0 = time.perf_counter()
            got = export_html(str(db), None, Path(tmp) / "site", pair_pictures=False)
            took = time.perf_counter() - t0
            print(f"{n:>7} groups: baseline dupes_report {base:6.2f} s; export {took:7.2f} s "
                  f"({took / base:5.1f} x baseline), {got.pages} pages, {got.pictures} pictures, "
                  f"{1000 * took / n:6.1f} ms per group")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [500, 2000])
