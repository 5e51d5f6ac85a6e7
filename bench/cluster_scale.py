"""``photoqa index --cluster local:N`` against plain ``photoqa index -j N`` on the same files.

Each run is the real command in a separate process on a fresh SQLite database
(``python cli.py --db DB index FOLDER ...``), so start-up (the pool's, or the
LocalCluster's) is paid as a user pays it. The files: ``--count`` generated scenes
(``indexer.synthetic.scenes``) saved as ``--size`` JPEGs, written once into ``--work``;
the page cache is warmed first. Also measured: Dask's scheduling cost per task
(trivial tasks through a ``local:2`` cluster, the way ``pipeline.cluster`` submits).

Prints img/s per mode: cold (wall time of the command, start-up and shutdown paid) and
at the margin (decoding and measuring only, through ``run_outcomes``, fixed costs
cancelled by timing ``--count`` files and twice as many), and the ratio issue 19 names:
``local:2 / -j 2`` at the margin (target >= 0.85: going through Dask costs little).

    PYTHONPATH=. python bench/cluster_scale.py [--count 240] [--size 1280x960] [--work /tmp/photoqa-cluster]

Figures (2026-12-07, 2 cores shared with other jobs; read the ratios, not the seconds):
see docs/CLUSTER.md.
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

from PIL import Image

REPO = Path(__file__).resolve().parent.parent


def make_files(folder: Path, count: int, size: tuple[int, int]) -> list[Path]:
    from indexer.synthetic import scenes

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"s{i:05}.jpg"
        if not path.exists():
            Image.fromarray(scenes.scene(i, *size)).save(path, quality=90)
        paths.append(path)
    return paths


def reap_descendants() -> None:
    """Make this process the reaper of its orphaned descendants (Linux
    ``PR_SET_CHILD_SUBREAPER``): a command's forkserver, workers and Dask processes
    outlive it by moments and are then waited for here, so their CPU time counts in
    ``RUSAGE_CHILDREN``."""
    import ctypes

    try:
        ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):  # pragma: no cover - not Linux: CPU of the command alone
        pass


def run(folder: Path, args: list[str], repo: Path = REPO) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the command and every process it started) of one
    ``photoqa index`` (of the checkout ``repo``) on a fresh database. The CPU seconds
    are what a loaded machine makes the wall time follow: with load 20 on 2 cores the
    wall time of the same command varied 2x from round to round."""
    import resource

    def children() -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    with tempfile.TemporaryDirectory() as tmp:
        cpu = children()
        started = time.perf_counter()
        subprocess.run([sys.executable, str(repo / "cli.py"), "--db", str(Path(tmp) / "b.db"), "index",
                        str(folder), *args], check=True, capture_output=True, cwd=repo,
                       env={**os.environ, "PYTHONPATH": str(repo)})
        wall = time.perf_counter() - started
        while True:  # the orphans (forkserver, workers) once they exit
            try:
                os.waitpid(-1, 0)
            except ChildProcessError:
                break
        return wall, children() - cpu


def marginal_rates(first: Path, second: Path) -> dict[str, float]:
    """img/s of decoding and measuring only (no database), with the fixed costs (start-up
    of the pool or cluster, workers' imports, shutdown) cancelled: (files of both folders
    - files of the first) / (seconds on both - seconds on the first), per mode."""
    from indexer.config import IndexSettings
    from indexer.pipeline import scan
    from indexer.pipeline.run import run_outcomes

    settings = IndexSettings()
    one, both = scan.walk([first]), scan.walk([first, second])
    rates = {}
    for name, workers, cluster in (("-j 2", 2, ""), ("local:2", 2, "local:2")):
        seconds = []
        for tasks in (one, both):
            started = time.perf_counter()
            assert sum(1 for _ in run_outcomes(tasks, settings, workers, frozenset(), cluster=cluster)) == len(tasks)
            seconds.append(time.perf_counter() - started)
        rates[name] = (len(both) - len(one)) / (seconds[1] - seconds[0])
        print(f"{name:8} {len(one)} files {seconds[0]:6.2f} s, {len(both)} files {seconds[1]:6.2f} s: "
              f"{rates[name]:6.1f} img/s at the margin", flush=True)
    return rates


