"""Benchmark: the writer's memory with several high-resolution cameras, and ``[sensor] memory_mb``.

A ``watch`` daemon fed by several cameras keeps each body's delta (26 bytes a site) until
it is flushed; four 12 MP bodies held ~1.25 GB (issue 17). This feeds the real
``SensorStage`` frames of 4 camera bodies of 12 MP (4000x3000), alternately (A, B, C, D,
A, ...), each mode in a fresh process (peak RSS is per process), in one run:

- unbounded: ``memory_mb`` = 100,000 (the old behaviour: every body resident);
- bounded:   ``memory_mb`` = the default (and ``--budgets`` more), least recently fed
  body flushed and dropped.

Deltas are computed once in the parent (``sensor.delta.rgb_delta`` of a textured 12 MP
frame; what the decode workers send) and handed to each child; frames differ by their
content hash only. ``flush_frames`` / ``flush_seconds`` are set high, so only the
budget and the final ``close`` flush. Prints per mode: peak RSS (ru_maxrss) and RSS
before feeding, flushes, wall time, and the ratios against unbounded; with ``--db URL``
of a PostgreSQL database (a fresh schema is made), the statistics go to ``sensor_tiles``
and the bytes per body in the table are printed.

Usage: PYTHONPATH=. python bench/sensor_memory.py [--rounds 3] [--budgets 320] [--db postgresql+psycopg://...]
"""
from __future__ import annotations

import argparse
import multiprocessing
import pickle
import resource
import tempfile
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import numpy as np

HEIGHT, WIDTH, BODIES = 3000, 4000, 4


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def make_deltas(count: int = 2):
    from indexer.sensor.delta import rgb_delta

    rng = np.random.default_rng(0)
    out = []
    for _ in range(count):
        coarse = rng.integers(20, 230, (HEIGHT // 50 + 1, WIDTH // 50 + 1, 3)).astype(np.int16)
        frame = np.kron(coarse, np.ones((50, 50, 1), np.int16))[:HEIGHT, :WIDTH]
        frame = np.clip(frame + rng.normal(0, 3, frame.shape), 0, 255).astype(np.uint8)
        out.append(rgb_delta(frame))
    return out


def setup_database(url: str, root: Path) -> None:
    """A database whose images 1..4 are tiny PNGs of 4 camera bodies."""
    from click.testing import CliRunner

    from cli import main
    from indexer.synthetic import camera as synthetic

    folder = root / "bodies"
    folder.mkdir(parents=True)
    for k in range(BODIES):
        synthetic.write_frame(folder / f"b{k}.png", np.full((8, 8, 3), 40 * k, np.uint8),
                              make="Bench", model=f"Body {k}")
    result = CliRunner().invoke(main, ["--db", url, "index", str(folder), "--workers", "1"])
    assert result.exit_code == 0, result.output


def child(url: str, memory_mb: float, rounds: int, deltas_file: str, out) -> None:
    from dataclasses import replace

    from indexer.pipeline.sensorstage import SensorStage
    from indexer.pipeline.sensorstore import open_store
    from indexer.session import open_session

    session = open_session(url)
    settings = replace(session.settings.sensor, memory_mb=memory_mb, flush_frames=10**6, flush_seconds=1e9)
    store = open_store(session.engine, session.url, settings)
    deltas = pickle.loads(Path(deltas_file).read_bytes())
    flushes = []
    stage = SensorStage(session.engine, settings, store)
    original = stage.flush

    def timed(sid):
        began = time.perf_counter()
        original(sid)
        flushes.append(time.perf_counter() - began)

    stage.flush = timed
    before = rss_mb()
    began = time.perf_counter()
    n = 0
    for r in range(rounds):
        for body in range(BODIES):
            n += 1
            sha = f"{uuid.uuid4().hex}{n:032x}"[:64]
            stage(body + 1, SimpleNamespace(decoded=SimpleNamespace(sha256=sha), sensor=deltas[n % len(deltas)]))
    fed_peak = stage.peak_bytes
    stage.close()
    wall = time.perf_counter() - began
    assert not stage.errors, stage.errors
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    sizes = {}
    if session.engine.dialect.name == "postgresql":
        from sqlalchemy import text

        with session.engine.connect() as conn:
            sizes = dict(conn.execute(text("SELECT sensor_id, sum(length(data)) FROM sensor_tiles GROUP BY 1")).all())
            sizes["table"] = conn.execute(text("SELECT pg_total_relation_size('sensor_tiles')")).scalar()
    out.put(dict(before=before, peak=peak, wall=wall, flushes=len(flushes), evictions=stage.evictions,
                 mean_flush=float(np.mean(flushes)) if flushes else 0.0, deltas_peak=fed_peak / 1e6, sizes=sizes))


def run_mode(url: str, memory_mb: float, rounds: int, deltas_file: str) -> dict:
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    process = context.Process(target=child, args=(url, memory_mb, rounds, deltas_file, out))
    process.start()
    result = out.get()
    process.join()
    return result


def fresh_pg(url: str) -> str:
    from sqlalchemy import text

    from db.engine import open_engine

    schema = "bench_" + uuid.uuid4().hex[:10]
    with open_engine(url).begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    return f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"


def main() -> None:
    from indexer.config import SensorSettings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="frames per body")
    parser.add_argument("--budgets", type=float, nargs="*", default=[], help="more memory_mb to try")
    parser.add_argument("--db", default="", help="a PostgreSQL URL (default: a SQLite file in a temp folder)")
    args = parser.parse_args()
    default = SensorSettings().memory_mb
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        began = time.process_time()
        deltas = make_deltas()
        print(f"{len(deltas)} deltas of {WIDTH}x{HEIGHT}: {time.process_time() - began:.1f} s CPU; "
              f"{len(pickle.dumps(deltas[0])) / 1e6:.1f} MB each pickled; a body's delta "
              f"accumulator {26 * HEIGHT * WIDTH / 1e6:.0f} MB")
        deltas_file = root / "deltas.pickle"
        deltas_file.write_bytes(pickle.dumps(deltas))
        del deltas
        results = {}
        for i, budget in enumerate([100_000.0, default, *args.budgets]):
            url = fresh_pg(args.db) if args.db else f"sqlite:///{root / f'mode{i}.db'}"
            setup_database(url, root / f"mode{i}")
            results[budget] = r = run_mode(url, budget, args.rounds, str(deltas_file))
            label = "unbounded" if budget == 100_000.0 else f"memory_mb={budget:g}"
            print(f"{label:>16}: peak RSS {r['peak']:7.0f} MB (before feeding {r['before']:4.0f} MB), deltas "
                  f"at most {r['deltas_peak']:5.0f} MB, {r['flushes']} flushes ({r['evictions']} early), "
                  f"{r['mean_flush']:.2f} s each, wall {r['wall']:.1f} s")
            if r["sizes"]:
                table = r["sizes"].pop("table")
                per = [v / 1e6 for v in r["sizes"].values()]
                print(f"{'':>16}  sensor_tiles: {table / 1e6:.0f} MB on disk for {len(per)} bodies; data per body "
                      f"{min(per):.0f}-{max(per):.0f} MB ({max(per) * 1e6 / (HEIGHT * WIDTH):.1f} bytes a site)")
        base = results[100_000.0]
        for budget, r in results.items():
            if budget != 100_000.0:
                print(f"memory_mb={budget:g} / unbounded: peak RSS {r['peak'] / base['peak']:.2f}x, "
                      f"wall {r['wall'] / base['wall']:.2f}x")


if __name__ == "__main__":
    main()
