"""Named SQL statements, read from ``sql/queries/*.sql``.

A file holds statements headed by ``-- name: <name>``; everything up to the next header is
the statement. Loaded once, on first use (nothing is read at import time).
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

_HEADER = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)


@cache
def _all() -> dict[str, str]:
    statements: dict[str, str] = {}
    for entry in resources.files("sql").joinpath("queries").iterdir():
        if not entry.name.endswith(".sql"):
            continue
        parts = _HEADER.split(entry.read_text(encoding="utf-8"))
        for name, body in zip(parts[1::2], parts[2::2], strict=True):
            if name in statements:
                raise RuntimeError(f"query {name!r} is defined twice (again in {entry.name})")
            statements[name] = body.strip().rstrip(";")
    return statements


def query(name: str) -> str:
    """The statement called ``name``."""
    try:
        return _all()[name]
    except KeyError:
        raise KeyError(f"no SQL statement named {name!r} in sql/queries") from None


def names() -> list[str]:
    """Every statement name (for tests that check each one prepares)."""
    return sorted(_all())
