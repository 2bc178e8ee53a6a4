"""The built-in dashboard at /dashboard: a static page that reads the GraphQL API with the
visitor's key and draws with Plotly, whose JavaScript ships inside the `plotly` Python
package (served from here: no CDN, works offline). The page holds no data of its own."""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import Route

_STATIC = resources.files("api").joinpath("static")
# Scripts only from here; Plotly sets inline styles on the charts it draws.
_SECURITY = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; "
    "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
_CACHED = {"Cache-Control": "public, max-age=86400"}


@cache
def _text(name: str) -> str:
    return _STATIC.joinpath(name).read_text(encoding="utf-8")


def _plotly_js() -> Path:
    import plotly  # late: only its file's location is needed, on the dashboard's first visit

    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


async def page(_request: Request) -> Response:
    return HTMLResponse(_text("dashboard.html"), headers=_SECURITY)


async def script(_request: Request) -> Response:
    return Response(_text("dashboard.js"), media_type="text/javascript", headers=_SECURITY)


async def stylesheet(_request: Request) -> Response:
    return Response(_text("dashboard.css"), media_type="text/css", headers=_SECURITY)


async def plotly_js(_request: Request) -> Response:
    return FileResponse(_plotly_js(), media_type="text/javascript", headers=_CACHED)


ROUTES = [
    Route("/dashboard", page, methods=["GET"]),
    Route("/dashboard/dashboard.js", script, methods=["GET"]),
    Route("/dashboard/dashboard.css", stylesheet, methods=["GET"]),
    Route("/dashboard/plotly.min.js", plotly_js, methods=["GET"]),
]
