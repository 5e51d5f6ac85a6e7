"""The read-only pages: overview, duplicate groups, one group, one image, thumbnails.

Every page reads through the read-only session (``State.reader``); ids come from the
URL and are looked up as rows, never turned into paths by the browser.
"""
from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from db import browse
from indexer.commands.dupes import human_bytes
from indexer.commands.output import camera_name
from indexer.watch.status import status as watch_status
from indexer.web import charts, groupview
from indexer.web.app import page, state_of
from indexer.web.routes_more import ROUTES as MORE_ROUTES

__all__ = ["ROUTES", "human_bytes"]


def int_param(request: Request, name: str, default: int, lo: int, hi: int) -> int:
    """A query parameter as an int within [lo, hi]; ``default`` when absent or not a number."""
    try:
        return min(hi, max(lo, int(request.query_params.get(name, default))))
    except ValueError:
        return default


def overview(request: Request) -> Response:
    s = state_of(request)
    engine = s.reader.engine
    counts = browse.overview_counts(engine)
    verdicts = browse.pairs_per_verdict(engine)
    per_camera = browse.flags_per_camera(engine)
    days = browse.indexed_per_day(engine)
    svg = {
        "ev": charts.histogram(browse.ev_values(engine), bins=24, title="EV of every image", unit=" EV"),
        "flags": charts.bar_chart([f"{camera_name(mk, md) or 'no camera'}: {name}" for mk, md, name, _ in per_camera],
                                  [n for *_, n in per_camera], title="flags per camera", label_width=220),
        "verdicts": charts.bar_chart(list(verdicts), list(verdicts.values()), title="pairs per verdict"),
        "days": (charts.column_chart([n for _, n in days], list(range(len(days) + 1)), title="images indexed per day",
                                     width=420) if len(days) > 1 else
                 charts.bar_chart([d for d, _ in days], [n for _, n in days], title="images indexed per day")),
    }
    return page(request, "overview.html", {"counts": counts, "svg": svg, "days": days,
                                           "status": watch_status(engine)})


def groups(request: Request) -> Response:
    s = state_of(request)
    sort = request.query_params.get("sort", "bytes")
    sort = sort if sort in groupview.WEB_SORTS else "bytes"
    per = int_param(request, "per", groupview.PER_PAGE, 1, max(groupview.PAGE_SIZES))
    got = groupview.page_of_groups(s.reader, page=int_param(request, "page", 1, 1, 10**9), per_page=per, sort=sort,
                                     cache=s.reports)
    if request.query_params.get("format") == "json":
        return JSONResponse(jsonable({"summary": got.summary, "page": got.page, "pages": got.pages,
                                      "sort": got.sort, "groups": got.groups}))
    return page(request, "groups.html", {"got": got, "sorts": groupview.WEB_SORTS, "sizes": groupview.PAGE_SIZES})


def jsonable(value):
    """Dates and other non-JSON values as strings, recursively."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def group(request: Request) -> Response:
    s = state_of(request)
    found = groupview.find_group(s.reader, request.path_params["group_id"], s.reports)
    if found is None:
        return page(request, "message.html", {"title": "No such group",
                                              "message": "no duplicate group has this id (it may have been "
                                                         "resolved)"}, status_code=404)
    return page(request, "group.html", {"g": found})


def image(request: Request) -> Response:
    s = state_of(request)
    image_id = request.path_params["image_id"]
    row = browse.image_row(s.reader.engine, image_id)
    if row is None:
        return page(request, "message.html", {"title": "No such image", "message": f"no image {image_id}"},
                    status_code=404)
    hist = charts.channel_histograms(row.pop("histogram"), title="histogram (R, G, B, luma; sqrt count)")
    row.pop("thumb_pixels")
    camera = row.pop("camera")
    return page(request, "image.html", {
        "row": row, "camera": camera_name(*camera) if camera else "", "hist": hist,
        "flags": browse.flags_of(s.reader.engine, image_id), "pairs": browse.pairs_of(s.reader.engine, image_id),
        "group": browse.group_of(s.reader.engine, image_id)})


def thumb(request: Request) -> Response:
    s = state_of(request)
    size = int_param(request, "size", 320, 16, 4096)
    data = s.thumbs.get(request.path_params["image_id"], size)
    if data is None:
        return Response("no such image", status_code=404, media_type="text/plain")
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=300"})


ROUTES = [
    Route("/", overview),
    Route("/groups", groups),
    Route("/groups/{group_id:int}", group),
    Route("/image/{image_id:int}", image),
    Route("/thumb/{image_id:int}.jpg", thumb),
    *MORE_ROUTES,
]
