"""``photoqa index`` of a folder keeps serial work out of its writer: verification goes to
the pool from the first job when the run has ``[match] pool_files`` files or more (the
writer never loads numba), and the workers' forkserver is started before the command's
own imports (``pipeline.pools.prestart``).

Each case is the real command in a fresh interpreter (a process has one forkserver, and
``sys.modules`` of the writer is what is checked).
"""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from indexer.synthetic import scenes as synth

REPO = Path(__file__).resolve().parent.parent
# the command as a program (cli._PROCESS), then what its own process loaded
SCRIPT = '''
import json, runpy, sys
sys.argv = ["cli.py", *sys.argv[1:]]
code = 0
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
except SystemExit as exc:
    code = exc.code or 0
from multiprocessing import forkserver
server = forkserver._forkserver._forkserver_pid
maps = open(f"/proc/{server}/maps").read() if server else ""
print(json.dumps({"code": code, "numba": "numba" in sys.modules, "server_pil": "PIL/_imaging" in maps}))
'''

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="forkserver: Linux")


def _photos(folder: Path, n: int) -> None:
    """``n`` scenes and a mirrored copy of each: ``n`` derived pairs to verify."""
    folder.mkdir()
    for i in range(n):
        rgb = synth.scene(60 + i, 320, 240)
        Image.fromarray(rgb).save(folder / f"s{i}.png")
        Image.fromarray(np.fliplr(rgb).copy()).save(folder / f"s{i}_mirror.png")


def _index(tmp_path: Path, toml: str) -> tuple[dict, list[str]]:
    folder, db = tmp_path / "photos", tmp_path / "photoqa.db"
    _photos(folder, 5)
    (tmp_path / "photoqa.toml").write_text(toml)
    cli = str(REPO / "cli.py")
    out = subprocess.run([sys.executable, "-c", SCRIPT.replace("sys.argv[0]", repr(cli)),
                          "--db", str(db), "index", str(folder), "--workers", "2"],
                         cwd=tmp_path, env=dict(os.environ, PYTHONPATH=str(REPO)),
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    state = json.loads(out.stdout.strip().splitlines()[-1])
    with sqlite3.connect(db) as conn:
        verdicts = sorted(v for (v,) in conn.execute("SELECT verdict FROM pairs"))
    return state, verdicts


def test_a_folder_run_verifies_in_the_pool_and_never_loads_numba_in_the_writer(tmp_path):
    # 10 files >= pool_files (8): the pool from the first job; the pairs are found all the same
    state, verdicts = _index(tmp_path, "[match]\npool_after = 1e9\n")
    assert verdicts == ["derived"] * 5
    assert state == {"code": 0, "numba": False, "server_pil": True}


def test_below_pool_files_the_writer_verifies_itself(tmp_path):
    """The same run with the count rule off (``pool_files = 0``) and ``pool_after`` never
    reached: every job inline, so the writer loads numba; this is what the rule saves."""
    state, verdicts = _index(tmp_path, "[match]\npool_after = 1e9\npool_files = 0\n")
    assert verdicts == ["derived"] * 5
    assert state["numba"] is True and state["server_pil"] is True
