"""Reading input files as chunks of numbered raw rows: CSV (any delimiter, or runs of
whitespace), JSON Lines and Parquet, streamed so memory stays bounded whatever the size."""

from __future__ import annotations

import csv
import io
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import orjson

WHITESPACE = "whitespace"
_SUFFIXES = {
    ".csv": "csv", ".tsv": "csv", ".txt": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl",
    ".json": "jsonl", ".parquet": "parquet", ".pq": "parquet",
}  # fmt: skip

Row = dict[str, Any]
# Delimiters a CSV file is sniffed for when none is given.
DETECTED_DELIMITERS = ",;\t|"
_SNIFF_LINES = 50


class InputError(ValueError):
    """A file that cannot be read as asked; the message says what to change."""


class MappingError(InputError):
    """A `--map` that does not fit the entity or the file (a usage error)."""


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A line that could not be read as a row: why, and its text as found in the file."""

    reason: str
    text: str


# A numbered row, or a line that could not even be read as a row.
Numbered = tuple[int, Row | None, Unreadable | None]


@dataclass(frozen=True, slots=True)
class FileFormat:
    """How to read a file. `kind` None: from the file name's suffix."""

    kind: str | None = None
    delimiter: str | None = None  # None: detected from the first lines (, ; tab |)
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
    """The row under our field names: `mapping` says which source column feeds a target field.

    A mapped target always wins, and a source column consumed by a mapping is not also read
    under its own name: a file column `customer_id` mapped to `customer_external_id` must not
    be taken for CDM's internal customer id as well.
    """
    if not mapping:
        return dict(row)
    consumed = set(mapping.values())
    out = {name: value for name, value in row.items() if name not in consumed}
    for target, source in mapping.items():
        out[target] = row.get(source)
    return out


def source_columns(path: Path, fmt: FileFormat) -> list[str] | None:
    """The columns every row of `path` has (CSV header or names, Parquet schema), or None
    when the format has no fixed columns (JSON Lines: each object has its own keys)."""
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    kind = fmt.kind_of(path)
    if kind == "jsonl":
        return None
    if kind == "parquet":
        import pyarrow.parquet as pq

        try:
            return list(pq.ParquetFile(path).schema_arrow.names)
        except Exception as exc:  # pyarrow raises a variety of types for a bad file
            raise InputError(f"{path.name}: not a readable Parquet file ({exc})") from None
    if fmt.columns or not fmt.header:
        return _names(None, fmt, path)
    with _open_text(path, fmt) as handle:
        return _names(_header(_records(handle, path, fmt, None), path, fmt), fmt, path)


