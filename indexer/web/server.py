"""Run the application with uvicorn on the address of :class:`indexer.web.app.ServeOptions`."""
from __future__ import annotations

import secrets
import socket

from indexer.web.app import ServeOptions, create_app, is_loopback


class ServeError(ValueError):
    """Options ``photoqa serve`` refuses (e.g. actions on a public address without a token)."""


def prepare(options: ServeOptions) -> tuple[ServeOptions, str | None]:
    """Options with a token made up when bound beyond loopback without one; returns
    (options, the generated token or None)."""
    if is_loopback(options.host) or options.token:
        return options, None
    token = secrets.token_urlsafe(18)
    options.token = token
    return options, token


def check_port(host: str, port: int) -> None:
    """Raise :class:`ServeError` when ``host:port`` cannot be bound now (in use, no such
    address), so the command says so in one line instead of uvicorn's log and exit code."""
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, port))
    except OSError as exc:
        raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc


def url_of(options: ServeOptions) -> str:
    host = f"[{options.host}]" if ":" in options.host and not options.host.startswith("[") else options.host
    query = f"/?token={options.token}" if options.token else "/"
    return f"http://{host}:{options.port}{query}"


def run(options: ServeOptions, *, log_level: str = "warning") -> None:
    """Serve until interrupted (Ctrl-C, SIGTERM)."""
    import uvicorn

    app = create_app(options)
    uvicorn.run(app, host=options.host.strip("[]"), port=options.port, log_level=log_level,
                server_header=False, proxy_headers=False)
