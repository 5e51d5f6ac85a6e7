"""docs/WATCH.md's systemd recipe: the unit it shows is the file in the repository, and
systemd accepts it."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
UNIT = DOCS / "photoqa-watch@.service"


def test_the_doc_shows_the_unit_file_verbatim():
    shown = re.search(r"```ini\n(.*?)```", (DOCS / "WATCH.md").read_text(), re.S)
    assert shown and shown.group(1) == UNIT.read_text()
    recipe = (DOCS / "WATCH.md").read_text()
    assert "useradd --system" in recipe and "sudo -u photoqa /opt/photoqa/venv/bin/photoqa" in recipe


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_verifies_the_unit(tmp_path):
    """``systemd-analyze verify`` on an instance of the template, its ExecStart pointed at
    this venv's photoqa (verify checks that the command exists); any complaint about the
    file (an unknown key, a value it cannot parse) fails the test."""
    photoqa = Path(sys.executable).with_name("photoqa")
    if not photoqa.exists():
        pytest.skip("no photoqa entry point beside this Python (install with pip install -e .)")
    unit = tmp_path / "photoqa-watch@incoming.service"
    unit.write_text(UNIT.read_text().replace("/opt/photoqa/venv/bin/photoqa", str(photoqa)))
    done = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    complaints = [ln for ln in (done.stdout + done.stderr).splitlines() if unit.name in ln]
    assert done.returncode == 0 and not complaints, done.stdout + done.stderr
