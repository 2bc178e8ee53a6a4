"""The ASGI application: lifespan-owned pool, /graphql, health checks."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import dashboard, graphiql
from api.audit import AuditWriter, RefusalLimiter
from api.auth import Authenticator
from api.errors import request_error
from api.graphql_http import JSON, GraphQLEndpoint, negotiate
from api.limits import QueryLimits
from api.metrics import READS
from api.rate_limit import RateLimiter
from api.schema import schema
from cdm.scoring import build_scorer
from cdm.settings import Settings, load_settings
from ml.serving.models import LOADING, ModelStore
from sql import migrate
from sql.database import BoundedPool, create_pool, resolve_database_url

_log = logging.getLogger("cdm.api")


async def healthz(_request: Request) -> JSONResponse:
    """The process is up."""
    return JSONResponse({"status": "ok"})


async def metrics(_request: Request) -> PlainTextResponse:
    """This worker's counters, in Prometheus' text format (no personal data in them)."""
    return PlainTextResponse(READS.exposition(), media_type="text/plain; version=0.0.4")


def _models(request: Request) -> dict[str, dict[str, object]]:
    scorer = getattr(request.app.state, "scorer", None)
    if scorer is None:
        return {}
    store = scorer.store
    return {
        task: {
            "state": s.state,
            "version": s.version,
            "compiled": store.compiled(task),  # predicting through native code yet
            **({"reason": s.reason} if s.reason else {}),
            # The champion this server will not serve (the reason says why).
            **({"refusedVersion": s.refused_version} if s.refused_version is not None else {}),
        }
        for task, s in store.status.items()
    }


async def readyz(request: Request) -> JSONResponse:
    """The database answers and its schema is current; the models' state is reported (a
    missing, degraded or refused model does not make the service unready: it serves the rest,
    and every instance would refuse the same model; the status is then "degraded")."""
    try:
        async with request.app.state.pool.acquire(timeout=2) as conn:
            missing = await migrate.pending(conn)
    except Exception as exc:  # any failure here means "not ready", with the reason logged
        _log.warning("readiness check failed: %r", exc)
        return JSONResponse({"status": "unavailable", "database": "unreachable"}, status_code=503)
    if missing:
        names = [f"{m.version:04d}_{m.name}" for m in missing]
        return JSONResponse(
            {"status": "unavailable", "database": "ok", "pendingMigrations": names},
            status_code=503,
        )
    models = _models(request)
    states = {m["state"] for m in models.values()}
    # Loading models (just after start) do not make it unready either: the rest answers.
    status = "degraded" if "degraded" in states else LOADING if LOADING in states else "ok"
    return JSONResponse({"status": status, "database": "ok", "models": models})


SHUTTING_DOWN = "SHUTTING_DOWN"


class AnswerWhenCancelled:
    """A request still running when the shutdown grace ends gets a JSON 503 that says so.

    The server cancels what is left at the end of ``CDM_SHUTDOWN_GRACE_SECONDS`` (its
    transaction rolls back); left alone, the cancellation reaches uvicorn, which answers a
    plain-text 500. Here it is caught at the edge of the app, before any byte was sent, and
    answered as a GraphQL error a client can act on: retry, elsewhere or later.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if started or task is None:
                raise
            task.uncancel()  # handled: the answer below is this task's last work
            _log.warning("request cancelled at shutdown: %s %s", scope["method"], scope["path"])
            await _shutting_down(scope, send)


async def _shutting_down(scope: Scope, send: Send) -> None:
    accept = dict(scope["headers"]).get(b"accept", b"").decode("latin-1")
    body = orjson.dumps(
        request_error("The server is shutting down and stopped this request before it "
                      "finished; retry it (writes are idempotent).", SHUTTING_DOWN)
    )  # fmt: skip
    await send({
        "type": "http.response.start", "status": 503,
        "headers": [
            (b"content-type", (negotiate(accept) or JSON).encode()),
            (b"content-length", str(len(body)).encode()),
            (b"retry-after", b"1"), (b"cache-control", b"no-store"), (b"connection", b"close"),
        ],
    })  # fmt: skip
    await send({"type": "http.response.body", "body": body})


