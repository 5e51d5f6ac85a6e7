"""Every input a fuzz harness ever kept (tests/fuzz/corpus/NAME/) still obeys the rule:
a result or the project's own error type, in bounded time and memory, no crash. Each
target replays in a process of its own, so a native crash fails the test, not the suite."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HARNESS = Path(__file__).resolve().parent / "fuzz" / "harness.py"
CORPUS = HARNESS.parent / "corpus"
NAMES = sorted(p.name for p in CORPUS.iterdir() if p.is_dir() and any(p.iterdir())) if CORPUS.is_dir() else []


@pytest.mark.parametrize("name", NAMES)
def test_kept_fuzz_inputs_replay_cleanly(name):
    result = subprocess.run([sys.executable, str(HARNESS), "replay", name], capture_output=True, text=True,
                            timeout=600, env={**os.environ, "PYTHONFAULTHANDLER": "1"})
    assert result.returncode == 0, result.stderr[-3000:]


def test_every_target_is_listed_and_has_seeds():
    result = subprocess.run([sys.executable, str(HARNESS), "list"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert set(result.stdout.split()) == {"sniff", "exif", "decode", "raw", "tiff16", "match_index", "accumulator"}
    assert set(NAMES) <= set(result.stdout.split())


def test_the_mutation_loop_finds_a_planted_bug(tmp_path, monkeypatch):
    """The fallback loop (no atheris) can fail: a target that raises a foreign error on
    inputs starting with 0xFF is caught within seconds and its input kept."""
    sys.path.insert(0, str(HARNESS.parent))
    import harness

    def buggy(data: bytes) -> None:
        if data[:1] == b"\xff":
            raise IndexError("planted")

    monkeypatch.setattr(harness, "CORPUS", tmp_path)
    target = harness.Target("planted", buggy, (), lambda: [b"\x00\x01\x02"])
    assert harness.mutation_loop(target, 3.0) > 0
    kept = list((tmp_path / "planted").iterdir())
    assert len(kept) == 1 and kept[0].read_bytes()[:1] == b"\xff"
