"""Containers: one JSON document, JSON Lines (streamed, bounded reads), Parquet (batched); gzip of the text ones.

Each yields exactly one `RecordResult` per record it finds; file-level problems (not a regular
file, empty, binary, not UTF-8, too large, not JSON, a damaged gzip or Parquet file) are one
RecordResult for the file, or for the rest of it when they show up part-way.
"""

from __future__ import annotations

import gzip
import os
import stat
import zlib
from typing import Any, BinaryIO, Iterator

from ctxdata._json import loads
from ctxdata.coding.formats import READERS
from ctxdata.coding.formats.dispatch import ReadOptions, RecordResult, to_result

PEEK_BYTES = 8192
_NUL = b"\x00"
_BOM = b"\xef\xbb\xbf"
_GZIP_ERRORS = (gzip.BadGzipFile, EOFError, zlib.error)


def display_name(path: str) -> str:
    """`path` as text that any UTF-8 writer accepts: undecodable bytes of a file name become `\\xNN`."""
    try:
        path.encode("utf-8")
        return path
    except UnicodeEncodeError:  # os.fsdecode kept the bytes as lone surrogates
        return os.fsencode(path).decode("utf-8", "backslashreplace")


def iter_file(path: str, opts: ReadOptions) -> Iterator[RecordResult]:
    """Every record of one file: container by extension + a bounded peek, then per-record dispatch.

    `path` opens the file; locations use its display name (a non-UTF-8 file name is still read).
    """
    name = display_name(path)
    gzipped = path.endswith(".gz")
    inner = name[:-3] if gzipped else name  # the name that says what the container is
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):  # a FIFO or device would block the open, or never end
            yield RecordResult(name, None, "not_regular_file", "not a regular file: never opened")
            return
        with open(path, "rb") as raw:
            f: BinaryIO = gzip.GzipFile(fileobj=raw, mode="rb") if gzipped else raw
            if inner.endswith((".jsonl", ".ndjson")):
                head = f.read(PEEK_BYTES)
                problem = _peek_problem(head, len(head) if gzipped and len(head) < PEEK_BYTES else st.st_size)
                if problem:
                    yield RecordResult(name, None, *problem)
                    return
                f.seek(0)
                yield from iter_jsonl(f, name, opts, inner)
                return
            if not gzipped and (inner.endswith(".parquet") or f.read(4) == b"PAR1"):
                yield from iter_parquet(path, name, opts)
                return
            f.seek(0)
            # A JSON document is parsed whole anyway: one bounded read (`read(n)` of a plain file
            # would preallocate n bytes, so it reads all of a file known to be small enough).
            limit = opts.max_record_bytes
            data = f.read(limit + 1) if gzipped else f.read() if st.st_size <= limit else f.read(PEEK_BYTES)
            size = len(data) if gzipped else st.st_size
    except _GZIP_ERRORS as exc:
        yield RecordResult(name, None, "invalid_gzip", f"{type(exc).__name__}: {exc}")
        return
    except OSError as exc:
        yield RecordResult(name, None, "unreadable", f"{type(exc).__name__}: {exc.strerror or exc}")
        return
    yield from _iter_json_file(data, size, name, inner, opts)


def _iter_json_file(data: bytes, size: int, name: str, inner: str, opts: ReadOptions) -> Iterator[RecordResult]:
    if data.startswith(_BOM):  # a UTF-8 byte-order mark (Windows editors): allowed, as JSON Lines allow it
        data, size = data[len(_BOM) :], size - len(_BOM)
    head = data[:PEEK_BYTES]
    problem = _peek_problem(head, size)
    if problem:
        yield RecordResult(name, None, *problem)
        return
    first = head.lstrip()[:1]
    if first not in (b"{", b"["):
        yield RecordResult(name, None, "unknown_format", f"not JSON/JSONL/Parquet: starts with {head.lstrip()[:20]!r}")
        return
    if size > opts.max_record_bytes:
        yield RecordResult(
            name,
            None,
            "record_too_large",
            f"JSON file is over max_record_bytes={opts.max_record_bytes} bytes (convert lists to JSONL)",
        )
        return
    yield from _iter_json_document(data, name, inner, opts)


def _json_error(exc: ValueError, where: str) -> tuple[str, str]:
    if isinstance(exc, UnicodeDecodeError):
        return "not_utf8", f"{where}: invalid UTF-8 byte 0x{exc.object[exc.start]:02x} at byte {exc.start}"
    return "invalid_json", f"{where}: {exc}"


