"""Start-up of the everyday commands: `status`, `sql`, `dupes` and `index` of one new file.

Each command runs as a user runs it: a fresh ``python cli.py`` process against an indexed
database, timed from spawn to exit (wall) with its CPU (user + system, from
``os.wait4``), the median of ``--runs`` runs. The machine is shared, so wall time moves
with the load; CPU time moves less, and both are printed against two baselines measured
in the same run: ``python -c pass`` (the interpreter's floor) and ``python -c "import
sqlalchemy"`` (the floor of any command that opens the database through SQLAlchemy).

1. A folder of ``--photos`` generated JPEGs (768x512 scenes of
   :func:`indexer.synthetic.camera.generated_scene`, every fifth with a byte copy and a
   half-size copy, so ``dupes`` has groups to list), indexed by ``photoqa index``.
2. Each command ``--runs`` times; ``index`` adds a new JPEG each run (another scene) by
   naming that one file.
3. With ``--against DIR`` (another checkout, e.g. main), the same commands of that tree
   on the same database, in the same run.

    PYTHONPATH=. python bench/startup.py [--runs 5] [--photos 40] [--against /work/main]

Targets (issue 13 item 4): status, sql and dupes <= 0.5 s wall; index of one file <= 1.5 s.

Measured (2026-12-07, 13:45, 2 cores shared with seven other jobs, load average 27:
``python -c pass`` took 0.45 s wall, so read CPU and the ratios; ``--runs 5 --photos 30
--against`` the branch point d1740b7): ``import sqlalchemy`` 0.355 s CPU / 4.8 s wall.

    command         this tree CPU   d1740b7 CPU   ratio CPU   this tree wall   d1740b7 wall
    status              0.128          0.647         0.20          1.42            7.26
    sql                 0.107          0.113         0.94          1.14            1.23
    dupes               0.166          0.675         0.25          1.41            4.82
    index 1 file        1.121          2.262         0.50         11.5            27.0

status and dupes on a SQLite file now read through the stdlib sqlite3 (db.sqlite_reads:
no SQLAlchemy, no models), so they cost what sql costs: ~0.1-0.17 s CPU, which is
~0.2 s wall whenever the machine runs a process promptly (``pass`` at 0.06 s); at load
27 nothing is <= 0.5 s wall, not even ``python -c pass`` x 2. index of one file: a small
archive's Hamming index is a NumPy scan (no numba), the pHash DCT two matrix products
(no scipy), verification kernels imported on the first verification: 1.1 s CPU, of
which ~0.45 s SQLAlchemy and the models the writer needs, ~0.1 s NumPy.

Earlier (same day, load ~9, against main at 70aad08): status 0.612 s CPU, sql 0.115,
dupes 0.513, index of one file 1.770.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TARGETS = {"status": 0.5, "sql": 0.5, "dupes": 0.5, "index 1 file": 1.5}


def timed(argv: list[str], *, cwd: Path, env: dict) -> tuple[float, float]:
    """(wall s, CPU s) of one process run to completion; a failure stops the benchmark."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    if proc.returncode not in (0,):
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}): {err.strip()[-400:]}")
    return wall, usage.ru_utime + usage.ru_stime


def median_of(runs: int, make_argv, *, cwd: Path, env: dict) -> tuple[float, float]:
    walls, cpus = [], []
    for i in range(runs):
        w, c = timed(make_argv(i), cwd=cwd, env=env)
        walls.append(w)
        cpus.append(c)
    return statistics.median(walls), statistics.median(cpus)


