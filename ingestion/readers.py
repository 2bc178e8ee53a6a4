"""Reading input files as chunks of numbered raw rows: CSV (any delimiter, or runs of
whitespace), JSON Lines and Parquet, streamed so memory stays bounded whatever the size."""

from __future__ import annotations

import csv
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

WHITESPACE = "whitespace"
_SUFFIXES = {
    ".csv": "csv", ".tsv": "csv", ".txt": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl",
    ".json": "jsonl", ".parquet": "parquet", ".pq": "parquet",
}  # fmt: skip

Row = dict[str, Any]
# A numbered row, or a line that could not even be read as a row (its number and why).
Numbered = tuple[int, Row | None, str | None]


class InputError(ValueError):
    """A file that cannot be read as asked; the message says what to change."""


@dataclass(frozen=True, slots=True)
class FileFormat:
    """How to read a file. `kind` None: from the file name's suffix."""

    kind: str | None = None
    delimiter: str = ","
    header: bool = True
    columns: tuple[str, ...] | None = None
    encoding: str = "utf-8"

    def kind_of(self, path: Path) -> str:
        """The format of `path`."""
        if self.kind:
            return self.kind
        try:
            return _SUFFIXES[path.suffix.lower()]
        except KeyError:
            raise InputError(
                f"{path.name}: cannot tell the format from the suffix; use --format "
                "csv, jsonl or parquet"
            ) from None


def remap(row: Mapping[str, Any], mapping: Mapping[str, str]) -> Row:
    """The row under our field names: `mapping` says which source column feeds a target field."""
    if not mapping:
        return dict(row)
    out = dict(row)
    for target, source in mapping.items():
        out[target] = row.get(source)
    return out


def read_chunks(path: Path, fmt: FileFormat, chunk_size: int) -> Iterator[list[Numbered]]:
    """The file's rows in chunks of at most `chunk_size`, numbered from 1 (header excluded:
    numbers are physical line numbers for text formats, row numbers for Parquet)."""
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    kind = fmt.kind_of(path)
    rows = {"csv": _csv_rows, "jsonl": _jsonl_rows, "parquet": _parquet_rows}[kind](path, fmt)
    chunk: list[Numbered] = []
    for item in rows:
        chunk.append(item)
        if len(chunk) >= chunk_size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _names(first: list[str] | None, fmt: FileFormat, path: Path) -> list[str]:
    if fmt.columns:
        return list(fmt.columns)
    if first is None:
        raise InputError(f"{path.name}: no header row; give the column names with --columns")
    return [name.strip() for name in first]


def _csv_rows(path: Path, fmt: FileFormat) -> Iterator[Numbered]:
    try:
        handle = path.open(encoding=fmt.encoding, newline="")
    except OSError as exc:
        raise InputError(f"{path}: cannot open ({exc.strerror})") from None
    with handle:
        if fmt.delimiter == WHITESPACE:
            # Runs of spaces or tabs separate fields; no quoting in such files.
            lines = ((n, line.split()) for n, line in enumerate(handle, 1) if line.strip())
        else:
            reader = csv.reader(handle, delimiter=_delimiter(fmt.delimiter))
            lines = ((reader.line_num, fields) for fields in reader if fields)
        try:
            names = None
            if fmt.header:
                first = next(lines, None)
                names = _names(first[1] if first else None, fmt, path)
            else:
                names = _names(None, fmt, path)
            width = len(names)
            for number, fields in lines:
                if len(fields) != width:
                    yield number, None, f"has {len(fields)} fields, expected {width}"
                else:
                    yield number, dict(zip(names, fields, strict=True)), None
        except UnicodeDecodeError:
            raise InputError(f"{path.name}: not {fmt.encoding} text; set --encoding") from None
        except csv.Error as exc:
            raise InputError(f"{path.name}: malformed CSV ({exc})") from None


def _delimiter(text: str) -> str:
    named = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}
    value = named.get(text.lower(), text)
    if len(value) != 1:
        raise InputError(f"delimiter {text!r} must be one character, a name (tab, semicolon, "
                         "pipe) or 'whitespace'")  # fmt: skip
    return value


def _jsonl_rows(path: Path, fmt: FileFormat) -> Iterator[Numbered]:
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise InputError(f"{path}: cannot open ({exc.strerror})") from None
    with handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                value = orjson.loads(line)
            except orjson.JSONDecodeError:
                yield number, None, "is not valid JSON"
                continue
            if not isinstance(value, dict):
                yield number, None, "is not a JSON object"
                continue
            yield number, value, None


def _parquet_rows(path: Path, fmt: FileFormat) -> Iterator[Numbered]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises a variety of types for a bad file
        raise InputError(f"{path.name}: not a readable Parquet file ({exc})") from None
    number = 0
    for batch in parquet.iter_batches(batch_size=10_000):
        for row in batch.to_pylist():
            number += 1
            yield number, row, None