def detect_delimiter(path: Path, encoding: str = "utf-8") -> str:
    """The delimiter of a CSV file among , ; tab and |, sniffed from its first lines
    (a comma when the sample is not conclusive)."""
    try:
        with path.open(encoding=encoding, newline="") as handle:
            sample = "".join(line for _, line in zip(range(_SNIFF_LINES), handle, strict=False))
    except OSError as exc:
        raise InputError(f"{path}: cannot open ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise InputError(f"{path.name}: not {encoding} text; set --encoding") from None
    try:
        sniffed = csv.Sniffer().sniff(sample, delimiters=DETECTED_DELIMITERS).delimiter
    except csv.Error:
        return _most_consistent(sample)
    first = next(csv.reader(io.StringIO(sample), delimiter=sniffed), [])
    return sniffed if len(first) > 1 else _most_consistent(sample)


def _most_consistent(sample: str) -> str:
    """The delimiter that splits most lines of `sample` into the first line's number of
    fields (at least two); a comma when none does. The Sniffer gives up on a sample as soon
    as a quoted field holds the delimiter or a quote is left open."""
    best, best_score = ",", 0
    for delimiter in DETECTED_DELIMITERS:  # in order of preference on a tie
        try:
            rows = [row for row in csv.reader(io.StringIO(sample), delimiter=delimiter) if row]
        except csv.Error:
            continue
        if not rows or len(rows[0]) < 2:
            continue
        score = sum(len(row) == len(rows[0]) for row in rows)
        if score > best_score:
            best, best_score = delimiter, score
    return best


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
    # A byte-order mark (spreadsheet exports) is not part of the first column's name.
    return [name.strip().lstrip("\ufeff").strip() for name in first]


class _Lines:
    """Physical lines of a text file fed to `csv.reader`, remembering which ones each record
    used, so a record that went wrong can be reported with its text and its lines re-read."""

    def __init__(self, handle: Iterator[str]) -> None:
        self.handle = handle
        self.number = 0
        self.pending: deque[tuple[int, str]] = deque()  # lines to read again, in order
        self.taken: list[tuple[int, str]] = []  # the lines of the record being read
        self.hit_end = False  # the reader asked for more after the last line

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        if self.pending:
            item = self.pending.popleft()
        else:
            try:
                line = next(self.handle)
            except StopIteration:
                self.hit_end = True
                raise
            self.number += 1
            item = (self.number, line)
        self.taken.append(item)
        return item[1]

    def start_record(self) -> None:
        self.taken = []
        self.hit_end = False


# A record: its first line's number, its fields (None: a stray quote), the lines it used.
_Record = tuple[int, list[str] | None, list[tuple[int, str]]]


def _csv_records(handle: Iterator[str], delimiter: str, width: int | None) -> Iterator[_Record]:
    """(first line number, fields, lines) per record; fields None for a line that opens a
    quote never closed properly. Such a record (it reaches the end of the file inside the
    quote, or swallowed following lines and has the wrong width, or broke a CSV limit) costs
    only its first line: the lines after it are read again on their own. `width` None: the
    first record's."""
    lines = _Lines(handle)
    reader = csv.reader(lines, delimiter=delimiter)
    while True:
        lines.start_record()
        try:
            fields = next(reader, None)
            broken = lines.hit_end and fields is not None
        except csv.Error:  # e.g. a swallowed field over the size limit
            fields, broken = [], True
        taken = lines.taken
        if fields is None:
            return  # the end of the file (nothing is pending then)
        if not broken and not fields:
            continue  # a blank line
        if len(taken) > 1 and not broken:
            # Legitimate quoted line breaks are well-formed CSV of the right width; a stray
            # quote that swallowed lines rarely is both.
            wrong_width = width is not None and len(fields) != width
            broken = wrong_width or not _well_formed("".join(t for _, t in taken), delimiter)
        if broken:
            lines.pending.extendleft(reversed(taken[1:]))
            yield taken[0][0], None, taken[:1]
            continue
        if width is None:
            width = len(fields)
        yield taken[0][0], fields, taken


def _well_formed(text: str, delimiter: str) -> bool:
    try:
        return len(list(csv.reader(io.StringIO(text), delimiter=delimiter, strict=True))) == 1
    except csv.Error:
        return False


def _open_text(path: Path, fmt: FileFormat) -> TextIO:
    try:
        return path.open(encoding=fmt.encoding, newline="")
    except OSError as exc:
        raise InputError(f"{path}: cannot open ({exc.strerror})") from None


def _records(handle: TextIO, path: Path, fmt: FileFormat, width: int | None) -> Iterator[_Record]:
    delimiter = fmt.delimiter if fmt.delimiter is not None else detect_delimiter(path, fmt.encoding)
    if delimiter == WHITESPACE:
        # Runs of spaces or tabs separate fields; no quoting in such files.
        return ((n, line.split(), [(n, line)]) for n, line in enumerate(handle, 1) if line.strip())
    return _csv_records(handle, _delimiter(delimiter), width)


def _header(records: Iterator[_Record], path: Path, fmt: FileFormat) -> list[str] | None:
    try:
        first = next(records, None)
    except UnicodeDecodeError:
        raise InputError(f"{path.name}: not {fmt.encoding} text; set --encoding") from None
    if first is not None and first[1] is None:
        raise InputError(f"{path.name}: the header line has an unclosed quote")
    return first[1] if first else None


def _csv_rows(path: Path, fmt: FileFormat) -> Iterator[Numbered]:
    with _open_text(path, fmt) as handle:
        if fmt.header:
            records = _records(handle, path, fmt, None)
            names = _names(_header(records, path, fmt), fmt, path)
        else:
            names = _names(None, fmt, path)
            records = _records(handle, path, fmt, len(names))
        width = len(names)
        try:
            for number, fields, taken in records:
                if fields is None:
                    yield number, None, Unreadable("has an unclosed quote", _text(taken))
                elif len(fields) != width:
                    reason = f"has {len(fields)} fields, expected {width}"
                    yield number, None, Unreadable(reason, _text(taken))
                else:
                    yield number, dict(zip(names, fields, strict=True)), None
        except UnicodeDecodeError:
            raise InputError(f"{path.name}: not {fmt.encoding} text; set --encoding") from None


def _text(lines: list[tuple[int, str]]) -> str:
    return "".join(text for _, text in lines).rstrip("\r\n")


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
            text = line.decode(errors="replace").rstrip("\r\n")
            try:
                value = orjson.loads(line)
            except orjson.JSONDecodeError:
                yield number, None, Unreadable("is not valid JSON", text)
                continue
            if not isinstance(value, dict):
                yield number, None, Unreadable("is not a JSON object", text)
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