def write_photos(folder: Path, count: int, seed: int) -> list[Path]:
    """``count`` JPEG scenes; every fifth also as a byte copy and a half-size copy."""
    import numpy as np
    from PIL import Image

    from indexer.synthetic.camera import generated_scene

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        img = Image.fromarray((generated_scene(rng) * 255).astype(np.uint8))
        path = folder / f"s{seed}_{i:03d}.jpg"
        img.save(path, quality=90)
        out.append(path)
        if i % 5 == 0:
            shutil.copyfile(path, folder / f"s{seed}_{i:03d}_copy.jpg")
            img.resize((img.width // 2, img.height // 2), Image.LANCZOS).save(folder / f"s{seed}_{i:03d}_half.jpg",
                                                                               quality=85)
    return out


def commands(tree: Path, db: Path, new_files: list[Path]) -> dict[str, object]:
    py = [sys.executable, str(tree / "cli.py"), "--db", str(db)]
    return {
        "status": lambda i: [*py, "status"],
        "sql": lambda i: [*py, "sql", "SELECT path, ev FROM images ORDER BY ev LIMIT 5"],
        "dupes": lambda i: [*py, "dupes"],
        "index 1 file": lambda i: [*py, "index", str(new_files[i]), "-j", "1"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5, help="runs per command (median); example: --runs 7")
    ap.add_argument("--photos", type=int, default=40, help="generated photos in the database; example: --photos 100")
    ap.add_argument("--against", type=Path, default=None,
                    help="another checkout timed on the same database; example: --against /work/main")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="photoqa-startup-"))
    try:
        trees = [("this tree", REPO)] + ([("against", args.against.resolve())] if args.against else [])
        write_photos(work / "photos", args.photos, seed=1)
        db = work / "photoqa.db"
        env = dict(os.environ, PYTHONPATH=str(REPO))
        timed([sys.executable, str(REPO / "cli.py"), "--db", str(db), "index", str(work / "photos"), "-j", "1"],
              cwd=work, env=env)
        print(f"database: {args.photos} photos + copies, {args.runs} runs per command (median), "
              f"load average {os.getloadavg()[0]:.1f}")

        base_env = dict(os.environ, PYTHONPATH=str(REPO))
        floor = median_of(args.runs, lambda i: [sys.executable, "-c", "pass"], cwd=work, env=base_env)
        sqla = median_of(args.runs, lambda i: [sys.executable, "-c", "import sqlalchemy"], cwd=work, env=base_env)
        print(f"{'command':<22} {'wall s':>7} {'CPU s':>6} {'wall/pass':>9} {'CPU/sqla':>8} {'target':>7}")
        print(f"{'python -c pass':<22} {floor[0]:7.3f} {floor[1]:6.3f} {1.0:9.1f} {floor[1] / sqla[1]:8.2f}")
        print(f"{'import sqlalchemy':<22} {sqla[0]:7.3f} {sqla[1]:6.3f} {sqla[0] / floor[0]:9.1f} {1.0:8.2f}")
        # Interleaved: run i of a command in every tree before run i + 1, so the trees see
        # the same load (the machine is shared; a burst lands on both or on neither).
        cmds = {label: commands(tree, db, write_photos(work / f"new_{k}", args.runs, seed=100 + k))
                for k, (label, tree) in enumerate(trees)}
        envs = {label: dict(os.environ, PYTHONPATH=str(tree)) for label, tree in trees}
        results: dict[tuple[str, str], tuple[float, float]] = {}
        for name in TARGETS:
            samples: dict[str, list[tuple[float, float]]] = {label: [] for label, _ in trees}
            for i in range(args.runs):
                for label, _ in trees:
                    samples[label].append(timed(cmds[label][name](i), cwd=work, env=envs[label]))
            for label, _ in trees:
                wall = statistics.median(w for w, _ in samples[label])
                cpu = statistics.median(c for _, c in samples[label])
                results[label, name] = wall, cpu
                met = "met" if wall <= TARGETS[name] else f"> {TARGETS[name]}"
                print(f"{label + ': ' + name:<22} {wall:7.3f} {cpu:6.3f} {wall / floor[0]:9.1f} "
                      f"{cpu / sqla[1]:8.2f} {met:>7}")
        if args.against:
            print("this tree / against (wall, CPU):")
            for name in TARGETS:
                (w1, c1), (w0, c0) = results["this tree", name], results["against", name]
                print(f"  {name:<14} {w1 / w0:5.2f} {c1 / c0:5.2f}")
        print(f"load average after: {os.getloadavg()[0]:.1f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
