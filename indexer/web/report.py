"""``photoqa report --html DIR``: the pages of ``photoqa serve`` written as static files.

The application itself renders every page (:func:`indexer.web.app.create_app`, called
in-process through ASGI: no socket, no HTTP client): the export crawls from the
overview and the first groups page, follows every link that has a static name
(:func:`static_name`) and rewrites it to that relative file name, so a page and its
static copy cannot disagree. Files written::

    index.html                 /
    groups-N.html              /groups?page=N (25 a page unless ``per_page``, by bytes to free)
    group-ID.html              /groups/ID
    image-ID.html              /image/ID
    pair-A-B.html              /pair/A/B
    pairs/A-B-NAME.png         /pair/A/B/NAME.png (with --pair-pictures)
    exposure.html, sensors.html, sql.html (the example queries, not run)
    thumbs/ID.jpg              /thumb/ID.jpg?size=320 (other sizes: thumbs/ID-SIZE.jpg)
    style.css                  /static/style.css

Links to anything else (actions, a sorting other than the default, a query) lose their
``href``; action forms are replaced by their buttons, disabled; the groups page's
sorting form and the SQL box are not rendered (``ServeOptions.static``).
"""
from __future__ import annotations

import asyncio
import html
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlsplit

from indexer.web.app import ServeOptions, create_app
from indexer.web.groupview import PER_PAGE

HOST = "127.0.0.1"
THUMB_SIZE = 320  # the size the group cards ask for: thumbs/ID.jpg
LINK = re.compile(r'\b(href|src)="([^"]*)"')
POST_FORM = re.compile(r'<form\b[^>]*method="post"[^>]*>(.*?)</form>', re.S)
BUTTON = re.compile(r"<button\b[^>]*>(.*?)</button>", re.S)


@dataclass
class ReportResult:
    """What the export wrote: files by kind, the URLs that failed (URL -> status)."""

    out_dir: Path
    pages: int = 0
    pictures: int = 0
    failed: dict[str, int] = field(default_factory=dict)


def static_name(url: str, *, pair_pictures: bool = True, per_page: int = PER_PAGE) -> str | None:
    """The relative file name of a server URL in the static copy, or None when it has none.

    >>> static_name("/groups?sort=bytes&per=25&page=3"), static_name("/thumb/7.jpg?size=640")
    ('groups-3.html', 'thumbs/7-640.jpg')
    """
    parts = urlsplit(url)
    if parts.scheme or parts.netloc:
        return None
    path, query = parts.path, {k: v[-1] for k, v in parse_qs(parts.query).items()}
    if path == "/" and not query:
        return "index.html"
    if path == "/groups":
        page, per = query.get("page", "1"), query.get("per")
        if query.get("sort", "bytes") != "bytes" or "format" in query:
            return None
        if (per is None and page != "1") or (per is not None and per != str(per_page)):
            return None  # plain /groups (the menu) is the first page whatever its size
        return f"groups-{page}.html" if page.isdigit() and int(page) >= 1 else None
    if path in ("/exposure", "/sensors") and not query:
        return path[1:] + ".html"
    if path == "/sql" and not query:
        return "sql.html"
    if path == "/static/style.css":
        return "style.css"
    m = re.fullmatch(r"/(groups|image)/(\d+)", path)
    if m and not query:
        return f"{'group' if m.group(1) == 'groups' else 'image'}-{m.group(2)}.html"
    m = re.fullmatch(r"/thumb/(\d+)\.jpg", path)
    if m:
        size = query.get("size", str(THUMB_SIZE))
        if not size.isdigit():
            return None
        return f"thumbs/{m.group(1)}.jpg" if int(size) == THUMB_SIZE else f"thumbs/{m.group(1)}-{size}.jpg"
    m = re.fullmatch(r"/pair/(\d+)/(\d+)", path)
    if m and not query:
        return f"pair-{m.group(1)}-{m.group(2)}.html"
    m = re.fullmatch(r"/pair/(\d+)/(\d+)/(\w+)\.png", path)
    if m and pair_pictures:
        return f"pairs/{m.group(1)}-{m.group(2)}-{m.group(3)}.png"
    return None