def _peek_problem(head: bytes, size: int) -> tuple[str, str] | None:
    if size == 0:
        return "empty_file", "file is 0 bytes"
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "not_utf8", "file starts with a UTF-16 byte-order mark"
    if _NUL in head:
        return "binary_file", f"NUL byte at offset {head.index(_NUL)} in the first {len(head)} bytes"
    if size <= len(head) and not head.strip():
        return "empty_file", f"file holds only {size} whitespace bytes"
    return None


def _iter_json_document(data: bytes, name: str, inner: str, opts: ReadOptions) -> Iterator[RecordResult]:
    try:
        obj = loads(data)
    except ValueError as exc:
        if getattr(exc, "msg", "") == "Extra data" and data.lstrip()[:1] == b"{":
            import io  # JSON Lines under a .json name: stream it as such

            yield from iter_jsonl(io.BytesIO(data), name, opts, inner)
            return
        reason, detail = _json_error(exc, name)
        yield RecordResult(name, None, reason, detail)
        return
    yield from _records_of_document(obj, name, inner, opts)


def _records_of_document(obj: Any, name: str, inner: str, opts: ReadOptions) -> Iterator[RecordResult]:
    if isinstance(obj, list):
        if not obj:
            yield RecordResult(name, None, "empty_file", "top-level JSON list is empty")
            return
        one_record = READERS[opts.fmt].many_per_list is False if opts.fmt else READERS["openhands"].matches(obj)
        if not one_record:
            for i, item in enumerate(obj):
                yield to_result(item, f"{name}#{i}", inner, opts)
            return
    yield to_result(obj, name, inner, opts)


def iter_jsonl(f: Any, name: str, opts: ReadOptions, inner: str | None = None) -> Iterator[RecordResult]:
    """One RecordResult per non-blank line; `inner` is the file name without `.gz` (it implies a format)."""
    max_record_bytes = opts.max_record_bytes
    limit = max_record_bytes + 1
    offset = lineno = 0
    while True:
        try:
            line = f.readline(limit)
        except _GZIP_ERRORS as exc:  # a gzip stream damaged part-way: the rest of the file is one reject
            yield RecordResult(
                f"{name}:{lineno + 1}@{offset}",
                None,
                "invalid_gzip",
                f"from line {lineno + 1} on: {type(exc).__name__}: {exc}",
            )
            return
        if not line:
            return
        lineno += 1
        start = offset
        offset += len(line)
        location = f"{name}:{lineno}@{start}"
        if len(line) == limit and not line.endswith(b"\n"):
            offset += _skip_rest_of_line(f)  # bounded: never hold more than `limit` bytes
            yield RecordResult(
                location, None, "record_too_large", f"line {lineno} is longer than max_record_bytes={max_record_bytes}"
            )
            continue
        if not line.strip():
            continue  # blank lines are not records
        try:
            obj = loads(line)
        except ValueError as exc:
            yield RecordResult(location, None, *_json_error(exc, f"line {lineno}"))
            continue
        yield to_result(obj, location, inner or name, opts, opts.row_format(obj))


def _skip_rest_of_line(f: Any) -> int:
    skipped = 0
    while True:
        chunk = f.readline(1 << 20)
        skipped += len(chunk)
        if not chunk or chunk.endswith(b"\n"):
            return skipped


def iter_parquet(path: str, name: str, opts: ReadOptions) -> Iterator[RecordResult]:
    """One RecordResult per row; a file that cannot be opened, or breaks part-way, is one more for the rest."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    index = 0
    try:
        pf = pq.ParquetFile(path)
        if pf.metadata.num_rows == 0:
            yield RecordResult(name, None, "empty_file", "Parquet file has 0 rows")
            return
        for batch in pf.iter_batches(batch_size=64):
            for row in batch.to_pylist():
                yield to_result(row, f"{name}#{index}", name, opts, opts.row_format(row))
                index += 1
    except (OSError, ValueError, pa.ArrowException) as exc:  # ValueError: e.g. invalid UTF-8 in a string column
        where = name if index == 0 else f"{name}#{index}"
        yield RecordResult(
            where,
            None,
            "invalid_parquet",
            f"{'file' if index == 0 else f'rows from {index} on'}: {type(exc).__name__}: {exc}",
        )
