"""Writer throughput: `images` rows per second the single writer stores (docs/SCALE.md).

Analyses a few real files once (../shared/data/scenes), then stores N rows with distinct
paths through ``Store.save_indexed`` (what `index` does: one transaction per image, camera
look-up, failure row cleared) into a fresh SQLite file and, with --pg URL, into a fresh
PostgreSQL schema; then N more through ``Store.save_batch`` in batches of --batch (what the
writer does since issue 19: one transaction per batch). Ceiling, same run and backend: the
same rows' values inserted raw in batches of --batch (one executemany, no camera look-up,
no failure rows), the most a batching writer could gain.

    PYTHONPATH=. python bench/writer_throughput.py [--data ../shared/data] [--rows 2000] [--batch 500] [--pg URL]
"""
from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import insert, text

from db.models import Image
from db.store import Store, image_values
from indexer.config import WRITE_BATCH
from indexer.outcomes import Indexed, Task
from indexer.pipeline.analyse import analyse
from indexer.session import open_session



def samples(folder: Path, count: int) -> list[Indexed]:
    out = []
    for path in sorted(folder.rglob("*.jpg"))[:count * 2]:
        st = path.stat()
        result = analyse(Task(str(path), st.st_size, st.st_mtime_ns))
        if isinstance(result, Indexed):
            out.append(result)
        if len(out) == count:
            break
    return out


def with_path(result: Indexed, i: int) -> Indexed:
    return dataclasses.replace(result, task=Task(f"/bench/{i:09d}.jpg", 1, i))


def measure(url: str, results: list[Indexed], rows: int, batch: int) -> tuple[float, float, float]:
    """(rows/s through save_indexed, through save_batch, raw executemany) at ``url``."""
    session = open_session(url)
    store = Store(session.engine)
    start = time.perf_counter()
    for i in range(rows):
        store.save_indexed(with_path(results[i % len(results)], i))
    one = rows / (time.perf_counter() - start)
    todo = [with_path(results[i % len(results)], rows + i) for i in range(rows)]
    start = time.perf_counter()
    for k in range(0, rows, batch):
        store.save_batch(todo[k:k + batch])
    stored = rows / (time.perf_counter() - start)
    values = [image_values(with_path(results[i % len(results)], 2 * rows + i), None) for i in range(rows)]
    start = time.perf_counter()
    for k in range(0, rows, batch):
        with session.engine.begin() as conn:
            conn.execute(insert(Image), values[k:k + batch])
    batched = rows / (time.perf_counter() - start)
    session.engine.dispose()
    return one, stored, batched


def report(name: str, one: float, stored: float, batched: float, batch: int) -> None:
    print(f"{name:<10} save_indexed {one:7.0f} rows/s   save_batch({batch}) {stored:7.0f} rows/s   "
          f"raw executemany({batch}) {batched:7.0f} rows/s   save_batch / save_indexed {stored / one:.1f}x   "
          f"save_batch / raw {stored / batched:.2f}x", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=WRITE_BATCH)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--pg", help="a PostgreSQL URL we may create a schema in")
    args = parser.parse_args()
    results = samples(args.data / "scenes", 20)
    if not results:
        raise SystemExit(f"no JPEG under {args.data / 'scenes'}: pass --data")
    with tempfile.TemporaryDirectory() as tmp:
        report("sqlite", *measure(f"{tmp}/w.db", results, args.rows, args.batch), args.batch)
    if args.pg:
        from db.engine import open_engine

        schema = "bench_" + uuid.uuid4().hex[:8]
        admin = open_engine(args.pg)
        with admin.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
        try:
            url = f"{args.pg}{'&' if '?' in args.pg else '?'}options=-csearch_path%3D{schema}"
            report("postgresql", *measure(url, results, args.rows, args.batch), args.batch)
        finally:
            with admin.begin() as conn:
                conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
            admin.dispose()


if __name__ == "__main__":
    main()
