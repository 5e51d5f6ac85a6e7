"""``photoqa index`` of one image file starts its forkserver before its own imports
(``pipeline.pools.prestart``): the worker is forked with the decoders loaded, and only
such a run starts one early; its worker runs at the writer's priority; the process
skips the collector's work on its imports and at exit, and still closes its database.

Each case runs in a fresh interpreter: a process has one forkserver, started once.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
PROBE = '''
import gc, os
def work(task, settings=None, moves=None, plan=None):
    return os.getppid(), gc.get_freeze_count()
'''
SCRIPT = '''
import json, sys
from multiprocessing import forkserver
from pathlib import Path
from indexer.pipeline.pools import prestart
started = prestart([Path(p) for p in sys.argv[1:]])
running = forkserver._forkserver._forkserver_pid is not None  # before any pool
import probe
from indexer.config import IndexSettings
from indexer.outcomes import Task
from indexer.pipeline.run import run_outcomes
parents = list(run_outcomes([Task("/nowhere/x", 1, 1)], IndexSettings(), 1, frozenset(), work=probe.work))
server = forkserver._forkserver._forkserver_pid
# what the forkserver itself has loaded (it forks a worker only once its preload is done)
maps = open(f"/proc/{server}/maps").read()
print(json.dumps({"started": started, "running": running, "worker_of_server": parents[0][0] == server,
                  "numpy": "_multiarray_umath" in maps, "pil": "PIL/_imaging" in maps,
                  "frozen": parents[0][1] > 0}))
'''

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="forkserver: Linux")


def _run(tmp_path: Path, *paths: Path) -> dict:
    (tmp_path / "probe.py").write_text(PROBE)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(tmp_path)]))
    out = subprocess.run([sys.executable, "-c", SCRIPT, *map(str, paths)], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def _jpeg(path: Path) -> Path:
    Image.fromarray(np.full((32, 48, 3), 128, np.uint8)).save(path)
    return path


def test_one_image_file_starts_the_forkserver_with_the_decoders(tmp_path):
    state = _run(tmp_path, _jpeg(tmp_path / "one.jpg"))
    # the preload frozen (pipeline.forkfreeze): the worker inherits it
    assert state == {"started": True, "running": True, "worker_of_server": True, "numpy": True, "pil": True,
                     "frozen": True}


@pytest.mark.parametrize("case", ["folder", "two files", "array stack"])
def test_other_runs_keep_the_forkserver_of_their_first_pool(tmp_path, case):
    folder = tmp_path / "photos"
    folder.mkdir()
    one, two = _jpeg(folder / "a.jpg"), _jpeg(folder / "b.jpg")
    stack = folder / "s.npy"
    np.save(stack, np.zeros((2, 8, 8), np.uint8))
    paths = {"folder": [folder], "two files": [one, two], "array stack": [stack]}[case]
    state = _run(tmp_path, *paths)
    # started by the pool, with the default preload (``__main__``: none under -c)
    assert state == {"started": False, "running": False, "worker_of_server": True, "numpy": False, "pil": False,
                     "frozen": False}


def test_a_folder_run_of_the_command_starts_it_with_the_kernels_when_asked(tmp_path):
    """``many``: the command's own process (cli._PROCESS) indexing a folder starts the
    forkserver too, with the compiled sensor kernels when ``kernels`` (numba's LLVM then
    mapped in the forkserver, inherited by every worker)."""
    folder = tmp_path / "photos"
    folder.mkdir()
    _jpeg(folder / "a.jpg")
    script = SCRIPT.replace("prestart([Path(p) for p in sys.argv[1:]])",
                            "prestart([Path(p) for p in sys.argv[1:]], kernels=True, many=True)")
    script = script.replace('"pil": "PIL/_imaging" in maps,', '"pil": "PIL/_imaging" in maps, "llvm": "llvmlite" in maps,')
    (tmp_path / "probe.py").write_text(PROBE)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(tmp_path)]))
    out = subprocess.run([sys.executable, "-c", script, str(folder)], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    state = json.loads(out.stdout.strip().splitlines()[-1])
    assert state == {"started": True, "running": True, "worker_of_server": True, "numpy": True, "pil": True,
                     "llvm": True, "frozen": True}


def test_a_one_file_index_process_stores_its_row_and_closes_the_database(tmp_path):
    """``photoqa index one.jpg`` as a program: imports outside the collector and no
    collection at exit (cli._imports_outside_collection, _skip_exit_collection) keep the
    same row, and the engine closed at the end lets SQLite checkpoint and remove its WAL."""
    import sqlite3

    db = tmp_path / "p.db"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    for name in ("one.jpg", "two.jpg"):  # the second into an existing database
        photo = _jpeg(tmp_path / name)
        out = subprocess.run([sys.executable, str(REPO / "cli.py"), "--db", str(db), "index", str(photo)],
                             env=env, capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, out.stderr[-2000:]
        assert "indexed: 1 " in out.stdout
        assert not (tmp_path / "p.db-wal").exists()
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT path, width, height FROM images ORDER BY path").fetchall()
    assert rows == [(str(tmp_path / "one.jpg"), 48, 32), (str(tmp_path / "two.jpg"), 48, 32)]


NICE_PROBE = '''
import os
def work(task, settings=None, moves=None, plan=None):
    return os.nice(0)
'''
NICE_SCRIPT = '''
import json, os, sys
import niceprobe
from indexer.config import IndexSettings
from indexer.outcomes import Task
from indexer.pipeline.run import run_outcomes
tasks = [Task(f"/nowhere/{i}", 1, 1) for i in range(int(sys.argv[1]))]
print(json.dumps([n - os.nice(0) for n in run_outcomes(tasks, IndexSettings(), 2, frozenset(), work=niceprobe.work)]))
'''


@pytest.mark.parametrize("files, stepped", [(1, False), (3, True)])
def test_the_worker_of_one_file_does_not_yield_to_an_idle_writer(tmp_path, files, stepped):
    """Workers step down (pools.WORKER_NICE) so the writer keeps up with them; the writer
    of one file only waits for it."""
    from indexer.pipeline.pools import WORKER_NICE

    (tmp_path / "niceprobe.py").write_text(NICE_PROBE)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(tmp_path)]))
    out = subprocess.run([sys.executable, "-c", NICE_SCRIPT, str(files)], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [WORKER_NICE if stepped else 0] * files
