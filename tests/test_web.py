"""``photoqa serve``: the pages over the demo database (planted duplicates, exposure
variants, a camera with 6 hot and 3 dead photosites), checked against SQL and the
reports; the guards; trash and undo through the pages on real files."""
from __future__ import annotations

import hashlib
import io
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image
from starlette.testclient import TestClient

import imagefiles as F
from cli import main
from db.queries import run_sql
from indexer.commands.dupes import dupes_report
from indexer.session import open_session
from indexer.synthetic import scenes as synth
from indexer.web import charts
from indexer.web.app import ServeOptions, create_app

REPO = Path(__file__).resolve().parent.parent
LOCAL = "http://127.0.0.1:8765"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo")
    result = CliRunner().invoke(main, ["demo", str(folder), "-j", "1"])
    assert result.exit_code == 0, result.output
    return folder


@pytest.fixture(scope="module")
def client(demo):
    app = create_app(ServeOptions(db=str(demo / "photoqa.db"), config=str(demo / "photoqa-demo.toml")))
    with TestClient(app, base_url=LOCAL) as c:
        yield c


def sql(folder: Path, statement: str, params: dict | None = None) -> list[tuple]:
    return run_sql(open_session(str(folder / "photoqa.db"), readonly=True).engine, statement, params)[1]


def image_id(folder: Path, name: str) -> int:
    (row,) = sql(folder, "SELECT id FROM images WHERE path = :p", {"p": str(folder / name)})
    return row[0]


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def test_overview_counts_match_sql(client, demo):
    html = client.get("/").text
    (images,), = sql(demo, "SELECT count(*) FROM images WHERE missing_since IS NULL")
    (failures,), = sql(demo, "SELECT count(*) FROM failures")
    assert re.search(r'id="count-images"><b>(\d+)</b>', html).group(1) == str(images) == "23"
    assert re.search(r'id="count-failures"><b>(\d+)</b>', html).group(1) == str(failures) == "1"
    assert re.search(r'id="count-groups"><b>(\d+)</b>', html).group(1) == "4"
    assert html.count("<svg") == 4 and "pairs per verdict" in html and "EV of every image" in html
    assert "daemon running</th><td>no" in html
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")  # nothing from the network


def test_groups_page_shows_the_planted_group_and_its_keeper(client, demo):
    html = client.get("/groups").text
    keeper = str(demo / "scene0.jpg")
    sections = re.findall(r'<section class="group" id="group-(\d+)".*?</section>', html, re.S)
    assert len(sections) == 4
    group = image_id(demo, "scene0.jpg")
    card = re.search(rf'<section class="group" id="group-{group}".*?</section>', html, re.S).group(0)
    roles = dict((path, role) for role, path in re.findall(r'data-role="(\w+)" data-path="([^"]+)"', card))
    assert roles == {keeper: "keeper", str(demo / "scene0_copy.jpg"): "copy", str(demo / "scene0_small.jpg"): "copy"}
    assert "identical file" in card and "resized" in card and 'data-verdict="same_file"' in card
    data = client.get("/groups?format=json").json()
    report = dupes_report(open_session(str(demo / "photoqa.db"), str(demo / "photoqa-demo.toml")))
    assert [g["id"] for g in data["groups"]] == [g["id"] for g in report["groups"]]
    assert [g["keeper_reason"] for g in data["groups"]] == [g["keeper_reason"] for g in report["groups"]]
    first = client.get("/groups?per=1&page=2&sort=count&format=json").json()
    assert first["page"] == 2 and first["pages"] == 4 and len(first["groups"]) == 1
    assert client.get("/groups/999999").status_code == 404


def test_thumbnails_only_for_rows(client, demo):
    got = client.get(f"/thumb/{image_id(demo, 'scene1_rotated.jpg')}.jpg?size=160")
    assert got.status_code == 200 and got.headers["content-type"] == "image/jpeg"
    img = Image.open(io.BytesIO(got.content))
    assert img.size == (120, 160)  # the 480x640 file, long side 160, orientation as displayed
    (top,), = sql(demo, "SELECT max(id) FROM images")
    for url in (f"/thumb/{top + 1}.jpg", "/thumb/0.jpg", "/thumb/-1.jpg", "/thumb/..%2f..%2fetc%2fpasswd",
                "/thumb/1.jpg/../../../etc/passwd", "/static/../../cli.py", "/static/%2e%2e/app.py",
                "/pair/1/999999/a.png"):
        assert client.get(url).status_code == 404, url


def test_a_trashed_files_thumbnail_comes_from_its_row(client, demo, tmp_path):
    state = client.app.state.photoqa
    path, stored = state.thumbs.lookup(image_id(demo, "scene5.jpg"))
    data = state.thumbs.make(str(tmp_path / "gone.jpg"), 320, stored, exists=False)
    assert Image.open(io.BytesIO(data)).size == stored.shape[::-1]


