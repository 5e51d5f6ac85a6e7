"""``photoqa report --html DIR``: the demo database's pages as static files. Every link
must resolve to a written file, the groups and keepers must be those of
``photoqa dupes --format json``, nothing may point at the network, thumbnails are JPEG."""
from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

import imagefiles as F
from cli import main
from indexer.synthetic import scenes as synth
from indexer.web.report import disable_forms, static_name

LINK = re.compile(r'\b(?:href|src)="([^"]*)"')


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo")
    assert CliRunner().invoke(main, ["demo", str(folder), "-j", "1"]).exit_code == 0
    out = tmp_path_factory.mktemp("report") / "site"
    opts = ["--db", str(folder / "photoqa.db"), "--config", str(folder / "photoqa-demo.toml")]
    result = CliRunner().invoke(main, [*opts, "report", "--html", str(out)])
    assert result.exit_code == 0, result.output
    dupes = CliRunner().invoke(main, [*opts, "dupes", "--format", "json"])
    return folder, out, json.loads(dupes.stdout), result


def links(page: Path) -> list[str]:
    return [html.unescape(u) for u in LINK.findall(page.read_text(encoding="utf-8"))]


def test_every_link_resolves_to_a_written_file_and_none_leaves_the_folder(exported):
    _, out, _, _ = exported
    pages = sorted(out.glob("*.html"))
    assert {"index.html", "groups-1.html", "exposure.html", "sensors.html", "sql.html"} <= {p.name for p in pages}
    targets = {u for p in pages for u in links(p)}
    assert targets, "no links at all"
    for url in targets:
        assert not re.match(r"^[a-z]+:|^//|^/", url), f"{url}: not a relative file name"
        assert (out / url).is_file(), f"{url} is linked but not written"
    # what was written is what the pages link to (besides the entry page): nothing orphaned
    written = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert written - targets <= {"index.html"}
    css = (out / "style.css").read_text()
    assert "url(" not in css and "@import" not in css


def test_groups_and_keepers_are_those_of_dupes(exported):
    folder, out, dupes, _ = exported
    page = (out / "groups-1.html").read_text(encoding="utf-8")
    cards = re.findall(r'<section class="group" id="group-(\d+)" data-group="\d+" data-members="(\d+)"', page)
    assert len(cards) == dupes["summary"]["groups"] == 4
    assert {int(g): int(n) for g, n in cards} == {g["id"]: len(g["files"]) for g in dupes["groups"]}
    for g in dupes["groups"]:
        card = (out / f"group-{g['id']}.html").read_text(encoding="utf-8")
        keepers = re.findall(r'class="member keeper" data-role="keeper" data-path="([^"]+)"', card)
        assert [html.unescape(k) for k in keepers] == [g["keeper"]]
        assert f'href="group-{g["id"]}.html"' in page
    assert str(folder / "scene0.jpg") in page


def test_no_action_can_be_taken_from_the_copy(exported):
    _, out, _, _ = exported
    for p in out.glob("*.html"):
        text = p.read_text(encoding="utf-8")
        assert "<form" not in text and 'name="csrf"' not in text, p.name
    group = next(out.glob("group-*.html")).read_text(encoding="utf-8")
    assert re.search(r"<button [^>]*disabled[^>]*>trash the others</button>", group)
    assert "<pre class=\"example\">SELECT" in (out / "sql.html").read_text(encoding="utf-8")
    assert "Actions</a>" not in (out / "index.html").read_text(encoding="utf-8")


def test_thumbnails_are_jpeg_and_pair_pictures_png(exported):
    _, out, dupes, _ = exported
    thumbs = sorted((out / "thumbs").iterdir())
    assert len({t.name.split("-")[0].split(".")[0] for t in thumbs}) >= dupes["summary"]["files"]
    for t in thumbs:
        assert t.read_bytes()[:3] == b"\xff\xd8\xff", t.name
        with Image.open(t) as im:
            assert im.format == "JPEG" and max(im.size) <= 640
    pngs = sorted((out / "pairs").iterdir())
    assert pngs and all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)


def test_progress_goes_to_stderr_and_a_non_empty_folder_is_refused(exported):
    folder, out, _, result = exported
    assert re.search(r"^report: \d+ pages written, \d+ to go$", result.stderr, re.M)
    assert result.stdout.startswith(f"wrote {out / 'index.html'}:")
    again = CliRunner().invoke(main, ["--db", str(folder / "photoqa.db"), "report", "--html", str(out)])
    assert again.exit_code == 1 and "is not empty" in again.stderr and "--html" in again.stderr


