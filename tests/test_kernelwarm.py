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
