"""A compiled fast path for GraphQL queries.

graphql-core interprets a document afresh for every request: for every field of every object
it collects fields, looks up definitions, builds a resolve-info object, checks awaitables and
completes the value through generic code. For a page of 50 customers that is thousands of
fields and most of a request's CPU time.

Here a validated query document is compiled once into a tree of plans that already know, for
each field, its response key, how to read it (a plain attribute read for strawberry's basic
fields, the field's resolver otherwise), its argument values when they are literals, and how to
complete its value (leaf serializer, list, object). Resolvers of strawberry fields without
extensions are called directly with their arguments converted once, at compile time.

Execution walks that tree breadth first: synchronous values are completed at once, async
resolvers of the whole level are collected and awaited together, then their values completed
(which may start the next level). Every loader call of a level is therefore issued before any
of them is awaited, so DataLoaders batch exactly as under graphql-core, with fewer tasks.

It runs **queries only**, and only while nothing goes wrong. An error (a resolver refusing an
argument, a null in a non-null field, our own bug) abandons the fast path and graphql-core
answers with the exact errors and partial data the spec requires, in the same request
context, so what the fast path already loaded comes from the loaders' caches. A failure *in
the database* (a statement timeout, a lost connection, a statement refused) is raised at once
instead: a statement that failed is never silently run a second time. Documents using
features not compiled here (abstract types, introspection, directives other than literal
@skip/@include, a response key selected twice) are simply left to graphql-core.
A parity test runs every query of the test suite through both paths and compares.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from operator import attrgetter
from types import CoroutineType
from typing import Any

import asyncpg
from graphql import (
    DocumentNode,
    Executor,
    FieldNode,
    GraphQLBoolean,
    GraphQLField,
    GraphQLID,
    GraphQLInt,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLString,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    get_argument_values,
    is_leaf_type,
)
from graphql.pyutils import Path
from strawberry.types import Info
from strawberry.types.arguments import convert_arguments

from api.errors import is_unavailable
from api.selection import Unsupported, collect_fields, uses_variables

_STRAWBERRY_FIELD = "strawberry-definition"
_NATIVE = {GraphQLString: str, GraphQLID: str, GraphQLInt: int, GraphQLBoolean: bool}


class Bail(Exception):
    """Something went wrong while executing: hand the request to graphql-core."""


class _Pending:
    """An awaited field value and where its completed value goes."""

    __slots__ = ("awaitable", "complete", "key", "path", "target")

    def __init__(self, target: Any, key: Any, awaitable: Any, complete: Any, path: Any) -> None:
        self.target = target
        self.key = key
        self.awaitable = awaitable
        self.complete = complete
        self.path = path


# A completer turns a resolved value into its response value; async work found on the way is
# appended to `pending` (with a placeholder left in the response).
Completer = Callable[[Any, Executor, Path, list[_Pending]], Any]


def _is_awaitable(value: Any) -> bool:
    return type(value) is CoroutineType or isinstance(value, asyncio.Future)


class _FieldPlan:
    __slots__ = ("args", "call", "complete", "definition", "dynamic_args", "key", "nodes",
                 "parent_type", "read", "resolve", "typename")  # fmt: skip

    def __init__(
        self, key: str, definition: GraphQLField | None, nodes: list[FieldNode],
        parent_type: GraphQLObjectType,
    ) -> None:  # fmt: skip
        self.key = key
        self.definition = definition
        self.nodes = nodes
        self.parent_type = parent_type
        self.read: Callable[[Any], Any] | None = None
        self.call: Callable[[Any, Executor, Path], Any] | None = None
        self.resolve: Callable[..., Any] | None = None
        self.args: dict[str, Any] = {}
        self.dynamic_args = False
        self.complete: Completer = _identity
        self.typename: str | None = None


def _identity(value: Any, _ex: Executor, _path: Path, _pending: list[_Pending]) -> Any:
    return value


class _Compiler:
    def __init__(self, schema: GraphQLSchema, document: DocumentNode) -> None:
        self.schema = schema
        self.strawberry = getattr(schema, "_strawberry_schema", None)
        self.fragments = {
            d.name.value: d for d in document.definitions if d.kind == "fragment_definition"
        }

    def object_plans(
        self, object_type: GraphQLObjectType, selection_set: SelectionSetNode
    ) -> list[_FieldPlan]:
        nodes = collect_fields(object_type, selection_set, self.fragments)
        return [self.field_plan(object_type, key, node) for key, node in nodes.items()]

    def field_plan(self, parent: GraphQLObjectType, key: str, node: FieldNode) -> _FieldPlan:
        name = node.name.value
        if name == "__typename":
            plan = _FieldPlan(key, None, [node], parent)
            plan.typename = parent.name
            return plan
        if name.startswith("__"):
            raise Unsupported("introspection")
        definition = parent.fields[name]
        plan = _FieldPlan(key, definition, [node], parent)
        field = (definition.extensions or {}).get(_STRAWBERRY_FIELD)
        dynamic = bool(definition.args) and uses_variables(node)
        if field is not None and field.is_basic_field and not definition.args:
            plan.read = attrgetter(field.python_name)
        elif field is not None and self._direct(field):
            plan.call = self._direct_call(plan, field, dynamic)
        elif definition.resolve is not None:
            plan.resolve = definition.resolve
            plan.dynamic_args = dynamic
            if definition.args and not dynamic:
                plan.args = get_argument_values(definition, node)
        else:
            raise Unsupported(f"field {parent.name}.{name} has no resolver")
        plan.complete = self.completer(definition.type, node)
        return plan

    def _direct(self, field: Any) -> bool:
        """A resolver we may call ourselves: no extensions or permissions wrap it."""
        return (
            self.strawberry is not None
            and field.base_resolver is not None
            and not field.extensions
            and not field.permission_classes
        )

    def _direct_call(
        self, plan: _FieldPlan, field: Any, dynamic: bool
    ) -> Callable[[Any, Executor, Path], Any]:
        resolver = field.base_resolver
        func = resolver.wrapped_func
        strawberry_schema = self.strawberry

        def arguments(variables: dict[str, Any] | None) -> dict[str, Any]:
            return convert_arguments(
                get_argument_values(plan.definition, plan.nodes[0], variables),  # type: ignore[arg-type]
                field.arguments,
                scalar_registry=strawberry_schema.schema_converter.scalar_registry,
                config=strawberry_schema.config,
            )

        literal = None if dynamic else arguments(None)
        # Arguments that use variables are the same for every object of one execution (a
        # thousand customers' `churnRisk(asOf: $at)`): convert them once per execution.
        last: list[Any] = [None, None]  # (weak reference to the executor, its arguments)
        wants_self = resolver.self_parameter is not None
        info_name = resolver.info_parameter.name if resolver.info_parameter else None
        source_names = [p.name for p in (resolver.parent_parameter, resolver.root_parameter) if p]
        definition, nodes, parent = plan.definition, plan.nodes, plan.parent_type

        def call(source: Any, ex: Executor, path: Path) -> Any:
            if literal is not None:
                call_kwargs = dict(literal)
            else:
                if last[0] is None or last[0]() is not ex:
                    last[:] = [weakref.ref(ex), arguments(ex.variable_values)]
                call_kwargs = dict(last[1])
            if info_name is not None:
                raw = ex.build_resolve_info(definition, nodes, parent, path)  # type: ignore[arg-type]
                call_kwargs[info_name] = Info(_raw_info=raw, _field=field)
            for name in source_names:
                call_kwargs[name] = source
            return func(source, **call_kwargs) if wants_self else func(**call_kwargs)

        return call

    def completer(self, type_: Any, node: FieldNode) -> Completer:
        if isinstance(type_, GraphQLNonNull):
            inner = self.completer(type_.of_type, node)

            def non_null(value: Any, ex: Executor, path: Path, pending: list[_Pending]) -> Any:
                if value is None:
                    raise Bail
                return inner(value, ex, path, pending)

            return non_null
        if isinstance(type_, GraphQLList):
            return self.list_completer(self.completer(type_.of_type, node))
        if is_leaf_type(type_):
            return self.leaf_completer(type_)
        if isinstance(type_, GraphQLObjectType):
            assert node.selection_set is not None
            return self.object_completer(type_, node.selection_set)
        raise Unsupported(f"abstract type {type_}")

    @staticmethod
    def leaf_completer(type_: Any) -> Completer:
        serialize = type_.serialize
        native = _NATIVE.get(type_)

        if native is None:

            def leaf(value: Any, _ex: Executor, _path: Path, _pending: list[_Pending]) -> Any:
                return None if value is None else serialize(value)

            return leaf

        def native_leaf(value: Any, _ex: Executor, _path: Path, _pending: list[_Pending]) -> Any:
            if value is None or type(value) is native:
                return value
            return serialize(value)

        return native_leaf

    @staticmethod
    def list_completer(item: Completer) -> Completer:
        def complete_list(value: Any, ex: Executor, path: Path, pending: list[_Pending]) -> Any:
            if value is None:
                return None
            return [
                item(element, ex, Path(path, index, None), pending)
                for index, element in enumerate(value)
            ]

        return complete_list

    def object_completer(
        self, type_: GraphQLObjectType, selection_set: SelectionSetNode
    ) -> Completer:
        plans = self.object_plans(type_, selection_set)

        def complete_object(value: Any, ex: Executor, path: Path, pending: list[_Pending]) -> Any:
            if value is None:
                return None
            return execute_plans(plans, value, ex, path, pending)

        return complete_object


def execute_plans(
    plans: list[_FieldPlan], source: Any, ex: Executor, path: Path | None,
    pending: list[_Pending],
) -> dict[str, Any]:  # fmt: skip
    """The response object for `source`; values still to be awaited are added to `pending`."""
    result: dict[str, Any] = {}
    for plan in plans:
        if plan.read is not None:
            result[plan.key] = plan.complete(plan.read(source), ex, path, pending)  # type: ignore[arg-type]
            continue
        if plan.typename is not None:
            result[plan.key] = plan.typename
            continue
        field_path = Path(path, plan.key, plan.parent_type.name)
        if plan.call is not None:
            resolved = plan.call(source, ex, field_path)
        else:
            info = ex.build_resolve_info(plan.definition, plan.nodes, plan.parent_type, field_path)
            args = (
                get_argument_values(plan.definition, plan.nodes[0], ex.variable_values)
                if plan.dynamic_args else plan.args
            )  # fmt: skip
            resolved = plan.resolve(source, info, **args)  # type: ignore[misc]
        if _is_awaitable(resolved):
            result[plan.key] = None
            pending.append(_Pending(result, plan.key, resolved, plan.complete, field_path))
        else:
            result[plan.key] = plan.complete(resolved, ex, field_path, pending)
    return result


async def _settle(pending: list[_Pending], ex: Executor) -> None:
    """Await every pending value, level by level, completing each into its place."""
    while pending:
        level = pending[:]
        pending.clear()  # the same list: on failure the caller closes what is left in it
        if len(level) == 1:  # nothing to run alongside: await it without making a task
            try:
                values = [await level[0].awaitable]
            except Exception as exc:
                raise Bail from exc
        else:
            values = await asyncio.gather(*(p.awaitable for p in level), return_exceptions=True)
        for item, value in zip(level, values, strict=True):
            if isinstance(value, BaseException):
                raise Bail from value
            item.target[item.key] = item.complete(value, ex, item.path, pending)


class CompiledQuery:
    """A query document compiled for one operation."""

    __slots__ = ("document", "operation_name", "plans", "schema")

    def __init__(
        self, schema: GraphQLSchema, document: DocumentNode, operation: OperationDefinitionNode
    ) -> None:
        if operation.operation is not OperationType.QUERY:
            raise Unsupported("only queries are compiled")
        if operation.directives:
            raise Unsupported("operation directives")
        self.schema = schema
        self.document = document
        self.operation_name = operation.name.value if operation.name else None
        query_type = schema.query_type
        assert query_type is not None
        self.plans = _Compiler(schema, document).object_plans(query_type, operation.selection_set)

    async def execute(
        self, context: Any, variables: dict[str, Any] | None, *, hide_suggestions: bool = False
    ) -> dict[str, Any] | list | None:
        """The `data` of the response; a list of request errors; or None to fall back."""
        ex = Executor.build(
            self.schema, self.document, None, context, variables, self.operation_name,
            hide_suggestions=hide_suggestions,
        )  # fmt: skip
        if isinstance(ex, list):
            return ex
        pending: list[_Pending] = []
        try:
            data = execute_plans(self.plans, None, ex, None, pending)
            await _settle(pending, ex)
        except Exception as exc:
            for item in pending:  # never started: close them rather than leak coroutines
                if type(item.awaitable) is CoroutineType:
                    item.awaitable.close()
            cause = exc.__cause__ if isinstance(exc, Bail) else exc
            if cause is not None and from_database(cause):
                raise cause from None  # answered now (timeout, outage...), never run again
            return None  # graphql-core words the error and the partial data as the spec says
        return data


def from_database(exc: BaseException) -> bool:
    """Whether ``exc`` came from the database or its driver (not from a client or Python)."""
    return isinstance(exc, asyncpg.PostgresError | asyncpg.InterfaceError) or is_unavailable(exc)


def compile_query(
    schema: GraphQLSchema, document: DocumentNode, operation: OperationDefinitionNode
) -> CompiledQuery | None:
    """The compiled form of `operation`, or None when it is left to graphql-core."""
    try:
        return CompiledQuery(schema, document, operation)
    except Unsupported:
        return None