class CdmApp(Starlette):
    """Starlette, with a straight path for ``POST /graphql``: nearly every request.

    Its endpoint answers every outcome itself (errors included, as JSON), so the routing and
    the exception middleware Starlette runs for each request (about 6 % of a short read's CPU)
    have nothing to do for it; it keeps the answer to a request cut short at shutdown. Every
    other request (GET /graphql, health, metrics, the dashboard) goes through Starlette.
    """

    def __init__(self, graphql: GraphQLEndpoint, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.graphql = graphql

        async def post(scope: Scope, receive: Receive, send: Send) -> None:
            response = await graphql.handle(Request(scope, receive))
            await response(scope, receive, send)

        self._post_graphql = AnswerWhenCancelled(post)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"] == "/graphql"
            and not scope.get("root_path")  # mounted elsewhere: Starlette routes it
        ):
            scope["app"] = self
            await self._post_graphql(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def _tune_garbage_collector() -> None:
    """Keep the cyclic GC off the long-lived heap.

    Freezing what exists after start-up (schema, libraries, caches) moves it out of the
    collector's sight, so the collections that requests trigger only walk young objects.
    (Raising the thresholds as well made collections rarer but long enough to show in p99.)
    No full collection first: it walked the whole heap (20-60 ms of every worker's start,
    before its first answer) to free about ten objects.
    """
    gc.freeze()


def _models_loaded(_task: asyncio.Task[None]) -> None:
    # What the models brought (LightGBM, its boosters) is long-lived too: out of the
    # collector's sight as well. No collection first: it would pause requests being served.
    gc.freeze()


def _start_refreshing(store: ModelStore, every: float) -> asyncio.Task[None] | None:
    """Check the registry for new champions every `every` seconds, in the background."""
    if every <= 0:
        return None

    async def loop() -> None:
        while True:
            await asyncio.sleep(every)
            try:
                await store.refresh()
            except Exception:  # never let the loop die; the store logs what failed
                _log.exception("model refresh failed")

    return asyncio.get_running_loop().create_task(loop(), name="model-refresh")


async def _open_pools(url: str, settings: Settings) -> tuple[BoundedPool, BoundedPool]:
    """The main pool and the compiled reads' pool (api/sql_compiler.py: connections of their
    own, whose statements are planned once), connected at the same time: a worker's start
    waits for one round of connections, not two. If either fails, the other is closed."""
    open_pool = partial(
        create_pool,
        url,
        max_size=settings.pool_max_size,
        statement_timeout_ms=settings.statement_timeout_ms,
        acquire_timeout=settings.pool_acquire_timeout_seconds,
    )
    opened = await asyncio.gather(
        open_pool(min_size=settings.pool_min_size),
        open_pool(min_size=1, generic_plans=True),
        return_exceptions=True,
    )
    pools = [p for p in opened if isinstance(p, BoundedPool)]
    if len(pools) < len(opened):
        await asyncio.gather(*(p.close() for p in pools))
        raise next(e for e in opened if isinstance(e, BaseException))
    return pools[0], pools[1]


def create_app(settings: Settings, database_url: str | None = None) -> CdmApp:
    """The app for `settings`; `database_url` overrides the settings' (and the embedded one)."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        url = database_url or await resolve_database_url(settings.database_url, settings.data_dir)
        pool, reads = await _open_pools(url, settings)
        try:
            async with pool.acquire() as conn:
                missing = await migrate.pending(conn)
            if missing:
                raise migrate.MigrationError(
                    f"{len(missing)} migration(s) not applied; run `cdm db migrate` first"
                )
            app.state.pool = pool
            app.state.read_pool = reads
            app.state.database_url = url
            app.state.settings = settings
            refusals = RefusalLimiter(
                burst=settings.audit_refusals_burst,
                per_minute=settings.audit_refusals_per_minute,
            )
            app.state.audit = audit = AuditWriter(
                pool, settings.audit_flush_seconds, refusals=refusals
            )
            app.state.scorer = scorer = build_scorer(settings)
            # Not awaited: the server answers at once; a score asked for before its model is
            # loaded answers MODEL_UNAVAILABLE ("loading"), /readyz shows each model's state.
            loading = scorer.store.load_in_background(settings.model_load_timeout_seconds)
            loading.add_done_callback(_models_loaded)
            refresher = _start_refreshing(scorer.store, settings.model_refresh_seconds)
            _tune_garbage_collector()
            audit.start()
            try:
                yield
            finally:
                if refresher is not None:
                    refresher.cancel()
                scorer.store.close()
                await audit.close()
        finally:
            await asyncio.gather(pool.close(), reads.close())

    limits = QueryLimits(
        max_tokens=settings.query_max_tokens, max_fields=settings.query_max_fields,
        max_aliases=settings.query_max_aliases, max_depth=settings.query_max_depth,
    )  # fmt: skip
    endpoint = GraphQLEndpoint(
        schema, graphiql=settings.serve_graphiql, compiled=settings.compiled_queries, limits=limits,
        max_body_bytes=settings.max_body_bytes, authenticator=Authenticator(settings),
        rate_limiter=RateLimiter(settings.rate_limit_per_second, settings.rate_limit_burst),
        max_cost=settings.query_max_cost, production=settings.production,
    )  # fmt: skip
    return CdmApp(
        endpoint,
        routes=[
            Route("/graphql", endpoint.handle, methods=["GET", "POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            *dashboard.ROUTES,
            *graphiql.ROUTES,
        ],
        lifespan=lifespan,
        middleware=[Middleware(AnswerWhenCancelled)],
    )


def app_from_environment() -> Starlette:
    """App factory for server workers: settings (and database URL) from the environment."""
    return create_app(load_settings())
