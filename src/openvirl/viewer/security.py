"""What the viewer checks on every request, and the headers it adds to every response.

The viewer serves files from the user's disk, so a web page in the user's browser must not be
able to read it:

- **Host names.** By default only loopback Host headers (`LOOPBACK_HOSTS`) are answered. A
  DNS-rebinding page (``evil.example`` re-pointed at 127.0.0.1) sends its own name as Host and
  gets a 400, so it cannot read what the viewer serves.
- **Token.** A viewer that listens beyond loopback needs a token (``openvirl view --host
  0.0.0.0 --token ...``): every request then carries it as ``?token=`` (which also sets an
  HttpOnly, SameSite=Strict cookie, so the pages' own links keep working), as the
  ``openvirl_view_token`` cookie, or as an ``Authorization: Bearer`` header.
- **Headers.** Every response says ``X-Content-Type-Options: nosniff`` and carries a Content
  Security Policy: the viewer's own pages may load only the viewer's own scripts, styles and
  images (`PAGE_CSP`); everything else, run files such as a ``report.html`` or an ``.svg``
  plot above all, is sandboxed with no scripts and no requests (`FILE_CSP`).

Example
-------
>>> host_name("[::1]:8765"), host_name("localhost:8765"), host_name("Evil.example")
('::1', 'localhost', 'evil.example')
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Sequence

from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
"""Host names answered by default (``127.x.y.z`` addresses are loopback too)."""
TOKEN_COOKIE = "openvirl_view_token"
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
"""Policy of the viewer's own HTML pages (inline style attributes colour the badges)."""
FILE_CSP = "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; sandbox"
"""Policy of everything else: run files are shown, never run, in a sandbox of their own."""
PAGE_CSP_HEADER = "x-openvirl-page"
"""Internal marker set by the page renderer; replaced by `PAGE_CSP` on the way out."""


def host_name(header: str) -> str:
    """The name part of a Host header, lower case, without port or IPv6 brackets."""
    value = header.strip().lower()
    if value.startswith("["):
        return value[1:].split("]", 1)[0]
    if value.count(":") == 1:
        return value.split(":", 1)[0]
    return value


def is_loopback_name(name: str) -> bool:
    """Whether a Host name is a loopback one (``localhost``, ``::1`` or ``127.x.y.z``)."""
    if name in LOOPBACK_HOSTS:
        return True
    parts = name.split(".")
    return len(parts) == 4 and parts[0] == "127" and all(p.isdigit() for p in parts)


def is_loopback_bind(host: str) -> bool:
    """Whether listening on `host` keeps the server on this machine."""
    return is_loopback_name(host_name(host)) if host else False


def _refuse(request: Request, status: int, message: str) -> Response:
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": message}, status_code=status)
    from openvirl.viewer import pages

    title = "Wrong host name" if status == 400 else "Token needed"
    return HTMLResponse(
        pages.message_page(title, message), status_code=status, headers={PAGE_CSP_HEADER: "1"}
    )


def install_guards(
    app: FastAPI,
    *,
    token: str | None = None,
    allowed_hosts: Sequence[str] | None = None,
    on_error: Callable[[Request, Exception], Awaitable[Response]] | None = None,
) -> None:
    """Add the Host check, the optional token check and the security headers to `app`.

    `on_error` answers an exception the app did not handle (inside the guard, so that answer
    gets the headers too); without it the exception propagates.
    """
    any_host = allowed_hosts is not None and "*" in allowed_hosts
    extra = {host_name(h) for h in allowed_hosts or () if h != "*"}
    token_bytes = token.encode("utf-8") if token else None

    def host_ok(header: str | None) -> bool:
        if any_host:
            return True
        if not header:
            return False
        name = host_name(header)
        return is_loopback_name(name) or name in extra

    def token_given(request: Request) -> tuple[bool, bool]:
        """(valid, came in the query string)."""
        assert token_bytes is not None
        query = request.query_params.get("token")
        if query is not None and hmac.compare_digest(query.encode("utf-8"), token_bytes):
            return True, True
        auth = request.headers.get("authorization", "")
        bearer = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
        for value in (request.cookies.get(TOKEN_COOKIE, ""), bearer):
            if value and hmac.compare_digest(value.encode("utf-8"), token_bytes):
                return True, False
        return False, False

    @app.middleware("http")
    async def _guard(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        set_cookie = False
        valid, from_query = token_given(request) if token_bytes is not None else (True, False)
        if not host_ok(request.headers.get("host")):
            response = _refuse(
                request, 400,
                "This viewer answers only to a loopback host name (127.0.0.1, localhost, "
                "[::1]); open it as http://127.0.0.1:<port>/.",
            )  # fmt: skip
        elif not valid:
            response = _refuse(
                request, 401,
                "This viewer needs its token: open the address `openvirl view` printed, "
                "which ends in ?token=...",
            )  # fmt: skip
        else:
            set_cookie = from_query
            try:
                response = await call_next(request)
            except Exception as exc:
                if on_error is None:
                    raise
                response = await on_error(request, exc)
        if set_cookie and token:
            response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
        own_page = response.headers.get(PAGE_CSP_HEADER) == "1"
        if own_page:
            del response.headers[PAGE_CSP_HEADER]
        response.headers["Content-Security-Policy"] = PAGE_CSP if own_page else FILE_CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers.setdefault("X-Frame-Options", "DENY")
        return response
