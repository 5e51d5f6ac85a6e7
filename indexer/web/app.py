"""The Starlette application of ``photoqa serve``: state, guards, routes.

Guards, in this order, on every request (:class:`Guard`):

* Host header: bound to a loopback address, only ``127.0.0.1``, ``localhost`` and
  ``[::1]`` are answered (a web page elsewhere cannot reach the server through DNS
  rebinding).
* Token: with ``token`` set (required when bound to another address), a request must
  carry ``?token=...`` once (it is then kept in a cookie) or the cookie; otherwise 403.
* POST: the form's ``csrf`` field must equal this server's random secret (rendered into
  its own forms only) and an ``Origin`` header, when sent, must be this server's; else 403.
  Actions are refused (403) unless ``actions`` is on (the default only on loopback).
"""
from __future__ import annotations

import hmac
import ipaddress
import secrets
import shutil
import tempfile
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from db import browse
from indexer.session import Session, open_session
from indexer.web import charts, groupview, thumbs

HERE = Path(__file__).resolve().parent
LOOPBACK_NAMES = ("localhost",)
TOKEN_COOKIE = "photoqa_token"


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or 'localhost') is this machine only."""
    if host.strip("[]") in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def host_name(header: str) -> str:
    """The host of a Host header without its port ('[::1]:8765' -> '[::1]', 'a:80' -> 'a')."""
    if header.startswith("["):
        return header.split("]")[0] + "]"
    return header.rsplit(":", 1)[0]


@dataclass
class ServeOptions:
    """How ``photoqa serve`` runs: database and settings, the address it binds, the token
    every request must carry (None: none), whether actions on files are allowed, and
    whether the pages are rendered for the static copy (``photoqa report --html``)."""

    db: str | None = None
    config: str | None = None
    host: str = "127.0.0.1"
    port: int = 8765
    token: str | None = None
    actions: bool | None = None  # None: on when bound to loopback
    static: bool = False  # rendering for `report --html`: no sorting form, no SQL box, no actions page
    pair_pictures: bool = True  # the pair page's aligned pictures (report --html --no-pair-pictures: off)

    @property
    def actions_enabled(self) -> bool:
        return is_loopback(self.host) if self.actions is None else self.actions


@dataclass
class State:
    """What the routes share: the writer session (actions), a read-only one (pages, the
    SQL box), templates, the thumbnail cache, the CSRF secret, a scratch folder."""

    session: Session
    reader: Session
    options: ServeOptions
    templates: Jinja2Templates
    thumbs: thumbs.ThumbCache
    scratch: Path
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    pair_images: dict = field(default_factory=dict)
    reports: groupview.ReportCache = field(default_factory=lambda: groupview.ReportCache())


def state_of(request: Request) -> State:
    return request.app.state.photoqa


def page(request: Request, name: str, context: dict, status_code: int = 200) -> Response:
    """Render template ``name`` with the shared context (CSRF secret, whether actions run)."""
    s = state_of(request)
    base = {"csrf": s.csrf, "actions": s.options.actions_enabled, "charts": charts, "nav": name,
            "static": s.options.static, "pair_pictures": s.options.pair_pictures}
    return s.templates.TemplateResponse(request, name, {**base, **context}, status_code=status_code)


class Guard:
    """ASGI middleware: the Host, token, CSRF and Origin checks of the module docstring."""

    def __init__(self, app, options: ServeOptions, csrf: str):
        self.app, self.options, self.csrf = app, options, csrf

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        request = Request(scope, receive)
        refusal, set_cookie = self.check(request)
        if refusal is not None:
            return await PlainTextResponse(refusal, status_code=403)(scope, receive, send)
        if scope["method"] == "POST":
            form = await request.form()
            if not hmac.compare_digest(str(form.get("csrf", "")), self.csrf):
                return await PlainTextResponse("refused: missing or wrong form token", 403)(scope, receive, send)
            scope.setdefault("state", {})["form"] = form

        async def send_with_cookie(message):
            if set_cookie and message["type"] == "http.response.start":
                cookie = f"{TOKEN_COOKIE}={self.options.token}; HttpOnly; SameSite=Strict; Path=/"
                message.setdefault("headers", []).append((b"set-cookie", cookie.encode()))
            await send(message)

        await self.app(scope, receive, send_with_cookie)

    def check(self, request: Request) -> tuple[str | None, bool]:
        """(why the request is refused or None, whether to set the token cookie)."""
        host = host_name(request.headers.get("host", ""))
        if is_loopback(self.options.host) and not is_loopback(host):
            return f"refused: this server answers only to localhost, not to host {host!r}", False
        origin = request.headers.get("origin")
        if request.method == "POST" and origin and urlsplit(origin).netloc != request.headers.get("host"):
            return "refused: a form from another site", False
        if request.method not in ("GET", "HEAD", "POST"):
            return "refused: method not allowed", False
        token = self.options.token
        if not token:
            return None, False
        given = request.query_params.get("token")
        if given is not None and hmac.compare_digest(given, token):
            return None, True
        if hmac.compare_digest(request.cookies.get(TOKEN_COOKIE, ""), token):
            return None, False
        return "refused: this server needs its token (?token=... as printed by photoqa serve)", False


def thumb_lookup(session: Session):
    """id -> (path, stored grey thumbnail) from the database, None when not a row."""
    def lookup(image_id: int):
        row = browse.image_row(session.engine, image_id)
        return None if row is None else (row["path"], row["thumb_pixels"])
    return lookup


def create_app(options: ServeOptions, *, session: Session | None = None, reader: Session | None = None) -> Starlette:
    """The application for ``options`` (sessions opened from ``options.db`` unless given)."""
    from indexer.web import routes_actions, routes_pages

    session = session or open_session(options.db, options.config)
    reader = reader or open_session(session.url, options.config, readonly=True)
    scratch = Path(tempfile.mkdtemp(prefix="photoqa-serve-"))
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.filters["bytes"] = routes_pages.human_bytes
    state = State(session, reader, options, templates, thumbs.ThumbCache(thumb_lookup(reader)), scratch)

    @asynccontextmanager
    async def lifespan(app):
        try:
            yield
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    routes = [*routes_pages.ROUTES, *routes_actions.ROUTES,
              Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.photoqa = state
    app.add_middleware(Guard, options=options, csrf=state.csrf)
    return app
