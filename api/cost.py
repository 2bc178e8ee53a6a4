"""The estimated cost of running an operation, checked against a budget before it runs.

Limits on the document's shape (``api.limits``) cannot see that ``customers(first: 100)
{ purchases(first: 100) { ... } }`` asks for ten thousand rows while looking small. Here a
field costs one, and everything below a list field costs as many times as the items it may
return: its ``first`` (given, or the schema's default) or the length of the id list it is
asked for. Variables count with their values, so the estimate is made per request; it walks
the selection once (fragments included) and is cheap next to running anything.
"""

from __future__ import annotations

from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    ListValueNode,
    ObjectValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValueNode,
    VariableNode,
    get_named_type,
    value_from_ast_untyped,
)

_ID_LISTS = ("customerIds", "externalIds", "ids")
# Estimates are capped where JSON numbers stay exact: a `first` of 2^63 (refused later, when
# variables are coerced) must still give an error a client can read.
_MOST = 2**53


def query_cost(
    schema: GraphQLSchema,
    fragments: dict[str, FragmentDefinitionNode],
    operation: OperationDefinitionNode,
    variables: dict[str, Any] | None,
) -> int:
    """The estimated cost of ``operation`` with ``variables`` (validated document)."""
    return estimate_cost(schema, fragments, operation, variables)[0]


def estimate_cost(
    schema: GraphQLSchema,
    fragments: dict[str, FragmentDefinitionNode],
    operation: OperationDefinitionNode,
    variables: dict[str, Any] | None,
) -> tuple[int, bool]:
    """The estimated cost of ``operation`` with ``variables``, and whether it is the same
    for any variables (no page size or id list it counted came from one): then it may be
    kept with the document."""
    root = schema.get_root_type(operation.operation)
    assert root is not None
    estimate = _Estimate(schema, fragments, variables or {})
    cost = min(estimate.cost(root, operation.selection_set, frozenset()), _MOST)
    return cost, not estimate.read_variables


def over_budget(cost: int, budget: int) -> GraphQLError | None:
    """The error for a cost above ``budget``, or None."""
    if cost <= budget:
        return None
    return GraphQLError(
        f"the query's estimated cost is {cost:,} (each field, times the page sizes and id "
        f"lists it is nested in); the limit is {budget:,}: ask for smaller pages or fewer "
        "nested lists",
        extensions={"code": "QUERY_TOO_COMPLEX", "cost": cost, "budget": budget},
    )


class _Estimate:
    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: dict[str, FragmentDefinitionNode],
        variables: dict[str, Any],
    ) -> None:
        self.schema = schema
        self.fragments = fragments
        self.variables = variables
        self.read_variables = False

    def cost(
        self, parent: GraphQLNamedType, selection_set: SelectionSetNode, visiting: frozenset[str]
    ) -> int:
        total = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                total += 1
                if selection.selection_set is None or not isinstance(parent, GraphQLObjectType):
                    continue
                definition = parent.fields.get(selection.name.value)
                if definition is None:  # __typename and introspection
                    continue
                inner = get_named_type(definition.type)
                below = self.cost(inner, selection.selection_set, visiting)
                total += self.multiplier(parent, selection) * below
                continue
            if isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                target = self.type_named(condition.name.value) if condition else parent
                total += self.cost(target, selection.selection_set, visiting)
                continue
            assert isinstance(selection, FragmentSpreadNode)
            name = selection.name.value
            fragment = self.fragments.get(name)
            if fragment is None or name in visiting:
                continue
            target = self.type_named(fragment.type_condition.name.value)
            total += self.cost(target, fragment.selection_set, visiting | {name})
        return total

    def type_named(self, name: str) -> GraphQLNamedType:
        found = self.schema.get_type(name)
        assert found is not None  # the document was validated
        return found

    def argument(self, node: FieldNode, name: str) -> Any:
        for argument in node.arguments or ():
            if argument.name.value == name:
                self.read_variables = self.read_variables or _has_variable(argument.value)
                if isinstance(argument.value, VariableNode):
                    return self.variables.get(argument.value.name.value)
                return value_from_ast_untyped(argument.value, self.variables)
        return None

    def multiplier(self, parent: GraphQLObjectType, node: FieldNode) -> int:
        """How many items ``node`` may return: its page size or the ids it is asked for."""
        definition = parent.fields[node.name.value]
        if "first" in definition.args:
            first = self.argument(node, "first")
            if first is None:
                first = definition.args["first"].default_value
            return first if isinstance(first, int) and first > 0 else 1
        for name in _ID_LISTS:
            if name in definition.args:
                ids = self.argument(node, name)
                if isinstance(ids, list) and ids:
                    return len(ids)
        return 1


def _has_variable(value: ValueNode) -> bool:
    if isinstance(value, VariableNode):
        return True
    if isinstance(value, ListValueNode):
        return any(_has_variable(v) for v in value.values)
    if isinstance(value, ObjectValueNode):
        return any(_has_variable(f.value) for f in value.fields)
    return False
