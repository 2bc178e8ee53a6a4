"""GraphiQL at GET /graphql (for a browser), served from installed files: no CDN, so the IDE
works offline and behind a proxy that blocks CDNs.

GraphiQL 2, React 17 and their stylesheet come from the `graphene-django-graphiql-static`
wheel (plain files; nothing of Django is imported); the page and its start-up script are
ours (api/static/graphiql.*). The visitor's API key arrives in the address's `#key=`
fragment (never sent to a server) or from the dashboard's tab storage, and becomes the
Authorization header GraphiQL sends.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from importlib.abc import Traversable

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

_OURS = resources.files("api").joinpath("static")
_MEDIA = {".js": "text/javascript", ".css": "text/css"}
# Scripts only from here; CodeMirror sets inline styles; the stylesheet embeds its fonts.
_SECURITY = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def _vendored() -> Traversable:
    return resources.files("graphene_django_graphiql_static").joinpath(
        "static", "graphene_django_graphiql_static"
    )


# What /graphiql/<name> serves, and from where (a fixed list: no path comes from the client).
_FILES = {
    "graphiql.min.js": _vendored,
    "graphiql.min.css": _vendored,
    "react.production.min.js": _vendored,
    "react-dom.production.min.js": _vendored,
    "graphiql-page.js": lambda: _OURS,
    "graphiql-page.css": lambda: _OURS,
}


@cache
def _read(name: str) -> bytes:
    return _FILES[name]().joinpath(name).read_bytes()


def page() -> HTMLResponse:
    """The GraphiQL page."""
    return HTMLResponse(_read_page(), headers=_SECURITY)


@cache
def _read_page() -> str:
    return _OURS.joinpath("graphiql.html").read_text(encoding="utf-8")


async def asset(request: Request) -> Response:
    """One of the page's files (404 for any other name)."""
    name = request.path_params["name"]
    if name not in _FILES:
        return Response("not found", status_code=404, media_type="text/plain")
    media = _MEDIA[name[name.rindex(".") :]]
    # The vendored files change only with the pinned package: a day in the browser's cache.
    return Response(
        _read(name),
        media_type=media,
        headers={**_SECURITY, "Cache-Control": "public, max-age=86400"},
    )


ROUTES = [Route("/graphiql/{name}", asset, methods=["GET"])]