def test_sql_page_reads_and_refuses_writes(client, demo):
    html = client.get("/sql", params={"q": "SELECT path FROM images WHERE path LIKE '%scene3_dark%'"}).text
    assert str(demo / "scene3_dark.jpg") in html and 'id="csv"' in html
    csv = client.get("/sql.csv", params={"q": "SELECT id, path FROM images ORDER BY id"})
    assert csv.headers["content-type"].startswith("text/csv") and len(csv.text.strip().splitlines()) == 24
    for statement in ("DELETE FROM images", "UPDATE images SET ev = 0", "DROP TABLE pairs",
                      f"ATTACH DATABASE '{demo / 'x.db'}' AS x"):
        refused = client.get("/sql", params={"q": statement})
        assert refused.status_code == 400 and "refused" in refused.text, statement
    assert sql(demo, "SELECT count(*) FROM images")[0][0] == 23 and not (demo / "x.db").exists()
    assert "darkest ten photos" in client.get("/sql").text


def test_example_queries_are_the_documented_ones():
    from indexer.web.routes_more import example_queries

    doc = (REPO / "docs" / "SCHEMA.md").read_text(encoding="utf-8")
    examples = example_queries()
    assert len(examples) >= 10
    for title, statement in examples:
        assert f"-- {title}\n{statement}" in doc


def test_sensors_page_shows_the_planted_defects(client, demo):
    html = client.get("/sensors").text
    (count,), = sql(demo, "SELECT count(*) FROM sensor_defects")
    assert count == 9
    assert html.count('class="defect hot"') == 6 and html.count('class="defect dead"') == 3
    assert html.count('<tr class="defect">') == 9 and "10 frames learnt from" in html


def test_exposure_page_and_pair_pictures(client, demo):
    html = client.get("/exposure").text
    assert str(demo / "scene3_dark.jpg") in html and "-1.00" in html
    gallery = re.findall(r'<figure data-path="([^"]+)"', html)
    assert gallery and all(p.startswith(str(demo)) for p in gallery)
    a, b = sorted([image_id(demo, "scene3.jpg"), image_id(demo, "scene3_dark.jpg")])
    assert client.get(f"/pair/{a}/{b}").status_code == 200
    curve = client.get(f"/pair/{a}/{b}/transfer_curve.png")
    assert curve.status_code == 200 and Image.open(io.BytesIO(curve.content)).format == "PNG"
    assert client.get(f"/pair/{a}/{b}/secrets.png").status_code == 404


def test_image_page_lists_measurements_flags_and_pairs(client, demo):
    html = client.get(f"/image/{image_id(demo, 'scene3_dark.jpg')}").text
    (sharpness,), = sql(demo, "SELECT sharpness FROM images WHERE path LIKE '%scene3_dark.jpg'")
    assert f"<th>sharpness</th><td>{sharpness}</td>" in html
    assert 'data-verdict="' in html and "scene3.jpg" in html and "histogram (R, G, B, luma" in html
    assert client.get("/image/999999").status_code == 404


