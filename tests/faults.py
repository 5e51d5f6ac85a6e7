"""Helpers of the fault-injection tests: damaged databases, small or read-only mounts."""
from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def damage_tables(db: Path, tables: tuple[str, ...]) -> list[int]:
    """Overwrite the root pages of ``tables`` and their indexes with junk; returns the pages.

    Damage in the middle of the file: the header, the schema and the other tables stay
    readable, so a command opens the database and meets the damage later.
    """
    con = sqlite3.connect(db)
    page_size = con.execute("PRAGMA page_size").fetchone()[0]
    marks = ",".join("?" * len(tables))
    roots = [r[0] for r in con.execute(
        f"SELECT rootpage FROM sqlite_master WHERE tbl_name IN ({marks}) AND rootpage > 0", tables)]
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    with open(db, "r+b") as handle:
        for page in roots:
            handle.seek((page - 1) * page_size)
            handle.write(b"\xa5" * page_size)
    return roots


@contextmanager
def tmpfs(where: Path, size: str = "4m"):
    """A tmpfs of ``size`` mounted at ``where`` (root only: the test is skipped otherwise)."""
    where.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                          capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def remount(where: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(where)], check=True)


def photoqa(*args, timeout: float = 120, env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    """Run the CLI in a process of its own (real signals, real exits)."""
    full = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run([sys.executable, str(REPO / "cli.py"), *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=full, **kwargs)


def one_line_error(result: subprocess.CompletedProcess) -> str:
    """The single ``photoqa: ...`` line of a failed command (asserts there is only that)."""
    assert result.returncode != 0, result
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert "Traceback" not in result.stderr and "sqlalche.me" not in result.stderr, result.stderr
    assert len(lines) == 1 and lines[0].startswith("photoqa: "), result.stderr
    return lines[0]


def cli_in_process(*args) -> subprocess.CompletedProcess:
    """The CLI in this process (click's runner): as :func:`photoqa` without a start-up per call."""
    from click.testing import CliRunner

    from cli import main

    result = CliRunner().invoke(main, [str(a) for a in args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return subprocess.CompletedProcess(args, result.exit_code, result.stdout, result.stderr)
