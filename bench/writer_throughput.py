"""Writer throughput: `images` rows per second the single writer stores (docs/SCALE.md).

Analyses a few real files once (../shared/data/scenes), then stores N rows with distinct
paths through ``Store.save_indexed`` (what `index` does: one transaction per image, camera
look-up, failure row cleared) into a fresh SQLite file and, with --pg URL, into a fresh
PostgreSQL schema; then N more through ``Store.save_batch`` in batches of --batch (what the
writer does since issue 19: one transaction per batch; new rows by COPY on PostgreSQL), and
on PostgreSQL N more through ``save_batch`` with its executemany instead of COPY. Ceilings,
same run and backend: the same rows' values inserted raw in batches of --batch (one
executemany, and on PostgreSQL one COPY; no camera look-up, no failure rows, no ids read
back), the most a batching writer could gain.

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
from db.pgcopy import copy_rows
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


def _rate(rows: int, run) -> float:
    start = time.perf_counter()
    run()
    return rows / (time.perf_counter() - start)


def measure(url: str, results: list[Indexed], rows: int, batch: int) -> dict[str, float]:
    """Rows/s at ``url`` of each way of writing ``rows`` rows, each with its own paths."""
    session = open_session(url)
    store = Store(session.engine)
    postgres = session.engine.dialect.name == "postgresql"
    offset = iter(range(0, 10 * rows, rows))

    def todo() -> list[Indexed]:
        first = next(offset)
        return [with_path(results[i % len(results)], first + i) for i in range(rows)]

    def batches(items: list) -> list[list]:
        return [items[k:k + batch] for k in range(0, rows, batch)]

    def raw(items: list[dict], copy: bool) -> None:
        for chunk in batches(items):
            with session.engine.begin() as conn:
                if copy:
                    copy_rows(conn, Image.__table__, chunk)
                else:
                    conn.execute(insert(Image), chunk)

    out = {}
    one = todo()
    out["save_indexed"] = _rate(rows, lambda: [store.save_indexed(r) for r in one])
    many = batches(todo())
    out["save_batch"] = _rate(rows, lambda: [store.save_batch(b) for b in many])
    if postgres:  # the same, with the executemany of issue 19's first step
        many = batches(todo())
        store.copy_on_postgresql = False
        out["save_batch executemany"] = _rate(rows, lambda: [store.save_batch(b) for b in many])
        store.copy_on_postgresql = True
    values = [image_values(r, None) for r in todo()]
    out["raw executemany"] = _rate(rows, lambda: raw(values, False))
    if postgres:
        values = [image_values(r, None) for r in todo()]
        out["raw COPY"] = _rate(rows, lambda: raw(values, True))
    session.engine.dispose()
    return out


def report(name: str, rates: dict[str, float], batch: int) -> None:
    figures = "   ".join(f"{k} {v:6.0f}" for k, v in rates.items())
    ceiling = rates.get("raw COPY", rates["raw executemany"])
    print(f"{name:<10} rows/s (batches of {batch}): {figures}   save_batch / save_indexed "
          f"{rates['save_batch'] / rates['save_indexed']:.1f}x   save_batch / fastest raw {rates['save_batch'] / ceiling:.2f}x",
          flush=True)


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
        report("sqlite", measure(f"{tmp}/w.db", results, args.rows, args.batch), args.batch)
    if args.pg:
        from db.engine import open_engine

        schema = "bench_" + uuid.uuid4().hex[:8]
        admin = open_engine(args.pg)
        with admin.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
        try:
            url = f"{args.pg}{'&' if '?' in args.pg else '?'}options=-csearch_path%3D{schema}"
            report("postgresql", measure(url, results, args.rows, args.batch), args.batch)
        finally:
            with admin.begin() as conn:
                conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
            admin.dispose()


if __name__ == "__main__":
    main()
