"""Decode workers of a run that learns rendered frames inherit the compiled sensor kernels
from their forkserver (``pipeline.kernelwarm``); a run that learns nothing leaves numba out.

Each case runs in a fresh interpreter: a process has one forkserver, started with the
preload list of its first pool.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PROBE = '''
import sys
def work(task, settings=None, moves=None, plan=None):
    from indexer.sensor import kernels
    return {"numba": "numba" in sys.modules, "loaded": bool(kernels._rgb_strips.overloads)}
'''
SCRIPT = '''
import json, sys
import probe
from indexer.config import IndexSettings, SensorSettings
from indexer.decode import SensorData
from indexer.outcomes import Task
from indexer.pipeline.run import run_outcomes
from indexer.pipeline.sensorplan import SensorPlan
from indexer.sensor.delta import rgb_delta
import numpy as np
rgb_delta(np.zeros((64, 64, 3), np.uint8))  # numba's cache filled (the first run compiles)
data = SensorData.ALL if sys.argv[1] == "rendered" else SensorData.NONE
tasks = [Task(f"/nowhere/{i}", 1, 1) for i in range(int(sys.argv[2]))]
print(json.dumps(list(run_outcomes(tasks, IndexSettings(), 2, frozenset(), SensorPlan(data, SensorSettings()),
                                   work=probe.work))))
'''


def _workers_state(tmp_path: Path, mode: str, files: int = 4) -> list[dict]:
    (tmp_path / "probe.py").write_text(PROBE)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(tmp_path)]))
    out = subprocess.run([sys.executable, "-c", SCRIPT, mode, str(files)], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(sys.platform != "linux", reason="forkserver preload: Linux")
def test_workers_of_a_learning_run_start_with_the_kernels_loaded(tmp_path):
    # the probe imports kernels itself: "loaded" means the machine code came from the forkserver
    assert _workers_state(tmp_path, "rendered") == [{"numba": True, "loaded": True}] * 4


@pytest.mark.skipif(sys.platform != "linux", reason="forkserver preload: Linux")
def test_workers_of_a_run_without_rendered_frames_do_not_load_them(tmp_path):
    assert _workers_state(tmp_path, "none") == [{"numba": True, "loaded": False}] * 4


@pytest.mark.skipif(sys.platform != "linux", reason="forkserver preload: Linux")
def test_a_run_of_one_file_does_not_preload_them(tmp_path):
    """One worker would load them once either way; preloaded, its one file waited 0.8 s
    for kernels it may never need (``photoqa index one.jpg``)."""
    assert _workers_state(tmp_path, "rendered", files=1) == [{"numba": True, "loaded": False}]


WATCH_SCRIPT = '''
import json, sys
import probe
from indexer.config import IndexSettings
from indexer.decode import SensorData
from indexer.pipeline.run import start_pool
from indexer.sensor.delta import rgb_delta
import numpy as np
rgb_delta(np.zeros((64, 64, 3), np.uint8))  # numba's cache filled (the first run compiles)
data = SensorData.ALL if sys.argv[1] == "rendered" else SensorData.NONE
pool = start_pool(IndexSettings(), 1, data)
first = pool.submit(probe.state).result(timeout=300)
pool.submit(probe.die)  # the daemon's pool replaces a worker that died: so does this test
try:
    pool.submit(probe.state).result(timeout=300)
except Exception:
    pass
pool.shutdown(wait=True)
pool = start_pool(IndexSettings(), 1, data)  # the daemon's next pool: same forkserver
print(json.dumps([first, pool.submit(probe.state).result(timeout=300)]))
pool.shutdown(wait=True)
'''
WATCH_PROBE = '''
import os, sys
def state():
    from indexer.sensor import kernels
    return {"numba": "numba" in sys.modules, "loaded": bool(kernels._rgb_strips.overloads)}
def die():
    os._exit(1)
'''


def _watch_workers_state(tmp_path: Path, mode: str) -> list[dict]:
    (tmp_path / "probe.py").write_text(WATCH_PROBE)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(tmp_path)]))
    out = subprocess.run([sys.executable, "-c", WATCH_SCRIPT, mode], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(sys.platform != "linux", reason="forkserver preload: Linux")
def test_the_watch_pool_preloads_the_kernels_even_with_one_worker_and_after_a_crash(tmp_path):
    """``watch``'s long-lived pool (``run.start_pool``): every worker it ever forks, the
    first one and the one that replaces a crashed worker, starts with the kernels loaded."""
    assert _watch_workers_state(tmp_path, "rendered") == [{"numba": True, "loaded": True}] * 2


@pytest.mark.skipif(sys.platform != "linux", reason="forkserver preload: Linux")
def test_the_watch_pool_of_a_daemon_that_learns_nothing_does_not_load_them(tmp_path):
    assert _watch_workers_state(tmp_path, "none") == [{"numba": True, "loaded": False}] * 2
