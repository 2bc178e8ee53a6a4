"""The /graphql endpoint, following the GraphQL-over-HTTP specification.

Our own thin endpoint instead of strawberry's view: it caches parsed and validated documents
(most traffic repeats a handful of queries), runs graphql-core directly on strawberry's
schema, and encodes with orjson. Media types and status codes follow the spec:
``application/graphql-response+json`` when the client accepts it (request errors are 4xx),
``application/json`` for legacy clients (request errors are 200 with ``errors``).
"""

from __future__ import annotations

import logging
import math
import os
import re
from functools import lru_cache
from inspect import isawaitable
from typing import Any

import orjson
import strawberry
from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    StringValueNode,
    Visitor,
    execute,
    get_operation_ast,
    parse,
    specified_rules,
    validate,
    visit,
)
from graphql.execution.values import get_variable_values
from graphql.language import print_ast
from graphql.validation import NoSchemaIntrospectionCustomRule
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from api import graphiql, parity
from api.audit import credential_hint, refusal_entry
from api.auth import Authenticator
from api.authorization import Authorization, apply_masks, authorize
from api.compiled import CompiledQuery, compile_query
from api.context import Context
from api.cost import estimate_cost, over_budget
from api.errors import (
    format_error,
    internal_error,
    is_timeout,
    is_unavailable,
    request_error,
    timed_out,
    unavailable,
)
from api.limits import QueryLimits, check_shape
from api.metrics import GRAPHQL_CORE, PYTHON, READS, SQL
from api.rate_limit import RateLimiter
from api.remembered_counts import CountMemory
from api.sql_compiler import Fallback, SqlQuery, compile_sql
from domain.access import Caller, Role
from domain.audit import AuditKind
from domain.standardize import has_nul

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"
MAX_QUERY_LENGTH = 100_000
_NO_CACHE = {"Cache-Control": "no-store"}
_RETRY = {"Retry-After": "1"}
_log = logging.getLogger(__name__)


