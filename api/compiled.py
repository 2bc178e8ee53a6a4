"""A compiled fast path for GraphQL queries.

graphql-core interprets a document afresh for every request: for every field of every object
it collects fields, looks up definitions, builds a resolve-info object, checks awaitables and
completes the value through generic code. For a page of 50 customers that is thousands of
fields and most of a request's CPU time.

Here a validated query document is compiled once into a tree of plans that already know, for
each field, its response key, how to read it (a plain attribute read for strawberry's basic
fields, the field's resolver otherwise), its argument values when they are literals, and how to
complete its value (leaf serializer, list, object). Execution walks that tree. Awaitable field
values are gathered per object and per list, as graphql-core does, so DataLoaders still batch.

It runs **queries only**, and only while nothing goes wrong: any error (a resolver raising, a
null in a non-null field) abandons the fast path and the request is executed again by
graphql-core, which produces the exact errors and partial data the spec requires. Queries have
no side effects, so running one twice is safe; errors are the rare path. Documents using
features not compiled here (abstract types, introspection, directives other than literal
@skip/@include, a response key selected twice) are simply left to graphql-core.
A parity test runs every query of the test suite through both paths and compares.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from operator import attrgetter
from types import CoroutineType
from typing import Any

from graphql import (
    DocumentNode,
    Executor,
    FieldNode,
    FragmentSpreadNode,
    GraphQLBoolean,
    GraphQLField,
    GraphQLFloat,
    GraphQLID,
    GraphQLInt,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLString,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    VariableNode,
    get_argument_values,
    is_leaf_type,
)
from graphql.language import BooleanValueNode, DirectiveNode, ValueNode, Visitor, visit
from graphql.pyutils import Path

_STRAWBERRY_FIELD = "strawberry-definition"
_NATIVE = {GraphQLString: str, GraphQLID: str, GraphQLInt: int, GraphQLBoolean: bool}


class Unsupported(Exception):
    """The document uses a feature the fast path does not compile."""


class Bail(Exception):
    """Something went wrong while executing: hand the request to graphql-core."""


# A completer turns a resolved value into its response value (or an awaitable of it).
Completer = Callable[[Any, Executor, Path], Any]


def _is_awaitable(value: Any) -> bool:
    return type(value) is CoroutineType or isinstance(value, asyncio.Future)


def _gather_into(result: Any, keys: list, awaitables: list) -> Awaitable[Any]:
    async def finish() -> Any:
        values = await asyncio.gather(*awaitables, return_exceptions=True)
        for key, value in zip(keys, values, strict=True):
            if isinstance(value, BaseException):
                raise Bail from value
            result[key] = value
        return result

    return finish()


class _FieldPlan:
    __slots__ = ("args", "complete", "definition", "dynamic_args", "key", "nodes",
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
        self.resolve: Callable[..., Any] | None = None
        self.args: dict[str, Any] = {}
        self.dynamic_args = False
        self.complete: Completer = _identity
        self.typename: str | None = None


def _identity(value: Any, _ex: Executor, _path: Path) -> Any:
    return value


def _uses_variables(node: FieldNode) -> bool:
    found = False

    class _Finder(Visitor):
        def enter_variable(self, *_args: Any) -> None:
            nonlocal found
            found = True

    for argument in node.arguments or ():
        visit(argument, _Finder())
    return found


def _included(directives: tuple[DirectiveNode, ...] | None) -> bool:
    """Literal @skip/@include decided at compile time; anything else is unsupported."""
    for directive in directives or ():
        name = directive.name.value
        if name not in ("skip", "include"):
            raise Unsupported(f"directive @{name}")
        (argument,) = directive.arguments
        value: ValueNode = argument.value
        if isinstance(value, VariableNode) or not isinstance(value, BooleanValueNode):
            raise Unsupported("@skip/@include with a variable")
        if (name == "skip") == value.value:
            return False
    return True


class _Compiler:
    def __init__(self, schema: GraphQLSchema, document: DocumentNode) -> None:
        self.schema = schema
        self.fragments = {
            d.name.value: d for d in document.definitions if d.kind == "fragment_definition"
        }

    def collect(
        self, object_type: GraphQLObjectType, selection_set: SelectionSetNode,
        into: dict[str, FieldNode], visited: set[str],
    ) -> None:  # fmt: skip
        for selection in selection_set.selections:
            if not _included(selection.directives):
                continue
            if isinstance(selection, FieldNode):
                key = selection.alias.value if selection.alias else selection.name.value
                if key in into:
                    raise Unsupported(f"response key {key!r} selected twice")
                into[key] = selection
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                if condition is not None and condition.name.value != object_type.name:
                    raise Unsupported("fragment on another type")
                self.collect(object_type, selection.selection_set, into, visited)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                if name in visited:
                    continue
                visited.add(name)
                fragment = self.fragments[name]
                if fragment.type_condition.name.value != object_type.name:
                    raise Unsupported("fragment on another type")
                self.collect(object_type, fragment.selection_set, into, visited)

    def object_plans(
        self, object_type: GraphQLObjectType, selection_set: SelectionSetNode
    ) -> list[_FieldPlan]:
        nodes: dict[str, FieldNode] = {}
        self.collect(object_type, selection_set, nodes, set())
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
        strawberry_field = (definition.extensions or {}).get(_STRAWBERRY_FIELD)
        if strawberry_field is not None and strawberry_field.is_basic_field and not definition.args:
            plan.read = attrgetter(strawberry_field.python_name)
        elif definition.resolve is not None:
            plan.resolve = definition.resolve
            if definition.args:
                if _uses_variables(node):
                    plan.dynamic_args = True
                else:
                    plan.args = get_argument_values(definition, node)
        else:
            raise Unsupported(f"field {parent.name}.{name} has no resolver")
        plan.complete = self.completer(definition.type, node)
        return plan

    def completer(self, type_: Any, node: FieldNode) -> Completer:
        if isinstance(type_, GraphQLNonNull):
            inner = self.completer(type_.of_type, node)

            def non_null(value: Any, ex: Executor, path: Path) -> Any:
                if value is None:
                    raise Bail
                return inner(value, ex, path)

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

        def leaf(value: Any, _ex: Executor, _path: Path) -> Any:
            if value is None:
                return None
            if native is not None and type(value) is native:
                return value
            return serialize(value)

        if type_ is GraphQLFloat:
            return lambda value, _ex, _path: None if value is None else serialize(value)
        return leaf

    @staticmethod
    def list_completer(item: Completer) -> Completer:
        def complete_list(value: Any, ex: Executor, path: Path) -> Any:
            if value is None:
                return None
            result = []
            keys: list[int] = []
            pending: list[Any] = []
            for index, element in enumerate(value):
                completed = item(element, ex, Path(path, index, None))
                if _is_awaitable(completed):
                    keys.append(index)
                    pending.append(completed)
                    completed = None
                result.append(completed)
            return _gather_into(result, keys, pending) if pending else result

        return complete_list

    def object_completer(
        self, type_: GraphQLObjectType, selection_set: SelectionSetNode
    ) -> Completer:
        plans = self.object_plans(type_, selection_set)

        def complete_object(value: Any, ex: Executor, path: Path) -> Any:
            if value is None:
                return None
            return execute_plans(plans, value, ex, path)

        return complete_object


def _resolve_later(awaitable: Any, plan: _FieldPlan, ex: Executor, path: Path) -> Any:
    async def later() -> Any:
        value = plan.complete(await awaitable, ex, path)
        if _is_awaitable(value):
            value = await value
        return value

    return later()


def execute_plans(plans: list[_FieldPlan], source: Any, ex: Executor, path: Path | None) -> Any:
    """The response object for `source`, or an awaitable of it."""
    result: dict[str, Any] = {}
    keys: list[str] = []
    pending: list[Any] = []
    for plan in plans:
        if plan.read is not None:
            value = plan.complete(plan.read(source), ex, path)  # type: ignore[arg-type]
        elif plan.typename is not None:
            value = plan.typename
        else:
            field_path = Path(path, plan.key, plan.parent_type.name)
            info = ex.build_resolve_info(plan.definition, plan.nodes, plan.parent_type, field_path)
            args = (
                get_argument_values(plan.definition, plan.nodes[0], ex.variable_values)
                if plan.dynamic_args else plan.args
            )  # fmt: skip
            resolved = plan.resolve(source, info, **args)  # type: ignore[misc]
            if _is_awaitable(resolved):
                value = _resolve_later(resolved, plan, ex, field_path)
            else:
                value = plan.complete(resolved, ex, field_path)
        if _is_awaitable(value):
            keys.append(plan.key)
            pending.append(value)
            value = None
        result[plan.key] = value
    return _gather_into(result, keys, pending) if pending else result


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
        self, context: Any, variables: dict[str, Any] | None
    ) -> dict[str, Any] | list | None:
        """The `data` of the response; a list of request errors; or None to fall back."""
        ex = Executor.build(
            self.schema, self.document, None, context, variables, self.operation_name
        )
        if isinstance(ex, list):
            return ex
        try:
            data = execute_plans(self.plans, None, ex, None)
            if _is_awaitable(data):
                data = await data
        except Bail:
            return None
        except Exception:  # graphql-core runs it again and reports the error properly
            return None
        return data


def compile_query(
    schema: GraphQLSchema, document: DocumentNode, operation: OperationDefinitionNode
) -> CompiledQuery | None:
    """The compiled form of `operation`, or None when it is left to graphql-core."""
    try:
        return CompiledQuery(schema, document, operation)
    except Unsupported:
        return None
