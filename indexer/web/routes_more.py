"""Pages over one pair, exposure, sensors and SQL.

The pair view decodes both files through ``photoqa diff``'s own comparison
(:func:`indexer.commands.diff.compare_files`: B turned, scaled and shifted onto A, then
aligned to a sub-pixel) and serves its difference images, transfer curve and the two
aligned pictures; only pairs stored in ``pairs`` can be viewed. The SQL box runs on
the read-only session through :func:`db.queries.run_sql`, the function behind
``photoqa sql``.
"""
from __future__ import annotations

import io
import re
import threading
from pathlib import Path

from PIL import Image
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from db import browse
from db.queries import QueryError, ReadOnlyViolation, run_sql
from indexer.commands.exposure import exposure_report
from indexer.commands.hotpixels import sensor_reports
from indexer.commands.output import camera_name, plain, write_csv
from indexer.web import charts
from indexer.web.app import page, state_of

EXAMPLES_FILE = Path(__file__).resolve().parent / "examples.sql"
SQL_ROWS_SHOWN = 1000
PAIR_IMAGES = ("a", "b_aligned", "a_minus_b", "b_minus_a", "diff_sum", "transfer_curve",
               "histogram_a", "histogram_b", "histogram_diff")
_pair_lock = threading.Lock()


def example_queries() -> list[tuple[str, str]]:
    """(title, statement) of the documented example queries (docs/SCHEMA.md, the same text)."""
    text = EXAMPLES_FILE.read_text(encoding="utf-8")
    return [(m.group(1).strip(), m.group(2).strip()) for m in re.finditer(r"^-- ([^\n]*)\n(.*?;)", text, re.M | re.S)]


def pair(request: Request) -> Response:
    s = state_of(request)
    a_id, b_id = request.path_params["a"], request.path_params["b"]
    row = browse.pair_row(s.reader.engine, a_id, b_id)
    if row is None:
        return page(request, "message.html", {"title": "No such pair",
                                              "message": f"images {a_id} and {b_id} are not a stored pair"}, 404)
    paths = {i: browse.present_path(s.reader.engine, i) for i in (row["a_id"], row["b_id"])}
    return page(request, "pair.html", {"p": row, "paths": paths, "images": PAIR_IMAGES})


def pair_images(state, a_id: int, b_id: int) -> dict[str, bytes] | str:
    """PNG bytes of every pair picture (:data:`PAIR_IMAGES`), or why there are none;
    computed once per pair and kept for the server's life."""
    from indexer.commands.diff import DiffError, compare_files
    from indexer.exposure import diffimages
    from indexer.measure.linear import linear_to_srgb8

    key = (a_id, b_id)
    with _pair_lock:
        if key in state.pair_images:
            return state.pair_images[key]
        pa, pb = browse.present_path(state.reader.engine, a_id), browse.present_path(state.reader.engine, b_id)
        try:
            c = compare_files(Path(pa), Path(pb))
        except DiffError as exc:
            state.pair_images[key] = str(exc)
            return str(exc)
        pictures = diffimages.render(c.result)
        pictures["a"] = Image.fromarray(linear_to_srgb8(c.result.a_lin))
        pictures["b_aligned"] = Image.fromarray(linear_to_srgb8(c.result.b_lin))
        encoded = {}
        for name, img in pictures.items():
            buf = io.BytesIO()
            img.save(buf, format="PNG", compress_level=1)
            encoded[name] = buf.getvalue()
        state.pair_images[key] = encoded
        return encoded


def pair_image(request: Request) -> Response:
    s = state_of(request)
    a_id, b_id, name = request.path_params["a"], request.path_params["b"], request.path_params["name"]
    row = browse.pair_row(s.reader.engine, a_id, b_id)
    if row is None or name not in PAIR_IMAGES:
        return Response("no such picture", status_code=404, media_type="text/plain")
    got = pair_images(s, row["a_id"], row["b_id"])
    if isinstance(got, str):
        return Response(got, status_code=422, media_type="text/plain")
    return Response(got[name], media_type="image/png")


def severity(flags: list[dict]) -> float:
    """How far the worst flag is past its threshold, relative to the threshold."""
    return max((abs(f["value"] - f["threshold"]) / max(abs(f["threshold"]), 1e-6) for f in flags), default=0.0)


def exposure(request: Request) -> Response:
    s = state_of(request)
    report = exposure_report(s.reader)
    ids = browse.ids_of(s.reader.engine, [im["path"] for im in report["images"]] +
                        [p for pr in report["pairs"] for p in (pr["a"], pr["b"])])
    images = sorted(({**im, "id": ids.get(im["path"]), "severity": severity(im["flags"])} for im in report["images"]),
                    key=lambda im: (-im["severity"], im["path"]))
    pairs = [{**p, "a_id": ids.get(p["a"]), "b_id": ids.get(p["b"])} for p in report["pairs"]]
    return page(request, "exposure.html", {"images": images, "pairs": pairs})


def sensors(request: Request) -> Response:
    s = state_of(request)
    shown = []
    for r in sensor_reports(s.reader):
        shown.append({"r": r, "name": camera_name(r.make, r.model, r.serial),
                      "map": charts.defect_map([(d.x, d.y, d.kind) for d in r.defects], r.width, r.height),
                      "frames": browse.sensor_frames(s.reader.engine, r.id)})
    return page(request, "sensors.html", {"sensors": shown})


def run_query(request: Request) -> tuple[str, list[str], list[tuple], str]:
    """(statement, columns, rows, error) of the ``q`` parameter on the read-only session."""
    statement = request.query_params.get("q", "").strip()
    if not statement:
        return "", [], [], ""
    try:
        columns, rows = run_sql(state_of(request).reader.engine, statement)
    except ReadOnlyViolation as exc:
        return statement, [], [], f"refused: {exc}"
    except QueryError as exc:
        return statement, [], [], f"SQL error: {exc}"
    return statement, columns, rows, ""


def sql(request: Request) -> Response:
    statement, columns, rows, error = run_query(request)
    cells = [["" if v is None else plain(v) for v in row] for row in rows[:SQL_ROWS_SHOWN]]
    return page(request, "sql.html", {"q": statement, "columns": columns, "rows": cells, "total": len(rows),
                                      "error": error, "examples": example_queries()},
                status_code=400 if error else 200)


def sql_csv(request: Request) -> Response:
    statement, columns, rows, error = run_query(request)
    if error or not statement:
        return Response(error or "no query", status_code=400, media_type="text/plain")
    out = io.StringIO()
    write_csv(columns, rows, out)
    return Response(out.getvalue(), media_type="text/csv",
                    headers={"Content-Disposition": 'attachment; filename="photoqa-query.csv"'})


ROUTES = [
    Route("/pair/{a:int}/{b:int}", pair),
    Route("/pair/{a:int}/{b:int}/{name}.png", pair_image),
    Route("/exposure", exposure),
    Route("/sensors", sensors),
    Route("/sql", sql),
    Route("/sql.csv", sql_csv),
]