class EncodedAnswer:
    """A 200 whose body is already JSON bytes, sent as its two ASGI messages: the hot path's
    answer, without the header object a Starlette ``Response`` builds for each."""

    __slots__ = ("body", "raw_headers")
    status_code = 200

    def __init__(self, body: bytes, media: str, statements: int | None) -> None:
        self.body = body
        self.raw_headers = [
            (b"content-length", str(len(body)).encode()),
            (b"content-type", media.encode()),
            (b"cache-control", b"no-store"),
        ]
        if statements is not None:
            self.raw_headers.append((b"x-sql-statements", str(statements).encode()))

    async def __call__(self, _scope: Scope, _receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        await send({"type": "http.response.body", "body": self.body})


Answer = Response | EncodedAnswer


def negotiate(accept: str | None) -> str | None:
    """The response media type for an Accept header, or None if we can serve none it allows."""
    if not accept:
        return JSON  # the spec's rule for clients that do not say
    accepted = [part.split(";", 1)[0].strip().lower() for part in accept.split(",")]
    if GRAPHQL_RESPONSE in accepted:
        return GRAPHQL_RESPONSE
    if JSON in accepted or "application/*" in accepted or "*/*" in accepted:
        return JSON
    return None


# PostgreSQL cannot store NUL in text or JSON; refuse it where it enters, with a clear word.
_NUL = "text must not contain NUL (U+0000) characters"


def _literal_nul(document: DocumentNode) -> bool:
    """Whether a string literal of the document holds a NUL (written as an escape)."""
    found = False

    class Finder(Visitor):
        def enter_string_value(self, node: StringValueNode, *_: object) -> None:
            nonlocal found
            found = found or "\x00" in node.value

    visit(document, Finder())
    return found


_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def _request_id(header: str | None) -> str:
    """The client's X-Request-Id when it is a sane token, else a new one."""
    if header and _REQUEST_ID.match(header):
        return header
    return os.urandom(16).hex()  # as random as uuid4().hex, without building a UUID


def _root_fields(operation: OperationDefinitionNode) -> str:
    roots = [s.name.value for s in operation.selection_set.selections if isinstance(s, FieldNode)]
    return ",".join(dict.fromkeys(roots)) or "query"


def _audit_reads(
    state: Any, context: Context, operation: OperationDefinitionNode, authorization: Authorization
) -> None:
    """Queue an audit entry when the response carries personal data in clear."""
    if not authorization.reads or not context.db.customers_read:
        return
    state.audit.add(
        context.audit_entry(
            AuditKind.READ, _root_fields(operation), context.db.customers_read,
            {"fields": list(authorization.reads)},
        )
    )  # fmt: skip


def _audit_refusal(
    request: Request, request_id: str, status: int, reason: str, caller: Caller | None = None,
    operation: OperationDefinitionNode | None = None, denied: tuple[str, ...] = (),
) -> None:  # fmt: skip
    """Queue the audit entry of a 401 (``caller`` None) or 403, rate-limited per caller."""
    client = request.client.host if request.client else "unknown"
    if caller is None:  # nothing proven: what the credential claimed, and where it came from
        code, what = "UNAUTHENTICATED", f"{request.method} {request.url.path}"
        details = {**credential_hint(request.headers.get("authorization")), "client": client}
    else:
        assert operation is not None
        code, what, details = "FORBIDDEN", _root_fields(operation), {"fields": list(denied)}
        if operation.name is not None:
            details["operationName"] = operation.name.value
    details.update(status=status, code=code, reason=reason)
    entry = refusal_entry(caller, request_id, what, details)
    request.app.state.audit.refused(entry, caller.actor if caller else f"client:{client}")


def prepared_query(document: DocumentNode) -> str:
    """The document's text, for a log line."""
    return print_ast(document)


class PreparedDocument:
    """A parsed and validated document, and its compiled operations (made on first use)."""

    __slots__ = ("_authorized", "_compiled", "_costs", "_sql", "document", "errors", "fragments")

    def __init__(self, document: DocumentNode | None, errors: list[GraphQLError]) -> None:
        self.document = document
        self.errors = errors
        self.fragments = {
            d.name.value: d for d in (document.definitions if document else ())
            if isinstance(d, FragmentDefinitionNode)
        }  # fmt: skip
        self._compiled: dict[str | None, CompiledQuery | None] = {}
        self._sql: dict[tuple[str | None, Role], SqlQuery | str] = {}
        self._costs: dict[str | None, int] = {}  # of operations whose cost no variable sets
        self._authorized: dict[tuple[str | None, Role], Authorization] = {}

    def authorization(
        self, schema: GraphQLSchema, operation: OperationDefinitionNode, role: Role
    ) -> Authorization:
        """What ``role`` may not use in `operation` and what it sees masked (made once)."""
        key = (operation.name.value if operation.name else None, role)
        found = self._authorized.get(key)
        if found is None:
            found = self._authorized[key] = authorize(schema, self.fragments, operation, role)
        return found

    def cost(
        self, schema: GraphQLSchema, operation: OperationDefinitionNode,
        variables: dict[str, Any] | None,
    ) -> int:  # fmt: skip
        """The operation's estimated cost with these variables (kept when none matter)."""
        name = operation.name.value if operation.name else None
        found = self._costs.get(name)
        if found is None:
            found, constant = estimate_cost(schema, self.fragments, operation, variables)
            if constant:
                self._costs[name] = found
        return found

    def sql(
        self, schema: GraphQLSchema, operation: OperationDefinitionNode, role: Role
    ) -> SqlQuery | str:
        """The SQL plan of `operation` for ``role`` (made once), or why there is none."""
        key = (operation.name.value if operation.name else None, role)
        found = self._sql.get(key)
        if found is None:
            assert self.document is not None
            reads = bool(self.authorization(schema, operation, role).reads)
            found = self._sql[key] = compile_sql(
                schema, self.document, operation, role, track_reads=reads
            )
        return found

    def compiled(
        self, schema: GraphQLSchema, operation: OperationDefinitionNode
    ) -> CompiledQuery | None:
        """The fast-path plan for `operation`, or None when graphql-core must run it."""
        name = operation.name.value if operation.name else None
        if name not in self._compiled:
            assert self.document is not None
            self._compiled[name] = compile_query(schema, self.document, operation)
        return self._compiled[name]


class GraphQLEndpoint:
    """An ASGI-friendly Starlette endpoint serving one strawberry schema."""

    def __init__(
        self, schema: strawberry.Schema, *, graphiql: bool, compiled: bool = True,
        cache_size: int = 512, limits: QueryLimits | None = None,
        max_body_bytes: int = 1_000_000, authenticator: Authenticator | None = None,
        rate_limiter: RateLimiter | None = None, max_cost: int = 50_000, production: bool = False,
    ) -> None:  # fmt: skip
        self._schema = schema._schema  # the graphql-core schema strawberry built
        self._graphiql = graphiql
        self._compiled = compiled
        self._limits = limits or QueryLimits()
        self._max_body = max_body_bytes
        self._prepare = lru_cache(maxsize=cache_size)(self._parse_and_validate)
        self._authenticator = authenticator or Authenticator()
        self._rate = rate_limiter or RateLimiter(0, 1)
        self._max_cost = max_cost
        # Production: no introspection, and no "did you mean" hints that map the schema.
        self._production = production
        self._rules = (*specified_rules, NoSchemaIntrospectionCustomRule) if production else None
        self.counts = CountMemory()  # filtered lists' counts, reused while still exact

    def _parse_and_validate(self, query: str) -> PreparedDocument:
        try:
            document = parse(query, max_tokens=self._limits.max_tokens)
        except GraphQLError as error:
            return PreparedDocument(None, [error])
        too_complex = check_shape(document, self._limits)  # before validation's own costs
        if too_complex:
            return PreparedDocument(None, too_complex)
        if _literal_nul(document):
            return PreparedDocument(None, [GraphQLError(_NUL)])
        errors = validate(self._schema, document, self._rules, hide_suggestions=self._production)
        return PreparedDocument(document, errors)

    def _reply(
        self, body: dict[str, Any], media: str, status: int = 200, headers: dict | None = None
    ) -> Response:
        return Response(
            orjson.dumps(body), status_code=status, media_type=media,
            headers={**_NO_CACHE, **(headers or {})},
        )  # fmt: skip

    def _bad_request(self, message: str, media: str, status: int = 400) -> Response:
        return self._reply(request_error(message), media, status)

    async def handle(self, request: Request) -> Answer:
        """Serve one GraphQL request (GET for queries, POST for anything).

        The database being unreachable (or every connection busy past the acquire timeout)
        is a 503 with one retryable ``DB_UNAVAILABLE`` error; a statement stopped by the
        statement timeout a 504 ``TIMEOUT``; anything else unexpected is a 500 with an error
        id, never a stack trace."""
        try:
            return await self._handle(request)
        except ClientDisconnect:
            # The client left before sending its whole body: nobody to answer, nothing wrong.
            _log.debug("client disconnected before the request body was read")
            return Response(status_code=400)
        except Exception as exc:
            media = negotiate(request.headers.get("accept")) or JSON
            if is_unavailable(exc):
                return self._reply(unavailable(exc), media, 503, _RETRY)
            if is_timeout(exc):
                return self._reply(timed_out(exc), media, 504, _RETRY)
            return self._reply(internal_error(exc), media, 500)

    async def _handle(self, request: Request) -> Answer:
        # The headers read below, decoded once (Starlette's Headers scans the list per lookup);
        # the first of a repeated header wins, as with Headers.get.
        incoming = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in reversed(request.scope["headers"])
        }
        request_id = _request_id(incoming.get("x-request-id"))
        response = await self._serve(request, request_id, incoming)
        response.raw_headers.append((b"x-request-id", request_id.encode()))
        return response

    async def _serve(self, request: Request, request_id: str, incoming: dict[str, str]) -> Answer:
        accept = incoming.get("accept")
        if (
            request.method == "GET"
            and self._graphiql
            and "query" not in request.query_params
            and "text/html" in (accept or "")
        ):
            return graphiql.page()
        media = negotiate(accept)
        if media is None:
            return Response(
                f"can only answer with {GRAPHQL_RESPONSE} or {JSON}; adjust the Accept header",
                status_code=406, media_type="text/plain",
            )  # fmt: skip
        # Request errors are 4xx under the new media type, 200 under the legacy one.
        request_status = 400 if media == GRAPHQL_RESPONSE else 200
        state = request.app.state
        caller = await self._authenticator.authenticate(state.pool, incoming.get("authorization"))
        if isinstance(caller, str):
            _audit_refusal(request, request_id, 401, caller)
            return self._reply(
                request_error(caller, "UNAUTHENTICATED"), media, 401,
                {"WWW-Authenticate": 'Bearer realm="cdm"'},
            )  # fmt: skip
        wait = self._rate.retry_after(caller.actor)
        if wait is not None:
            seconds = max(1, math.ceil(wait))
            message = (
                f"too many requests with this key: at most {self._rate.per_second:g} per second "
                f"(bursts of {self._rate.burst}); retry in {seconds} s"
            )
            return self._reply(
                request_error(message, "RATE_LIMITED"), media, 429, {"Retry-After": str(seconds)}
            )
        params = await self._params(request, media, incoming)
        if isinstance(params, Response):
            return params
        query, variables, operation_name = params

        prepared = self._prepare(query)
        if prepared.errors:
            body = {"errors": [format_error(e) for e in prepared.errors]}
            return self._reply(body, media, request_status)
        document = prepared.document
        assert document is not None
        operation = get_operation_ast(document, operation_name)
        if operation is None:
            message = (
                f"no operation named {operation_name!r} in the document"
                if operation_name else "the document has several operations: set operationName"
            )  # fmt: skip
            return self._bad_request(message, media, request_status)
        if request.method == "GET" and operation.operation is not OperationType.QUERY:
            return Response(
                orjson.dumps(request_error("only queries may be sent with GET; use POST")),
                status_code=405, media_type=media, headers={"Allow": "POST"},
            )  # fmt: skip

        authorization = prepared.authorization(self._schema, operation, caller.role)
        refusal = authorization.refusal(caller.role)
        if refusal is not None:
            status = 403 if media == GRAPHQL_RESPONSE else 200
            _audit_refusal(
                request, request_id, status, refusal, caller, operation, authorization.denied
            )
            return self._reply(request_error(refusal, "FORBIDDEN"), media, status)

        too_costly = over_budget(prepared.cost(self._schema, operation, variables), self._max_cost)
        if too_costly is not None:
            return self._reply({"errors": [format_error(too_costly)]}, media, request_status)

        headers = {}
        context = Context.for_request(state.pool, state.settings, state.scorer, caller, request_id)
        if self._compiled and state.settings.sql_reads:
            answered = await self._answer_in_sql(
                request, prepared, operation, authorization, context, variables, media
            )
            if answered is not None:
                return answered
        compiled = prepared.compiled(self._schema, operation) if self._compiled else None
        if compiled is not None:
            outcome = await compiled.execute(context, variables, hide_suggestions=self._production)
            if isinstance(outcome, list):  # variables that do not fit the operation
                body = {"errors": [format_error(e) for e in outcome]}
                return self._reply(body, media, request_status)
            if outcome is not None:
                if authorization.masks:
                    apply_masks(outcome, authorization.masks)
                if state.settings.expose_statement_count:
                    headers["X-SQL-Statements"] = str(context.db.statements)
                _audit_reads(state, context, operation, authorization)
                READS.answer(PYTHON)
                return self._reply({"data": outcome}, media, 200, headers)
        # Not compiled, or a client's mistake to word: graphql-core runs it, in the same context
        # (what the fast path loaded is served from the loaders, not read again).
        result = execute(
            self._schema, document, context_value=context, variable_values=variables,
            operation_name=operation_name, hide_suggestions=self._production,
        )  # fmt: skip
        if isawaitable(result):
            result = await result
        READS.answer(GRAPHQL_CORE)
        body: dict[str, Any] = {}
        status = 200
        if result.errors:
            for error in result.errors:
                if error.original_error is not None and is_unavailable(error.original_error):
                    return self._reply(unavailable(error.original_error), media, 503, _RETRY)
                if error.original_error is not None and is_timeout(error.original_error):
                    return self._reply(timed_out(error.original_error), media, 504, _RETRY)
            body["errors"] = [format_error(e) for e in result.errors]
            if result.data is None and all(e.path is None for e in result.errors):
                # Variables that do not fit the operation: no execution happened.
                status = request_status
        if status == 200:
            if authorization.masks and result.data is not None:
                apply_masks(result.data, authorization.masks)
            body["data"] = result.data
            if result.data is not None:
                _audit_reads(state, context, operation, authorization)
        if state.settings.expose_statement_count:
            headers["X-SQL-Statements"] = str(context.db.statements)
        return self._reply(body, media, status, headers)

    async def _answer_in_sql(
        self, request: Request, prepared: PreparedDocument, operation: OperationDefinitionNode,
        authorization: Authorization, context: Context, variables: dict[str, Any] | None,
        media: str,
    ) -> Answer | None:  # fmt: skip
        """The answer built by one SQL statement, or None when the Python paths must answer."""
        assert context.caller is not None
        name = operation.name.value if operation.name else None
        plan = prepared.sql(self._schema, operation, context.caller.role)
        if isinstance(plan, str):
            READS.fall_back(name, plan)
            return None
        coerced = get_variable_values(
            self._schema, operation.variable_definitions or (), variables or {},
            hide_suggestions=self._production,
        )  # fmt: skip
        if isinstance(coerced, list):  # variables that do not fit the operation
            status = 400 if media == GRAPHQL_RESPONSE else 200
            return self._reply({"errors": [format_error(e) for e in coerced]}, media, status)
        settings = context.settings
        try:
            found = await plan.look_up(coerced, context.db) if plan.lookups else None
            statement = plan.render(coerced, settings, found, self.counts)
        except Fallback as why:
            READS.fall_back(name, why.reason)
            return None

        async def complete(text: bytes) -> bytes | None:
            """The statement's JSON with the fields Python answers filled in (None: fall back)."""
            if not plan.answers_in_python:
                return text
            data = orjson.loads(text)
            if not await plan.fill(data, context, variables):
                READS.fall_back(name, "a field answered by Python failed")
                return None
            return orjson.dumps(data)

        state = request.app.state
        if settings.verify_sql_reads:
            assert prepared.document is not None
            document = prepared.document

            async def reference(other: Context) -> Any:
                result = execute(
                    self._schema, document, context_value=other, variable_values=variables,
                    operation_name=name,
                )  # fmt: skip
                return await result if isawaitable(result) else result

            def masked(data: Any) -> Any:
                if authorization.masks and data is not None:
                    apply_masks(data, authorization.masks)
                return data

            checked = await parity.answer_checked(
                state.pool, state.database_url, context, statement.sql, statement.params,
                reference, masked, prepared_query(document), complete,
            )  # fmt: skip
            if checked is None:
                return None
            data, row = checked
        else:
            pool = state.pool if plan.aggregates else state.read_pool
            row = await context.db.fetchrow_composed(statement.sql, statement.params, pool)
            answer = await complete(row[0])
            if answer is None:
                return None
            data = answer
        statement.remember(row, self.counts)
        if statement.reads_customers:
            context.db.read_customers(row[1])
        _audit_reads(state, context, operation, authorization)
        READS.answer(SQL)
        statements = context.db.statements if settings.expose_statement_count else None
        return EncodedAnswer(b'{"data":' + data + b"}", media, statements)

    async def _params(
        self, request: Request, media: str, incoming: dict[str, str]
    ) -> tuple[str, dict[str, Any] | None, str | None] | Response:
        if request.method == "GET":
            raw: Any = dict(request.query_params)
            if "variables" in raw:
                try:
                    raw["variables"] = orjson.loads(raw["variables"])
                except orjson.JSONDecodeError:
                    return self._bad_request("`variables` is not valid JSON", media)
        else:
            content_type = incoming.get("content-type", "")
            if content_type.split(";", 1)[0].strip().lower() != JSON:
                return self._bad_request(
                    "send the request body as application/json", media, status=415
                )
            declared = incoming.get("content-length", "")
            too_large = f"the request body is larger than {self._max_body:,} bytes"
            if declared.isdigit() and int(declared) > self._max_body:
                return self._bad_request(too_large, media, status=413)
            body = bytearray()
            while True:  # bounded even without a Content-Length
                message = await request.receive()
                if message["type"] == "http.disconnect":
                    raise ClientDisconnect
                body += message.get("body", b"")
                if len(body) > self._max_body:
                    return self._bad_request(too_large, media, status=413)
                if not message.get("more_body", False):
                    break
            try:
                raw = orjson.loads(body)
            except orjson.JSONDecodeError:
                return self._bad_request("the request body is not valid JSON", media)
        if not isinstance(raw, dict):
            return self._bad_request("the request body must be a JSON object", media)
        query = raw.get("query")
        variables = raw.get("variables")
        operation_name = raw.get("operationName")
        if not isinstance(query, str) or not query.strip():
            return self._bad_request("`query` must be a non-empty string", media)
        if len(query) > MAX_QUERY_LENGTH:
            return self._bad_request(f"`query` is longer than {MAX_QUERY_LENGTH} characters", media)
        if variables is not None and not isinstance(variables, dict):
            return self._bad_request("`variables` must be a JSON object", media)
        if variables and has_nul(variables):
            return self._bad_request(_NUL, media)
        if operation_name is not None and not isinstance(operation_name, str):
            return self._bad_request("`operationName` must be a string", media)
        return query, variables, operation_name
