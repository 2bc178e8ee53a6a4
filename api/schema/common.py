"""Relay-style connections and helpers shared by every list field."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import strawberry
from strawberry.types import Info

from api.context import Context
from domain.pagination import PageRequest, check_page_size, decode_cursor

T = TypeVar("T")
GraphQLInfo = Info[Context, None]


@strawberry.type(description="Where a page sits in its list.")
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@strawberry.type(description="A node and the cursor to continue after it.")
class Edge(Generic[T]):
    cursor: str
    node: T


@strawberry.type(description="A page of a list, Relay style.")
class Connection(Generic[T]):
    edges: list[Edge[T]]
    page_info: PageInfo
    count: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field(description="The nodes of this page (the edges without cursors).")
    def nodes(self) -> list[T]:
        return [edge.node for edge in self.edges]

    @strawberry.field(description="How many items the whole list holds (all pages).")
    async def total_count(self) -> int:
        return await self.count()


def connection(
    nodes: list[T],
    cursors: list[str],
    has_next: bool,
    has_previous: bool,
    count: Callable[[], Awaitable[int]],
) -> Connection[T]:
    """A connection over one page of nodes."""
    return Connection(
        edges=[Edge(cursor=c, node=n) for c, n in zip(cursors, nodes, strict=True)],
        page_info=PageInfo(
            has_next_page=has_next,
            has_previous_page=has_previous,
            start_cursor=cursors[0] if cursors else None,
            end_cursor=cursors[-1] if cursors else None,
        ),
        count=count,
    )  # fmt: skip


def page_request(
    info: GraphQLInfo, first: int, after: str | None, ordering: str, arity: int
) -> PageRequest:
    """Validate `first` against the configured cap and decode `after` for `ordering`."""
    check_page_size(first, info.context.settings.max_page_size)
    key = decode_cursor(after, ordering, arity) if after is not None else None
    return PageRequest(first=first, after=key)