def test_guards(demo):
    app = create_app(ServeOptions(db=str(demo / "photoqa.db"), config=str(demo / "photoqa-demo.toml")))
    with TestClient(app, base_url=LOCAL) as c:
        assert c.get("/", headers={"host": "evil.example:8765"}).status_code == 403  # DNS rebinding
        assert c.post("/act/keep", data={"image": "1"}).status_code == 403  # no form token
        token = csrf_of(c.get("/groups").text)
        assert c.post("/act/keep", data={"image": "1", "csrf": token},
                      headers={"origin": "http://evil.example"}).status_code == 403
        assert c.post("/act/keep", data={"image": "1", "csrf": token}).status_code == 200  # the confirmation
        assert c.request("DELETE", "/groups").status_code == 403
    remote = create_app(ServeOptions(db=str(demo / "photoqa.db"), host="0.0.0.0", token="s3cret"))
    with TestClient(remote, base_url="http://192.0.2.1:8765") as c:
        assert c.get("/").status_code == 403 and c.get("/?token=wrong").status_code == 403
        assert c.get("/thumb/1.jpg").status_code == 403
        assert c.get("/?token=s3cret").status_code == 200
        assert c.get("/groups").status_code == 200  # the cookie
        html = c.get("/groups").text
        assert "disabled" in html
        assert c.post("/act/trash", data={"group": "1", "csrf": csrf_of(html)}).status_code == 403  # actions off


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_trash_through_the_page_then_undo_restores_bytes(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    folder = tmp_path / "photos"
    img = Image.fromarray(synth.scene(61, 480, 360))
    F.save(folder / "IMG_1.jpg", img, "JPEG", quality=92)
    F.save(folder / "copy" / "IMG_1.jpg", img, "JPEG", quality=92)
    F.save(folder / "IMG_1_small.jpg", img.resize((240, 180), Image.Resampling.LANCZOS), "JPEG", quality=90)
    db = tmp_path / "photoqa.db"
    assert CliRunner().invoke(main, ["--db", str(db), "index", str(folder), "-j", "1"]).exit_code == 0
    before = {p: (sha(p), p.stat().st_mtime_ns) for p in folder.rglob("*.jpg")}
    app = create_app(ServeOptions(db=str(db)))
    with TestClient(app, base_url=LOCAL) as c:
        (g,) = c.get("/groups?format=json").json()["groups"]
        csrf = csrf_of(c.get("/groups").text)
        shown = c.post("/act/trash", data={"group": g["id"], "csrf": csrf})
        assert shown.status_code == 200 and "Yes, do it" in shown.text
        assert {p: (sha(p), p.stat().st_mtime_ns) for p in folder.rglob("*.jpg")} == before  # nothing yet
        plan = re.search(r'name="plan" value="([^"]+)"', shown.text).group(1)
        done = c.post("/act/trash", data={"group": g["id"], "csrf": csrf, "plan": plan, "confirm": "yes"})
        assert "2 done, 0 skipped" in done.text
        assert sorted(p.name for p in folder.rglob("*.jpg")) == ["IMG_1.jpg"] and (folder / "IMG_1.jpg").exists()
        assert c.get("/groups?format=json").json()["groups"] == []
        assert "undo" in c.get("/actions").text
        c.post("/act/undo", data={"csrf": csrf, "confirm": "yes"})
        assert {p: (sha(p), p.stat().st_mtime_ns) for p in folder.rglob("*.jpg")} == before
        assert len(c.get("/groups?format=json").json()["groups"]) == 1


def test_keep_and_not_duplicates_through_the_page(tmp_path):
    folder = tmp_path / "photos"
    img = Image.fromarray(synth.scene(62, 480, 360))
    F.save(folder / "a.jpg", img, "JPEG", quality=92)
    F.save(folder / "b.png", img, "PNG")
    F.save(folder / "c_small.jpg", img.resize((240, 180), Image.Resampling.LANCZOS), "JPEG", quality=90)
    db = tmp_path / "photoqa.db"
    assert CliRunner().invoke(main, ["--db", str(db), "index", str(folder), "-j", "1"]).exit_code == 0
    with TestClient(create_app(ServeOptions(db=str(db))), base_url=LOCAL) as c:
        csrf = csrf_of(c.get("/groups").text)
        (g,) = c.get("/groups?format=json").json()["groups"]
        small = next(m for m in g["members"] if m["path"].endswith("c_small.jpg"))
        c.post("/act/keep", data={"image": small["id"], "csrf": csrf, "confirm": "yes"})
        (g,) = c.get("/groups?format=json").json()["groups"]
        assert g["keeper"].endswith("c_small.jpg")
        other = next(m for m in g["members"] if m["role"] != "keeper")
        c.post("/act/not-duplicates", data={"a": small["id"], "b": other["id"], "csrf": csrf, "confirm": "yes"})
        groups = c.get("/groups?format=json").json()["groups"]
        assert all(not {small["path"], other["path"]} <= {m["path"] for m in x["members"]} for x in groups)
        # a decision made outside the server (the CLI) shows on the next page: the cached report is dropped
        assert CliRunner().invoke(main, ["--db", str(db), "dupes", "--keep", str(folder / "b.png")]).exit_code == 0
        assert any(x["keeper"].endswith("b.png") for x in c.get("/groups?format=json").json()["groups"])


def test_charts_draw_the_numbers_given():
    svg = charts.histogram([0.1, 0.2, 0.3, 1.5, 1.6, 2.9], bins=3, value_range=(0, 3))
    assert re.findall(r"<title>([^<]+)</title></rect>", svg) == ["0 to 1: 3", "1 to 2: 2", "2 to 3: 1"]
    bars = charts.bar_chart(["a<b", "c"], [2, 4])
    heights = [float(w) for w in re.findall(r'class="bar" x="\d+" y="[\d.]+" width="([\d.]+)"', bars)]
    assert heights[1] == pytest.approx(2 * heights[0]) and "a&lt;b" in bars and "a<b" not in bars
    dmap = charts.defect_map([(10, 20, "hot"), (30, 5, "dead")], 100, 50, max_side=200)
    assert 'class="defect hot" x="17" y="37"' in dmap and dmap.count('class="defect') == 2


def test_serve_command_refuses_in_one_line(tmp_path, demo):
    from indexer.web.server import prepare, url_of

    missing = CliRunner().invoke(main, ["--db", str(tmp_path / "none.db"), "serve"])
    assert missing.exit_code == 1 and "no database" in missing.stderr and not (tmp_path / "none.db").exists()
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        refused = CliRunner().invoke(main, ["--db", str(demo / "photoqa.db"), "serve", "--port", str(port)])
    assert refused.exit_code == 1 and refused.stderr.startswith("photoqa: cannot listen on 127.0.0.1:")
    options, made = prepare(ServeOptions(host="0.0.0.0", port=9000))
    assert made and options.token == made and url_of(options) == f"http://0.0.0.0:9000/?token={made}"
    assert not options.actions_enabled
    options, made = prepare(ServeOptions(host="::1"))
    assert made is None and url_of(options) == "http://[::1]:8765/" and options.actions_enabled


def test_pages_on_postgresql(tmp_path):
    """The same pages on PostgreSQL (when $PHOTOQA_TEST_PG_URL names a database we may
    write): a planted group, the overview's counts, the read-only SQL box."""
    import os
    import uuid

    from sqlalchemy import text

    from db.engine import open_engine

    url = os.environ.get("PHOTOQA_TEST_PG_URL")
    if not url:
        pytest.skip("set PHOTOQA_TEST_PG_URL (a PostgreSQL database we may write)")
    schema = "t_" + uuid.uuid4().hex[:12]
    admin = open_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    db = f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"
    try:
        folder = tmp_path / "photos"
        img = Image.fromarray(synth.scene(63, 480, 360))
        F.save(folder / "a.jpg", img, "JPEG", quality=92)
        F.save(folder / "b.jpg", img, "JPEG", quality=92)
        F.save(folder / "dark.jpg", Image.fromarray(synth.change_exposure(synth.scene(64, 480, 360), -2.0)),
               "JPEG", quality=92)
        assert CliRunner().invoke(main, ["--db", db, "index", str(folder), "-j", "1"]).exit_code == 0
        app = create_app(ServeOptions(db=db))
        with TestClient(app, base_url=LOCAL) as c:
            assert re.search(r'id="count-images"><b>3</b>', c.get("/").text)
            (g,) = c.get("/groups?format=json").json()["groups"]
            assert {Path(m["path"]).name for m in g["members"]} == {"a.jpg", "b.jpg"}
            assert c.get(f"/thumb/{g['id']}.jpg").status_code == 200
            assert c.get("/sql", params={"q": "DELETE FROM images"}).status_code == 400
            assert c.get("/sql", params={"q": "SELECT count(*) AS n FROM images"}).status_code == 200
            for url_ in ("/exposure", "/sensors", f"/image/{g['id']}", "/actions"):
                assert c.get(url_).status_code == 200, url_
            app.state.photoqa.session.engine.dispose()
            app.state.photoqa.reader.engine.dispose()
        from indexer.web.report import export_html  # the static copy on PostgreSQL too

        site = export_html(db, None, tmp_path / "site", pair_pictures=False)
        assert site.pages >= 7 and not site.failed
        assert (tmp_path / "site" / f"group-{g['id']}.html").is_file()
        assert len(re.findall(r'<section class="group"', (tmp_path / "site" / "groups-1.html").read_text())) == 1
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def test_a_page_of_groups_is_the_slice_of_the_whole_report(demo):
    """The pages SQL orders (bytes, size, count, path) hold the same groups, members,
    keepers and relations as the same slice of ``photoqa dupes``, and the same totals."""
    from indexer.commands.dupes import dupes_report
    from indexer.session import open_session
    from indexer.web.groupview import SQL_SORTS, page_of_groups

    session = open_session(str(demo / "photoqa.db"), str(demo / "photoqa-demo.toml"), readonly=True)
    try:
        for sort in SQL_SORTS:
            whole = dupes_report(session, sort=sort)
            for page in (1, 2):
                got = page_of_groups(session, page=page, per_page=1, sort=sort)
                want = whole["groups"][page - 1: page]
                assert [g["id"] for g in got.groups] == [g["id"] for g in want], sort
                assert [[(m["path"], m["role"], m["relation"]) for m in g["members"]] for g in got.groups] == \
                    [[(m["path"], m["role"], m["relation"]) for m in g["members"]] for g in want]
                assert got.pages == len(whole["groups"])
                for key in ("groups", "files", "removable_files", "bytes_reclaimable"):
                    assert got.summary[key] == whole["summary"][key], (sort, key)
    finally:
        session.engine.dispose()