def disable_forms(page: str) -> str:
    """Every POST form replaced by its buttons, disabled (the static copy cannot act)."""
    def buttons(m: re.Match) -> str:
        return "".join(f'<button type="button" disabled title="a static copy: run photoqa serve to act">'
                       f"{b.group(1)}</button>" for b in BUTTON.finditer(m.group(1)))
    return POST_FORM.sub(buttons, page)


async def fetch(app, url: str) -> tuple[int, str, bytes]:
    """(status, content type, body) of a GET of ``url`` through the ASGI app, in-process."""
    parts = urlsplit(url)
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
             "scheme": "http", "path": parts.path, "raw_path": parts.path.encode(),
             "query_string": parts.query.encode(), "root_path": "",
             "headers": [(b"host", HOST.encode())], "client": (HOST, 0), "server": (HOST, 80)}
    status, ctype, body = 500, "", []
    requested, done = False, asyncio.Event()

    async def receive():
        # the request once; after that, as a server does, a disconnect only when the
        # response is complete (a streaming response listens for it meanwhile)
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message):
        nonlocal status, ctype
        if message["type"] == "http.response.start":
            status = message["status"]
            ctype = dict(message.get("headers", [])).get(b"content-type", b"").decode()
        elif message["type"] == "http.response.body":
            body.append(message.get("body", b""))
            if not message.get("more_body", False):
                done.set()

    await app(scope, receive, send)
    return status, ctype, b"".join(body)


async def crawl(app, out_dir: Path, *, pair_pictures: bool, per_page: int,
                progress: Callable[[int, int], None]) -> ReportResult:
    result = ReportResult(out_dir)
    # the first groups page with its page size first: the menu's plain /groups is then that file
    queue = [f"/groups?sort=bytes&per={per_page}&page=1", "/"]
    seen = {static_name(u, per_page=per_page) for u in queue}
    files: dict[str, bool] = {}  # non-page file name -> written

    async def resource(url: str, name: str) -> bool:
        if name not in files:
            status, _, body = await fetch(app, url)
            files[name] = status == 200
            if status == 200:
                target = out_dir / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(body)
                result.pictures += 1
            else:
                result.failed[url] = status
        return files[name]

    while queue:
        url = queue.pop(0)
        status, _, body = await fetch(app, url)
        if status != 200:
            result.failed[url] = status
        text = body.decode("utf-8")
        out = []
        last = 0
        for m in LINK.finditer(text):
            target = urljoin(url, html.unescape(m.group(2)))
            name = static_name(target, pair_pictures=pair_pictures, per_page=per_page)
            if name is not None and not name.endswith(".html") and not await resource(target, name):
                name = None
            if name is not None and name.endswith(".html") and name not in seen:
                seen.add(name)
                queue.append(target)
            out.append(text[last:m.start()])
            out.append(f'{m.group(1)}="{html.escape(name)}"' if name else "")
            last = m.end()
        out.append(text[last:])
        (out_dir / static_name(url, per_page=per_page)).write_text(disable_forms("".join(out)), encoding="utf-8")
        result.pages += 1
        progress(result.pages, len(queue))
    return result


def export_html(db: str | None, config: str | None, out_dir: Path, *, pair_pictures: bool = True,
                per_page: int = PER_PAGE, progress: Callable[[int, int], None] = lambda done, queued: None) -> ReportResult:
    """Write the static copy of the pages into ``out_dir`` (created when missing), the
    groups ``per_page`` a page; ``progress(pages written, pages queued)`` after each page."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    app = create_app(ServeOptions(db=db, config=config, actions=False, static=True))
    state = app.state.photoqa
    try:
        return asyncio.run(crawl(app, out_dir, pair_pictures=pair_pictures, per_page=per_page,
                                 progress=progress))
    finally:
        shutil.rmtree(state.scratch, ignore_errors=True)  # the lifespan's clean-up: no lifespan runs here
        state.session.engine.dispose()
        state.reader.engine.dispose()