def test_groups_are_paged_and_pair_pictures_can_be_left_out(exported, tmp_path):
    folder, _, dupes, _ = exported
    out = tmp_path / "paged"
    result = CliRunner().invoke(main, ["--db", str(folder / "photoqa.db"), "--config", str(folder / "photoqa-demo.toml"),
                                       "report", "--html", str(out), "--per-page", "3", "--no-pair-pictures"])
    assert result.exit_code == 0, result.output
    first, second = (out / "groups-1.html").read_text(), (out / "groups-2.html").read_text()
    assert not (out / "groups-3.html").exists() and not (out / "pairs").exists()
    assert 'href="groups-2.html">next</a>' in first and 'href="groups-1.html">previous</a>' in second
    ids = [int(g) for page in (first, second) for g in re.findall(r'<section class="group" id="group-(\d+)"', page)]
    assert len(ids) == 4 and sorted(ids) == sorted(g["id"] for g in dupes["groups"])
    assert 'href="groups-1.html"' in (out / "index.html").read_text()  # the menu's Duplicates
    pair = next(out.glob("pair-*.html")).read_text()
    assert "pairs/" not in pair and 'id="no-pictures"' in pair and "<img" in pair  # the thumbnails stay


def test_a_file_gone_since_indexing_leaves_its_pictures_out_not_the_export(tmp_path):
    folder = tmp_path / "photos"
    img = Image.fromarray(synth.scene(64, 480, 360))
    F.save(folder / "IMG_9.jpg", img, "JPEG", quality=92)
    F.save(folder / "IMG_9_small.jpg", img.resize((240, 180), Image.Resampling.LANCZOS), "JPEG", quality=90)
    db = tmp_path / "photoqa.db"
    assert CliRunner().invoke(main, ["--db", str(db), "index", str(folder), "-j", "1"]).exit_code == 0
    (folder / "IMG_9_small.jpg").unlink()  # the row still says present: nothing rescanned
    out = tmp_path / "site"
    result = CliRunner().invoke(main, ["--db", str(db), "report", "--html", str(out)])
    assert result.exit_code == 0, result.output
    (pair,) = out.glob("pair-*.html")
    a, b = pair.stem.split("-")[1:]
    assert f"report: /pair/{a}/{b}/a_minus_b.png answered 422; left out" in result.stderr
    assert "pairs/" not in pair.read_text() and not (out / "pairs").exists()
    for url in links(pair):
        assert (out / url).is_file(), url
    assert all(t.read_bytes()[:3] == b"\xff\xd8\xff" for t in (out / "thumbs").iterdir())  # the stored grey one
    assert len(list((out / "thumbs").glob("*.jpg"))) >= 2


def test_static_names():
    assert static_name("/") == "index.html"
    assert static_name("/groups?sort=bytes&per=25&page=2") == "groups-2.html"
    assert static_name("/groups?sort=size&page=2") is None  # only the default order is exported
    assert static_name("/groups") == static_name("/groups?per=10", per_page=10) == "groups-1.html"
    assert static_name("/groups?page=2", per_page=10) is None  # 25 a page: not what was exported
    assert static_name("/groups/14") == "group-14.html" and static_name("/image/3") == "image-3.html"
    assert static_name("/thumb/3.jpg?size=320") == "thumbs/3.jpg"
    assert static_name("/thumb/3.jpg?size=640") == "thumbs/3-640.jpg"
    assert static_name("/pair/3/4") == "pair-3-4.html"
    assert static_name("/pair/3/4/a_minus_b.png") == "pairs/3-4-a_minus_b.png"
    assert static_name("/pair/3/4/a_minus_b.png", pair_pictures=False) is None
    for elsewhere in ("/actions", "/sql?q=SELECT+1", "/sql.csv?q=x", "http://example.com/", "//example.com/x.png",
                      "/thumb/../etc/passwd"):
        assert static_name(elsewhere) is None, elsewhere


def test_disable_forms_keeps_the_buttons_disabled():
    page = ('<p><form class="inline" method="post" action="/act/trash"><input type="hidden" name="csrf" value="s">'
            '<button type="submit">trash the others</button></form></p>')
    assert disable_forms(page) == ('<p><button type="button" disabled title="a static copy: run photoqa serve '
                                   'to act">trash the others</button></p>')
