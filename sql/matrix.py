"""Numeric result sets straight into numpy: binary COPY of fixed-width rows, no per-row Python.

Statements read this way return a bigint key, then float8 columns, never NULL (encode a
missing value as 'NaN'). Every row then has the same width, so the COPY body is one
big-endian record array; columns are converted one at a time (a strided copy each).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import TYPE_CHECKING

import asyncpg

from sql.queries import query

if TYPE_CHECKING:
    import numpy as np  # imported when rows are decoded: importing this module is free

_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
_TRAILER = b"\xff\xff"


async def fetch_matrix(
    conn: asyncpg.Connection, statement: str, args: Sequence[object], n_columns: int
) -> tuple[np.ndarray, np.ndarray]:
    """Run the named ``statement`` with ``args``; return (keys int64, matrix float64).

    COPY inlines the parameters as literals, so PostgreSQL plans each call for its own values
    (a handful of ids become index lookups, everyone becomes full scans).
    """
    buffer = bytearray()

    async def collect(chunk: bytes) -> None:
        buffer.extend(chunk)

    await conn.copy_from_query(query(statement), *args, output=collect, format="binary")
    return decode_binary_copy(buffer, n_columns)


def decode_binary_copy(data: bytearray, n_columns: int) -> tuple[np.ndarray, np.ndarray]:
    """COPY BINARY rows of (bigint, float8 x n_columns), none NULL -> (keys, matrix)."""
    import numpy as np

    if not data.startswith(_SIGNATURE) or not data.endswith(_TRAILER):
        raise RuntimeError("unexpected COPY output (not PostgreSQL binary format)")
    (extension,) = struct.unpack_from(">i", data, len(_SIGNATURE) + 4)
    start = len(_SIGNATURE) + 8 + extension
    fields = [("count", ">i2"), ("len_id", ">i4"), ("id", ">i8")]
    for j in range(n_columns):
        fields += [(f"len_{j}", ">i4"), (f"f_{j}", ">f8")]
    row = np.dtype(fields)
    body = memoryview(data)[start : len(data) - len(_TRAILER)]
    if len(body) % row.itemsize:
        raise RuntimeError("rows are not of the expected width (a NULL or a new column?)")
    records = np.frombuffer(body, dtype=row)
    lengths = [records["len_id"], *(records[f"len_{j}"] for j in range(n_columns))]
    if (records["count"] != n_columns + 1).any() or any((n != 8).any() for n in lengths):
        raise RuntimeError("rows are not (bigint, float8...) without NULLs")
    keys = records["id"].astype(np.int64)
    matrix = np.empty((len(records), n_columns), dtype=np.float64)
    for j in range(n_columns):
        matrix[:, j] = records[f"f_{j}"]
    return keys, matrix
