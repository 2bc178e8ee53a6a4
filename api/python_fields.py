"""Customer fields that need Python (live model scores, recommendations, lifetime value,
field sources), resolved after the SQL statement, batched, and merged into its JSON.

The SQL compiler renders such a field as null at its place in the customer object and adds a
hidden key with the customer's id. Here the fields are asked of the compiled Python path as
one internal query over all those customers at once (``scores(customerIds:)``, the batch field
machine clients use), with the operation's own arguments and variables, so the same
resolvers, loaders, consent rules and model batching answer them; the values then replace the
nulls. A resolver's error (a model not trained ...) leaves the whole request to graphql-core,
which words it with its path, as before.
"""

from __future__ import annotations

from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentSpreadNode,
    GraphQLSchema,
    OperationDefinitionNode,
    VariableNode,
    Visitor,
    parse,
    print_ast,
    validate,
    visit,
)

from api.compiled import CompiledQuery, compile_query
from api.context import Context
from api.selection import Unsupported

# Customer fields answered by Python (strawberry attribute names).
PYTHON_CUSTOMER_FIELDS = frozenset(
    {
        "churn_risk",
        "next_purchase",
        "recommendations",
        "buy_again",
        "lifetime_value",
        "field_sources",
    }
)
HIDDEN_ID = "0id"  # not a GraphQL name, so no alias of a client's can be it
_ROOT, _IDS, _ID = "cdmMerge", "cdmMergeIds", "cdmMergeId"


def _names(nodes: list[FieldNode], kind: type) -> list[Any]:
    found: list[Any] = []

    class Finder(Visitor):
        def enter(self, node: Any, *_: object) -> None:
            if isinstance(node, kind):
                found.append(node)

    for node in nodes:
        visit(node, Finder())
    return found


class PythonFields:
    """The Python-resolved fields of one customer selection, as one batched internal query."""

    __slots__ = ("keys", "query", "variables")

    def __init__(
        self, schema: GraphQLSchema, operation: OperationDefinitionNode, nodes: list[FieldNode],
        keys: list[str],
    ) -> None:  # fmt: skip
        if _names(nodes, FragmentSpreadNode):
            raise Unsupported("a fragment inside a field answered by Python")
        used = {v.name.value for v in _names(nodes, VariableNode)}
        definitions = [
            d for d in operation.variable_definitions or () if d.variable.name.value in used
        ]
        declared = "".join(f", {print_ast(d)}" for d in definitions)
        fields = " ".join(print_ast(n) for n in nodes)
        text = (
            f"query CdmMerge(${_IDS}: [ID!]{declared}) "
            f"{{ {_ROOT}: scores(customerIds: ${_IDS}) {{ {_ID}: id {fields} }} }}"
        )
        document: DocumentNode = parse(text)
        if validate(schema, document):
            raise Unsupported("fields answered by Python that cannot be batched")
        (definition,) = document.definitions
        assert isinstance(definition, OperationDefinitionNode)
        query = compile_query(schema, document, definition)
        if query is None:
            raise Unsupported("fields answered by Python outside the compiled path")
        self.query: CompiledQuery = query
        self.variables = sorted(used)
        self.keys = keys

    async def fill(
        self, objects: list[dict[str, Any]], context: Context, variables: dict[str, Any] | None
    ) -> bool:
        """Replace the placeholders of ``objects`` (customer objects of the SQL answer) with
        the Python values; False when a resolver failed (graphql-core must answer)."""
        ids = list(dict.fromkeys(o[HIDDEN_ID] for o in objects))
        given = variables or {}
        asked = {name: given.get(name) for name in self.variables if name in given}
        answer = await self.query.execute(context, {**asked, _IDS: ids})
        if not isinstance(answer, dict):
            return False
        by_id = {row[_ID]: row for row in answer[_ROOT]}
        for obj in objects:
            row = by_id.get(obj.pop(HIDDEN_ID))
            if row is None:  # erased since the statement ran: let graphql-core answer
                return False
            for key in self.keys:
                obj[key] = row[key]
        return True
