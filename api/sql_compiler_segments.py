"""Saved segments in the compiled reads (issue 14): ``segment(id|name)``, ``segments`` and the
Segment object (definition, size, members, stats, size history).

A segment's membership is data: its stored definition becomes a SQL condition in Python
(``sql/segments.py``, the one compilation of a definition). So a selection that needs the
definition (``definition``, ``size``, ``customers``, ``stats``) is rendered after the
segment's row is looked up (one small statement: by id, by name, or all segments for the
list), with the condition's values bound, as the resolvers bind them (``datetime.now(UTC)``,
``settings.risk_bands``). A selection of the stored columns alone needs no look-up. A
definition is never cached: the look-up is what makes a deleted and re-created name right.

Members are customers: their objects are the compiler's Customer objects (masked for the
role), and the page's ids are returned for the audit of reads, as ``customers`` does.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from api import sql_compiler as core
from api.schema.segments import MEMBERS_ORDERING
from api.sql_compiler import Env, Fallback, Sel, _after, _connection, _first, _object
from domain.errors import UserError
from domain.ids import parse_id
from domain.segments import Segment, to_json
from sql import json_read as j
from sql import json_segments as js
from sql.executor import Database
from sql.segments import segment_of

# Segment fields that need the definition (hence the look-up).
_NEEDS_DEFINITION = frozenset({"definition", "size", "customers", "stats"})
_CURRENT = "segment"  # Env.found's key of the segment whose object is being rendered


def _needs_definition(sel: Sel) -> bool:
    return any(child.attr in _NEEDS_DEFINITION for child in sel.children)


def _key(sel: Sel, variables: Any) -> int | str | None:
    """The segment's id (an int) or name asked for; None for arguments to refuse."""
    assert sel.arguments is not None
    args = sel.arguments(variables)
    given, name = args.get("id"), args.get("name")
    if (given is None) == (name is None):
        return None  # "give exactly one": worded by the resolver
    if name is not None:
        return str(name)
    try:
        return parse_id(given)
    except UserError:
        return None


async def _look_up_segment(sel: Sel, variables: Any, db: Database) -> Segment | None:
    key = _key(sel, variables)
    if key is None or not _needs_definition(sel):
        return None
    rows = await db.fetch("segment_by_id" if isinstance(key, int) else "segment_by_name", key)
    return segment_of(rows[0]) if rows else None


async def _look_up_segments(sel: Sel, _variables: Any, db: Database) -> list[Segment] | None:
    if not _needs_definition(sel):
        return None
    return [segment_of(r) for r in await db.fetch("segments_all")]


def _segment(env: Env, sel: Sel, segment: Segment) -> str:
    """The object of ``segment`` (null if deleted since its look-up)."""
    env.found[_CURRENT] = segment
    try:
        obj = _object(env, sel.children, "Segment", "sg")
    finally:
        del env.found[_CURRENT]
    return j.one(obj, f"({env.st.named('segment_by_id', segment.id)})", "sg")


def _segment_root(env: Env, sel: Sel, _alias: str) -> str:
    key = _key(sel, env.variables)
    if key is None:
        raise Fallback("arguments to refuse")
    if _needs_definition(sel):
        found = env.found.get(id(sel))
        if found is None:  # the resolver answers null (or the segment was made since)
            raise Fallback("a segment that is not there")
        return _segment(env, sel, found)
    rows = env.st.named("segment_by_id" if isinstance(key, int) else "segment_by_name", key)
    return j.one(_object(env, sel.children, "Segment", "sg"), f"({rows})", "sg")


def _segments_root(env: Env, sel: Sel, _alias: str) -> str:
    if not _needs_definition(sel):
        obj = _object(env, sel.children, "Segment", "sg")
        return j.json_list(obj, env.st.named("segments_all"), "sg", "sg.name")
    found = env.found.get(id(sel))
    if found is None:
        raise Fallback("segments not looked up")  # rendered without look_up(): our bug
    return js.segment_list([_segment(env, sel, s) for s in found])


def _current(env: Env) -> Segment:
    found: Segment = env.found[_CURRENT]
    return found


def _members(env: Env) -> str:
    """FROM … WHERE the current segment's members, now (as the resolvers ask)."""
    definition = _current(env).definition
    return js.members(env.st, definition, datetime.now(UTC), env.settings.risk_bands)


def _definition(env: Env, _sel: Sel, _sg: str) -> str:
    # The definition as the resolver returns it (to_json of the parsed one, in its key
    # order), not the jsonb column, whose keys PostgreSQL keeps in an order of its own.
    text = json.dumps(to_json(_current(env).definition), separators=(",", ":"), ensure_ascii=False)
    return f"({env.st.bind(text, 'text')}::json)"


def _size(env: Env, _sel: Sel, _sg: str) -> str:
    return js.member_count(_members(env))


def _stats(env: Env, sel: Sel, _sg: str) -> str:
    return js.member_stats(_object(env, sel.children, "SegmentStats", "x"), _members(env))


def _size_history(env: Env, sel: Sel, sg: str) -> str:
    return js.sizes(env.st, sg, _object(env, sel.children, "SegmentSize", "z"))


def _customers(env: Env, sel: Sel, _sg: str) -> str:
    args = env.args(sel)
    first = _first(env, args["first"])
    after = _after(args.get("after"), MEMBERS_ORDERING, 1)
    st = env.st
    last = int(after[0]) if after else None  # type: ignore[arg-type]
    rows = env.cte(j.numbered(js.member_page(st, _members(env), last, first + 1), "c", "c.id"))
    first_param = j.integer(first).sql
    env.read_ids.append(j.ids(rows, first_param))

    def cursor() -> str:
        return j.cursor(st.bind(j.json_text(MEMBERS_ORDERING), "text"), ("i", "c.id::text"))

    page = j.Page(rows, "c", first_param, cursor)
    return _connection(
        env, sel, page, "Customer", lambda: js.member_count(_members(env)), after is not None
    )


core._SCALARS.update(
    {"Segment": js.SEGMENT, "SegmentSize": js.SEGMENT_SIZE, "SegmentStats": js.SEGMENT_STATS}
)
core._NESTED["Query"].update({"segment", "segments"})
core._NESTED["Segment"] = {"definition", "size", "customers", "stats", "size_history"}
core._PER_REQUEST.update({("Segment", "definition"), ("Segment", "size")})
core._STATIC_NESTED.add(("Segment", "size_history"))
core._NESTED_RENDERERS.update(
    {
        ("Query", "segment"): _segment_root,
        ("Query", "segments"): _segments_root,
        ("Segment", "definition"): _definition,
        ("Segment", "size"): _size,
        ("Segment", "stats"): _stats,
        ("Segment", "size_history"): _size_history,
        ("Segment", "customers"): _customers,
    }
)
core._LOOKUPS.update(
    {("Query", "segment"): _look_up_segment, ("Query", "segments"): _look_up_segments}
)
