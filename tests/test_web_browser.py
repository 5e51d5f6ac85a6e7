"""``photoqa serve`` in a real browser: Debian's Chromium, headless, on a live server
started as a subprocess over the demo database. The DOM is checked against SQL, every
request the pages make must go to the server itself (from Chromium's net log), and
screenshots are saved under the test's temp folder (look at them while developing).
Then trash, undo and keep are clicked through (the DevTools Protocol, :mod:`cdp`) on a
planted group in a temp folder, and the disk is checked after each step."""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

import imagefiles as F

from cli import main
from db.queries import run_sql
from indexer.session import open_session
from indexer.synthetic import scenes as synth

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Chromium's own background traffic (updates, sync, time) is switched off: only the page's requests are left
QUIET = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-default-apps", "--disable-domain-reliability",
         "--disable-client-side-phishing-detection", "--disable-features=Translate,OptimizationHints,MediaRouter"]

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(args: list[str], env: dict | None = None) -> tuple[subprocess.Popen, str]:
    """``photoqa ARGS serve`` on a free port, as a subprocess; (process, base URL) once it listens."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "cli.py", *args, "serve", "--port", str(port)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.2)
    return proc, f"http://127.0.0.1:{port}"


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo")
    assert CliRunner().invoke(main, ["demo", str(folder), "-j", "1"]).exit_code == 0
    proc, base = start_server(["--db", str(folder / "photoqa.db"), "--config", str(folder / "photoqa-demo.toml")])
    yield folder, base
    stop(proc)


def browse(url: str, work: Path, name: str) -> tuple[str, list[tuple[str, str]]]:
    """(the DOM after loading ``url``, [(requested URL, initiator)]); a screenshot saved as name.png."""
    log = work / f"{name}.netlog.json"
    profile = work / f"{name}.profile"
    dom = subprocess.run([CHROMIUM, *QUIET, f"--user-data-dir={profile}", f"--log-net-log={log}",
                          "--virtual-time-budget=15000", "--dump-dom", url],
                         capture_output=True, text=True, timeout=120).stdout
    subprocess.run([CHROMIUM, *QUIET, f"--user-data-dir={profile}", "--window-size=1300,1800",
                    "--virtual-time-budget=15000", f"--screenshot={work / (name + '.png')}", url],
                   capture_output=True, timeout=120)
    events = json.loads(log.read_text())["events"]
    requests = [(e["params"]["url"], e["params"]["initiator"]) for e in events
                if "url" in (e.get("params") or {}) and "initiator" in e["params"]]
    return dom, requests


def test_pages_in_chromium(server, tmp_path):
    folder, base = server
    engine = open_session(str(folder / "photoqa.db"), readonly=True).engine
    _, groups = run_sql(engine, "SELECT g.group_id, count(*), sum(CASE WHEN g.is_keeper THEN g.image_id END) "
                                "FROM image_groups g JOIN images i ON i.id = g.image_id "
                                "WHERE i.missing_since IS NULL GROUP BY g.group_id HAVING count(*) > 1")
    _, verdicts = run_sql(engine, "SELECT p.verdict FROM pairs p JOIN image_groups g ON g.image_id = p.a_id "
                                  "JOIN image_groups h ON h.image_id = p.b_id AND h.group_id = g.group_id")
    dom, requests = browse(f"{base}/groups", tmp_path, "groups")
    cards = dict(re.findall(r'id="group-(\d+)" data-group="\d+" data-members="(\d+)"', dom))
    assert cards == {str(g): str(n) for g, n, _ in groups} and len(cards) == 4
    for g, _, keeper in groups:
        card = re.search(rf'id="group-{g}".*?</section>', dom, re.S).group(0)
        assert re.search(rf'class="member keeper" data-role="keeper" data-path="[^"]+" data-image="{keeper}"', card)
    assert sorted(re.findall(r'<tr class="pair" data-verdict="(\w+)"', dom)) == sorted(v for v, in verdicts)
    page_requests = [u for u, initiator in requests if initiator == base]
    assert sum("/thumb/" in u for u in page_requests) == sum(int(n) for n in cards.values())
    assert all(u.startswith(base + "/") for u, initiator in requests if initiator == base), page_requests
    _, defects = run_sql(engine, "SELECT count(*) FROM sensor_defects")
    dom, _ = browse(f"{base}/sensors", tmp_path, "sensors")
    assert len(re.findall(r'<rect class="defect ', dom)) == defects[0][0] == 9
    for name in ("overview", "exposure", "sql"):
        dom, requests = browse(f"{base}/{'' if name == 'overview' else name}", tmp_path, name)
        assert "photoqa" in dom and (tmp_path / f"{name}.png").stat().st_size > 10_000
        assert all(u.startswith(base + "/") for u, initiator in requests if initiator == base)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def on_disk(folder: Path) -> dict[str, tuple[str, int]]:
    """relative path -> (SHA-256, mtime in ns) of every file under ``folder``."""
    return {str(p.relative_to(folder)): (sha(p), p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()}


def test_trash_undo_and_keep_clicked_in_chromium(tmp_path):
    cdp = pytest.importorskip("cdp", reason="websocket-client is not installed (pip install -e '.[test]')")
    folder = tmp_path / "photos"
    img = Image.fromarray(synth.scene(63, 480, 360))
    F.save(folder / "IMG_7.jpg", img, "JPEG", quality=92)
    F.save(folder / "copy" / "IMG_7.jpg", img, "JPEG", quality=92)
    F.save(folder / "IMG_7_small.jpg", img.resize((240, 180), Image.Resampling.LANCZOS), "JPEG", quality=90)
    db = tmp_path / "photoqa.db"
    assert CliRunner().invoke(main, ["--db", str(db), "index", str(folder), "-j", "1"]).exit_code == 0
    (keeper,), = run_sql(open_session(str(db), readonly=True).engine,
                         "SELECT g.group_id FROM image_groups g JOIN images i ON i.id = g.image_id "
                         "WHERE i.path = :p AND g.is_keeper", {"p": str(folder / "IMG_7.jpg")})[1]
    before = on_disk(folder)
    trash = tmp_path / "xdg" / "Trash" / "files"
    proc, base = start_server(["--db", str(db)], env={**os.environ, "XDG_DATA_HOME": str(tmp_path / "xdg")})
    try:
        with cdp.Browser(CHROMIUM, tmp_path / "profile", QUIET) as page:
            page.goto(f"{base}/groups/{keeper}")
            page.screenshot(tmp_path / "1-group.png")
            assert page.evaluate("document.querySelectorAll('.member').length") == 3
            page.click('form[action="/act/trash"] button')
            plan = page.text("#plan")
            assert str(folder / "copy" / "IMG_7.jpg") in plan and str(folder / "IMG_7_small.jpg") in plan
            assert str(folder / "IMG_7.jpg") + " ->" not in plan
            assert on_disk(folder) == before, "the confirmation page already acted"
            page.screenshot(tmp_path / "2-confirm.png")
            page.click("#confirm")
            assert "Trashed: batch" in page.text("h1") and "2 done, 0 skipped" in page.text()
            page.screenshot(tmp_path / "3-trashed.png")
            assert on_disk(folder) == {"IMG_7.jpg": before["IMG_7.jpg"]}  # the keeper, untouched
            assert sorted(sha(p) for p in trash.iterdir()) == sorted(
                before[k][0] for k in ("copy/IMG_7.jpg", "IMG_7_small.jpg"))
            page.click('a[href="/actions"]')
            page.screenshot(tmp_path / "4-actions.png")
            page.click('form[action="/act/undo"] button')
            assert "put back" in page.text("#plan")
            page.click("#confirm")
            assert "Undone: batch" in page.text("h1") and "2 files restored, 0 skipped" in page.text()
            page.screenshot(tmp_path / "5-undone.png")
            assert on_disk(folder) == before  # byte-identical, times kept
            assert not any(trash.iterdir())
            # keep this one: a decision, recorded; no file is touched
            small = folder / "IMG_7_small.jpg"
            page.goto(f"{base}/groups/{keeper}")
            page.click(f'.member[data-path="{small}"] form[action="/act/keep"] button')
            assert page.text("h1") == "Keep this one?" and on_disk(folder) == before
            page.click("#confirm")
            assert page.text("h1") == "Recorded: keep"
            page.click("main a")  # back: the group, now under its new keeper's id
            assert page.evaluate("document.querySelector('.member.keeper').dataset.path") == str(small)
            page.screenshot(tmp_path / "6-kept.png")
            assert on_disk(folder) == before
            assert page.requests and all(u.startswith(base + "/") or u == "about:blank" for u in page.requests), \
                page.requests
    finally:
        stop(proc)
