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
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlsplit

from indexer.web.app import ServeOptions, create_app
from indexer.web.groupview import PER_PAGE

HOST = "127.0.0.1"
CONCURRENT_PAGES = 4  # pages in flight at once (the routes run in the thread pool). On this
# loaded 2-core machine no gain was measured (800 groups: 23.6 s with 1, 23.8 s with 4; again
# 25.0 s and 21.0 s): the time is Python (SVG histograms of the image pages, SQLAlchemy, Jinja)
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

    try:
        await app(scope, receive, send)
    except Exception as exc:  # noqa: BLE001 - Starlette re-raises a route's error after its 500: one URL fails, not the export
        return 500, "text/plain", f"error: {exc}".encode()
    return status, ctype, b"".join(body)


async def crawl(app, out_dir: Path, *, pair_pictures: bool, per_page: int,
                progress: Callable[[int, int], None]) -> ReportResult:
    result = ReportResult(out_dir)
    # the first groups page with its page size first: the menu's plain /groups is then that file
    queue = deque([f"/groups?sort=bytes&per={per_page}&page=1", "/"])
    seen = {static_name(u, per_page=per_page) for u in queue}
    resources: dict[str, asyncio.Future] = {}  # non-page file name -> whether it was written

    async def write_resource(url: str, name: str) -> bool:
        status, _, body = await fetch(app, url)
        if status != 200:
            result.failed[url] = status
            return False
        target = out_dir / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(body)
        result.pictures += 1
        return True

    def resource(url: str, name: str) -> asyncio.Future:
        if name not in resources:  # one fetch per file, however many pages link to it
            resources[name] = asyncio.ensure_future(write_resource(url, name))
        return resources[name]

    async def write_page(url: str) -> None:
        status, _, body = await fetch(app, url)
        if status != 200:
            result.failed[url] = status
        text = body.decode("utf-8")
        links = list(LINK.finditer(text))
        names = [static_name(urljoin(url, html.unescape(m.group(2))), pair_pictures=pair_pictures,
                             per_page=per_page) for m in links]
        fetched = await asyncio.gather(*(resource(urljoin(url, html.unescape(m.group(2))), name)
                                         for m, name in zip(links, names) if name and not name.endswith(".html")))
        written = iter(fetched)
        out, last = [], 0
        for m, name in zip(links, names):
            if name and name.endswith(".html"):
                if name not in seen:
                    seen.add(name)
                    queue.append(urljoin(url, html.unescape(m.group(2))))
            elif name and not next(written):
                name = None
            out.append(text[last:m.start()])
            out.append(f'{m.group(1)}="{html.escape(name)}"' if name else "")
            last = m.end()
        out.append(text[last:])
        (out_dir / static_name(url, per_page=per_page)).write_text(disable_forms("".join(out)), encoding="utf-8")
        result.pages += 1
        progress(result.pages, len(queue))

    running: set[asyncio.Future] = set()
    while queue or running:
        while queue and len(running) < CONCURRENT_PAGES:
            running.add(asyncio.ensure_future(write_page(queue.popleft())))
        done, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()  # an error in a page stops the export with its traceback
    return result


def export_html(db: str | None, config: str | None, out_dir: Path, *, pair_pictures: bool = True,
                per_page: int = PER_PAGE, progress: Callable[[int, int], None] = lambda done, queued: None) -> ReportResult:
    """Write the static copy of the pages into ``out_dir`` (created when missing), the
    groups ``per_page`` a page; ``progress(pages written, pages queued)`` after each page."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    app = create_app(ServeOptions(db=db, config=config, actions=False, static=True, pair_pictures=pair_pictures))
    state = app.state.photoqa
    try:
        return asyncio.run(crawl(app, out_dir, pair_pictures=pair_pictures, per_page=per_page,
                                 progress=progress))
    finally:
        shutil.rmtree(state.scratch, ignore_errors=True)  # the lifespan's clean-up: no lifespan runs here
        state.session.engine.dispose()
        state.reader.engine.dispose()