def scheduling_cost(tasks: int = 500) -> tuple[float, float]:
    """(seconds to start and check a local:2 cluster, ms of scheduling per trivial task)."""
    import distributed

    from indexer.config import IndexSettings
    from indexer.pipeline.cluster import open_cluster

    started = time.perf_counter()
    with open_cluster("local:2", IndexSettings()) as cluster:
        cluster.client  # connected lazily: started and checked here
        ready = time.perf_counter()
        futures = [cluster.client.submit(abs, -i, pure=False) for i in range(tasks)]
        for future in distributed.as_completed(futures):
            future.result()
        per_task = (time.perf_counter() - ready) / tasks
    return ready - started, per_task * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=240)
    parser.add_argument("--size", default="1280x960")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "photoqa-cluster")
    parser.add_argument("--repeat", type=int, default=3, help="rounds of -j 2 against local:2")
    parser.add_argument("--baseline", type=Path, default=None,
                        help="a checkout of another commit: its local:2 runs in each round too")
    parser.add_argument("--skip-margin", action="store_true", help="only the cold commands")
    parser.add_argument("--clean", action="store_true", help="remove --work afterwards")
    opts = parser.parse_args()
    width, height = (int(v) for v in opts.size.split("x"))
    folder = opts.work / f"{opts.count}-{opts.size}"
    files = make_files(folder, opts.count, (width, height))
    more = make_files(opts.work / f"{opts.count}-{opts.size}-more", opts.count, (width, height))
    for path in files + more:
        path.read_bytes()  # warm the page cache
    print(f"the command, cold (a fresh process and database each; start-up and shutdown paid), "
          f"{opts.repeat} rounds, the modes alternating:")
    modes = {"-j 1": ["-j", "1"], "local:1": ["--cluster", "local:1"], "-j 2": ["-j", "2"],
             "local:2": ["--cluster", "local:2"]}
    if opts.baseline:  # another checkout's local:2 (e.g. `git archive COMMIT | tar -x -C DIR`)
        modes["local:2 baseline"] = ["--cluster", "local:2"]
    reap_descendants()
    seconds: dict[str, list[float]] = {name: [] for name in modes}
    cpus: dict[str, list[float]] = {name: [] for name in modes}
    for round_ in range(opts.repeat):
        for name, args in modes.items():
            if round_ and name in ("-j 1", "local:1"):
                continue  # one round of the 1-worker modes: the target is about 2 workers
            wall, cpu = run(folder, args, opts.baseline if name.endswith("baseline") else REPO)
            seconds[name].append(wall)
            cpus[name].append(cpu)
            print(f"{name:8} {len(files)} files {wall:7.2f} s  {len(files) / wall:6.1f} img/s  "
                  f"CPU {cpu:6.2f} s (all its processes)", flush=True)
    rates = {name: len(files) / statistics.median(values) for name, values in seconds.items()}
    pairs = [a / b for a, b in zip(seconds["-j 2"], seconds["local:2"])]
    print("local:2 / -j 2 per round (each pair run back to back): "
          + ", ".join(f"{r:.2f}" for r in pairs), flush=True)
    print("CPU seconds, -j 2 / local:2 per round: "
          + ", ".join(f"{a / b:.2f}" for a, b in zip(cpus["-j 2"], cpus["local:2"])), flush=True)
    if opts.baseline:
        before = [a / b for a, b in zip(seconds["-j 2"], seconds["local:2 baseline"])]
        print(f"baseline {opts.baseline} local:2 / -j 2 per round: " + ", ".join(f"{r:.2f}" for r in before))
        print("baseline CPU seconds, -j 2 / local:2 per round: "
              + ", ".join(f"{a / b:.2f}" for a, b in zip(cpus["-j 2"], cpus["local:2 baseline"])))
    print(f"cold, medians: local:1 / -j 1 = {rates['local:1'] / rates['-j 1']:.2f}   "
          f"local:2 / -j 2 = {rates['local:2'] / rates['-j 2']:.2f} (target >= 0.85)", flush=True)
    if opts.skip_margin:
        return
    print("decoding and measuring at the margin (fixed costs cancelled, no database):")
    margin = marginal_rates(folder, more[0].parent)
    start, per_task = scheduling_cost()
    print(f"local:2 start and worker check {start:.2f} s; scheduling {per_task:.2f} ms per trivial task")
    print(f"margin: local:2 / -j 2 = {margin['local:2'] / margin['-j 2']:.2f} (target >= 0.85)")
    if opts.clean:
        shutil.rmtree(opts.work, ignore_errors=True)


if __name__ == "__main__":
    main()
