"""What a query document must fit before it is validated or run.

Checked on the parsed document, before validation: some validation rules cost time in the
square of the number of fields, so a document of a thousand repeated fields is refused
before it can cost anything. Fragments are expanded when counting (a fragment spread ten
times counts ten times), memoised so the count itself stays linear.
"""

from __future__ import annotations

from dataclasses import dataclass

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
)


@dataclass(frozen=True, slots=True)
class QueryLimits:
    max_tokens: int = 5_000
    max_fields: int = 500
    max_aliases: int = 50
    max_depth: int = 12


@dataclass(slots=True)
class _Shape:
    fields: int = 0
    aliases: int = 0
    depth: int = 0


def check_shape(document: DocumentNode, limits: QueryLimits) -> list[GraphQLError]:
    """Errors for every limit ``document`` exceeds (empty when it fits)."""
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    memo: dict[str, _Shape] = {}
    total = _Shape()
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            shape = _measure(definition.selection_set, fragments, memo, frozenset())
            total.fields += shape.fields
            total.aliases += shape.aliases
            total.depth = max(total.depth, shape.depth)
    errors = []
    if total.depth > limits.max_depth:
        errors.append(f"the query is {total.depth} levels deep; the limit is {limits.max_depth}")
    if total.fields > limits.max_fields:
        errors.append(
            f"the query selects {total.fields} fields (fragments expanded); "
            f"the limit is {limits.max_fields}"
        )
    if total.aliases > limits.max_aliases:
        errors.append(f"the query uses {total.aliases} aliases; the limit is {limits.max_aliases}")
    return [GraphQLError(message, extensions={"code": "QUERY_TOO_COMPLEX"}) for message in errors]


def _measure(
    selection_set: SelectionSetNode,
    fragments: dict[str, FragmentDefinitionNode],
    memo: dict[str, _Shape],
    visiting: frozenset[str],
) -> _Shape:
    shape = _Shape()
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            shape.fields += 1
            shape.aliases += selection.alias is not None
            if selection.selection_set is not None:
                inner = _measure(selection.selection_set, fragments, memo, visiting)
                shape.fields += inner.fields
                shape.aliases += inner.aliases
                # `ofType` only unwraps a type's list/non-null wrappers (null after the last):
                # its chains make introspection queries deep (GraphiQL's is 15 levels) while
                # costing nothing, so they add no depth.
                step = 0 if selection.name.value == "ofType" else 1
                shape.depth = max(shape.depth, inner.depth + step)
            else:
                shape.depth = max(shape.depth, 1)
            continue
        if isinstance(selection, InlineFragmentNode):
            inner = _measure(selection.selection_set, fragments, memo, visiting)
        else:
            assert isinstance(selection, FragmentSpreadNode)
            name = selection.name.value
            fragment = fragments.get(name)
            if fragment is None or name in visiting:  # unknown or cyclic: validation says so
                continue
            if name not in memo:
                memo[name] = _measure(fragment.selection_set, fragments, memo, visiting | {name})
            inner = memo[name]
        shape.fields += inner.fields
        shape.aliases += inner.aliases
        shape.depth = max(shape.depth, inner.depth)
    return shape
