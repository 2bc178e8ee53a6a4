"""Collecting a selection set's fields as execution would, for the query compilers.

Both compilers (``api/compiled.py``, ``api/sql_compiler.py``) need the fields a selection
set yields on one object type: fragments inlined, literal @skip/@include decided. What they
cannot decide at compile time (a directive on a variable, a fragment on another type, a key
selected twice) is :class:`Unsupported` and left to graphql-core.
"""

from __future__ import annotations

from graphql import (
    BooleanValueNode,
    DirectiveNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLObjectType,
    InlineFragmentNode,
    SelectionSetNode,
    ValueNode,
    VariableNode,
    Visitor,
    visit,
)


class Unsupported(Exception):
    """The document uses a feature this compiler does not compile."""


class Fallback(Exception):
    """This request's arguments need the Python path (to word an error, or a lookup)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def included(directives: tuple[DirectiveNode, ...] | None) -> bool:
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


def uses_variables(node: FieldNode) -> bool:
    """Whether any argument of the field ``node`` refers to a variable."""
    found = False

    class _Finder(Visitor):
        def enter_variable(self, *_args: object) -> None:
            nonlocal found
            found = True

    for argument in node.arguments or ():
        visit(argument, _Finder())
    return found


def collect_fields(
    object_type: GraphQLObjectType, selection_set: SelectionSetNode,
    fragments: dict[str, FragmentDefinitionNode],
) -> dict[str, FieldNode]:  # fmt: skip
    """The fields of ``selection_set`` on ``object_type``, by response key, in order."""
    into: dict[str, FieldNode] = {}
    _collect(object_type, selection_set, fragments, into, set())
    return into


def _collect(
    object_type: GraphQLObjectType, selection_set: SelectionSetNode,
    fragments: dict[str, FragmentDefinitionNode], into: dict[str, FieldNode], visited: set[str],
) -> None:  # fmt: skip
    for selection in selection_set.selections:
        if not included(selection.directives):
            continue
        if isinstance(selection, FieldNode):
            key = selection.alias.value if selection.alias else selection.name.value
            if key in into:
                raise Unsupported("a response key selected twice")
            into[key] = selection
        elif isinstance(selection, InlineFragmentNode):
            condition = selection.type_condition
            if condition is not None and condition.name.value != object_type.name:
                raise Unsupported("fragment on another type")
            _collect(object_type, selection.selection_set, fragments, into, visited)
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            if name in visited:
                continue
            visited.add(name)
            fragment = fragments[name]
            if fragment.type_condition.name.value != object_type.name:
                raise Unsupported("fragment on another type")
            _collect(object_type, fragment.selection_set, fragments, into, visited)
