"""Roles applied to whole operations: refused fields before anything runs, masks after.

For a validated operation and a role, :func:`authorize` walks the selection once (fragments
included) and asks :func:`domain.access.access` about every field: a refused field refuses
the operation with one readable error naming the fields; a masked field becomes a path in a
*mask tree* that :func:`apply_masks` follows through the response data. The result is cached
with the parsed document, so a request pays a dictionary lookup and, only when something is
masked, a walk over the masked paths. Both execution paths (compiled and graphql-core)
produce plain data first, so neither needs rules of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Union

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    get_named_type,
)

from domain.access import PERSONAL_FIELDS, Access, MaskKind, Role, access, mask

MaskTree = dict[str, Union["MaskTree", MaskKind]]


@dataclass(frozen=True, slots=True)
class Authorization:
    """What a role may not select in an operation, what it sees masked, and which personal
    fields it reads unmasked (those reads are audited)."""

    denied: tuple[str, ...]  # schema coordinates, in selection order
    masks: MaskTree
    reads: tuple[str, ...] = ()  # personal fields answered in clear

    def refusal(self, role: Role) -> str | None:
        if not self.denied:
            return None
        fields = ", ".join(self.denied)
        return f"the {role.value} role may not use {fields}"


def authorize(
    schema: GraphQLSchema,
    fragments: dict[str, FragmentDefinitionNode],
    operation: OperationDefinitionNode,
    role: Role,
) -> Authorization:
    """The role's verdict on ``operation`` (validated against ``schema``; ``fragments`` are
    its document's, by name)."""
    root = schema.get_root_type(operation.operation)
    assert root is not None  # validation accepted the operation
    denied: list[str] = []
    reads: list[str] = []
    masks = _walk(schema, root, operation.selection_set, fragments, role, denied, reads, set())
    return Authorization(tuple(dict.fromkeys(denied)), masks, tuple(dict.fromkeys(reads)))


def _walk(
    schema: GraphQLSchema,
    parent: GraphQLNamedType,
    selection_set: SelectionSetNode,
    fragments: dict[str, FragmentDefinitionNode],
    role: Role,
    denied: list[str],
    reads: list[str],
    visiting: set[str],
) -> MaskTree:
    tree: MaskTree = {}
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            name = selection.name.value
            if name.startswith("__") or not isinstance(parent, GraphQLObjectType):
                continue
            key = selection.alias.value if selection.alias else name
            coordinate = f"{parent.name}.{name}"
            verdict = access(role, coordinate)
            if verdict is Access.DENY:
                denied.append(coordinate)
            elif verdict is Access.MASK:
                tree[key] = PERSONAL_FIELDS[coordinate]
            elif coordinate in PERSONAL_FIELDS:
                reads.append(coordinate)
            elif selection.selection_set is not None:
                inner = get_named_type(parent.fields[name].type)
                sub = _walk(schema, inner, selection.selection_set, fragments, role, denied,
                            reads, visiting)  # fmt: skip
                if sub:
                    _merge(tree, key, sub)
            continue
        if isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            if name in visiting:  # validation forbids cycles; be safe anyway
                continue
            fragment = fragments[name]
            condition, selections = fragment.type_condition, fragment.selection_set
            visiting = visiting | {name}
        else:
            assert isinstance(selection, InlineFragmentNode)
            condition, selections = selection.type_condition, selection.selection_set
        target = schema.get_type(condition.name.value) if condition is not None else parent
        assert target is not None
        for key, sub in _walk(schema, target, selections, fragments, role, denied, reads,
                              visiting).items():  # fmt: skip
            _merge(tree, key, sub)
    return tree


def _merge(tree: MaskTree, key: str, sub: MaskTree | MaskKind) -> None:
    current = tree.get(key)
    if current is None or isinstance(sub, MaskKind):
        tree[key] = sub
    elif isinstance(current, dict):
        for inner_key, inner in sub.items():
            _merge(current, inner_key, inner)


def apply_masks(data: Any, tree: MaskTree) -> None:
    """Mask, in place, the values of ``data`` (a response's data) that ``tree`` names."""
    if isinstance(data, list):
        for item in data:
            apply_masks(item, tree)
        return
    if not isinstance(data, dict):
        return
    for key, sub in tree.items():
        if key not in data:
            continue
        if isinstance(sub, MaskKind):
            data[key] = mask(sub, data[key])
        else:
            apply_masks(data[key], sub)
