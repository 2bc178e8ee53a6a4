"""Relay-style connections and helpers shared by every list field."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

import strawberry
from strawberry.types import Info
from strawberry.types.nodes import SelectedField, Selection

from api.context import Context
from domain.pagination import (
    PageRequest,
    SortValue,
    check_page_size,
    decode_cursor,
    encode_cursor,
)

T = TypeVar("T")
R = TypeVar("R")
GraphQLInfo = Info[Context, None]


@strawberry.type(description="A node and the cursor to continue after it.")
class Edge(Generic[T]):
    node: T
    index: strawberry.Private[int]
    cursors: strawberry.Private[Callable[[int], str]]

    @strawberry.field(description="Pass as `after` to continue after this node.")
    def cursor(self) -> str:
        return self.cursors(self.index)


@strawberry.type(description="Where a page sits in its list.")
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    size: strawberry.Private[int]
    cursors: strawberry.Private[Callable[[int], str]]

    @strawberry.field(description="The cursor of the first node of the page.")
    def start_cursor(self) -> str | None:
        return self.cursors(0) if self.size else None

    @strawberry.field(description="The cursor of the last node: `after` for the next page.")
    def end_cursor(self) -> str | None:
        return self.cursors(self.size - 1) if self.size else None


@strawberry.type(description="A page of a list, Relay style.")
class Connection(Generic[T]):
    page_info: PageInfo
    items: strawberry.Private[list[T]]
    cursors: strawberry.Private[Callable[[int], str]]
    count: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field(description="The nodes of this page, each with its cursor.")
    def edges(self) -> list[Edge[T]]:
        return [Edge(node=n, index=i, cursors=self.cursors) for i, n in enumerate(self.items)]

    @strawberry.field(description="The nodes of this page (the edges without cursors).")
    def nodes(self) -> list[T]:
        return self.items

    @strawberry.field(description="How many items the whole list holds (all pages).")
    async def total_count(self) -> int:
        return await self.count()


def connection(
    nodes: list[T],
    cursors: Callable[[int], str],
    has_next: bool,
    has_previous: bool,
    count: Callable[[], Awaitable[int]],
) -> Connection[T]:
    """A connection over one page of nodes; `cursors(i)` encodes the i-th node's cursor.

    Cursors are encoded only when a client selects them (most clients never do).
    """
    page_info = PageInfo(
        has_next_page=has_next, has_previous_page=has_previous, size=len(nodes), cursors=cursors
    )
    return Connection(page_info=page_info, items=nodes, cursors=cursors, count=count)


def cursors_for(
    ordering: str, rows: Sequence[R], key: Callable[[R], tuple[SortValue, ...]] | None = None
) -> Callable[[int], str]:
    """The cursor encoder for a page of `rows`, whose sort key is `key(row)` (or the row)."""
    if key is None:
        return lambda index: encode_cursor(ordering, rows[index])  # type: ignore[arg-type]
    return lambda index: encode_cursor(ordering, key(rows[index]))


_LOOKAHEAD: dict[tuple[int, tuple], tuple[object, bool]] = {}
_LOOKAHEAD_SIZE = 10_000


def selects(info: GraphQLInfo, *paths: tuple[str, ...]) -> bool:
    """Whether the client selected any of `paths` below the current field (through fragments).

    Lets a resolver fetch what it will be asked for next in the same statement. The answer
    depends only on the document, so it is cached per field node of a (cached) document.
    """
    node = info._raw_info.field_nodes[0]
    key = (id(node), paths)
    hit = _LOOKAHEAD.get(key)
    if hit is not None and hit[0] is node:
        return hit[1]
    below = [s for field in info.selected_fields for s in field.selections]
    answer = any(_has_path(below, path) for path in paths)
    if len(_LOOKAHEAD) >= _LOOKAHEAD_SIZE:
        _LOOKAHEAD.clear()
    _LOOKAHEAD[key] = (node, answer)  # holding the node keeps its id from being reused
    return answer


def _has_path(selections: list[Selection], path: tuple[str, ...]) -> bool:
    for selection in selections:
        if isinstance(selection, SelectedField):
            if selection.name == path[0] and (
                len(path) == 1 or _has_path(selection.selections, path[1:])
            ):
                return True
        elif _has_path(selection.selections, path):  # a fragment: look inside
            return True
    return False


def page_request(
    info: GraphQLInfo, first: int, after: str | None, ordering: str, arity: int
) -> PageRequest:
    """Validate `first` against the configured cap and decode `after` for `ordering`."""
    check_page_size(first, info.context.settings.max_page_size)
    key = decode_cursor(after, ordering, arity) if after is not None else None
    return PageRequest(first=first, after=key)
