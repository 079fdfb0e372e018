"""Containers: one JSON document, JSON Lines (streamed, bounded reads), Parquet (batched).

Each yields exactly one `RecordResult` per record it finds; file-level problems (empty, binary,
not UTF-8, too large, not JSON) are one RecordResult for the file.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any, Iterator

from ctxdata.coding.formats import READERS
from ctxdata._json import loads
from ctxdata.coding.formats.dispatch import ReadOptions, RecordResult, to_result

PEEK_BYTES = 8192
_NUL = b"\x00"


def iter_file(spath: str, opts: ReadOptions) -> Iterator[RecordResult]:
    """Every record of one file: container by extension + a bounded peek, then per-record dispatch."""
    max_record_bytes = opts.max_record_bytes
    try:
        with open(spath, "rb") as f:
            if spath.endswith((".jsonl", ".ndjson")):
                problem = _peek_problem(f.read(PEEK_BYTES), os.fstat(f.fileno()).st_size)
                if problem:
                    yield RecordResult(spath, None, *problem)
                    return
                f.seek(0)
                yield from iter_jsonl(f, spath, opts)
                return
            # A JSON document is parsed whole anyway: one read (sized by fstat; `read(n)` would
            # preallocate n bytes), and the peek checks below only look at its first PEEK_BYTES.
            size = os.fstat(f.fileno()).st_size
            data = f.read() if size <= max_record_bytes else f.read(PEEK_BYTES)
    except OSError as exc:
        yield RecordResult(spath, None, "unreadable", f"{type(exc).__name__}: {exc}")
        return
    if data.startswith(b"PAR1") or spath.endswith(".parquet"):
        yield from iter_parquet(spath, opts)
        return
    head = data[:PEEK_BYTES]
    problem = _peek_problem(head, size)
    if problem:
        yield RecordResult(spath, None, *problem)
        return
    first = head.lstrip()[:1]
    if first not in (b"{", b"["):
        yield RecordResult(spath, None, "unknown_format", f"not JSON/JSONL/Parquet: starts with {head.lstrip()[:20]!r}")
        return
    if size > max_record_bytes:
        yield RecordResult(spath, None, "record_too_large", f"JSON file is {size} bytes > max_record_bytes={max_record_bytes} (convert lists to JSONL)")
        return
    yield from _iter_json_document(data, spath, opts)


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


def _iter_json_document(data: bytes, path: str, opts: ReadOptions) -> Iterator[RecordResult]:
    try:
        obj = loads(data)
    except ValueError as exc:
        if getattr(exc, "msg", "") == "Extra data" and data.lstrip()[:1] == b"{":
            import io  # JSON Lines under a .json name: stream it as such

            yield from iter_jsonl(io.BytesIO(data), path, opts)
            return
        reason, detail = _json_error(exc, path)
        yield RecordResult(path, None, reason, detail)
        return
    yield from _records_of_document(obj, path, opts)


def _records_of_document(obj: Any, path: str, opts: ReadOptions) -> Iterator[RecordResult]:
    if isinstance(obj, list):
        if not obj:
            yield RecordResult(path, None, "empty_file", "top-level JSON list is empty")
            return
        one_record = READERS[opts.fmt].many_per_list is False if opts.fmt else READERS["openhands"].matches(obj)
        if not one_record:
            for i, item in enumerate(obj):
                yield to_result(item, f"{path}#{i}", path, opts)
            return
    yield to_result(obj, path, path, opts)


def iter_jsonl(f: Any, path: str, opts: ReadOptions) -> Iterator[RecordResult]:
    max_record_bytes = opts.max_record_bytes
    limit = max_record_bytes + 1
    offset = lineno = 0
    while True:
        line = f.readline(limit)
        if not line:
            return
        lineno += 1
        start = offset
        offset += len(line)
        location = f"{path}:{lineno}@{start}"
        if len(line) == limit and not line.endswith(b"\n"):
            offset += _skip_rest_of_line(f)  # bounded: never hold more than `limit` bytes
            yield RecordResult(location, None, "record_too_large", f"line {lineno} is longer than max_record_bytes={max_record_bytes}")
            continue
        if not line.strip():
            continue  # blank lines are not records
        try:
            obj = loads(line)
        except ValueError as exc:
            yield RecordResult(location, None, *_json_error(exc, f"line {lineno}"))
            continue
        yield to_result(obj, location, path, opts, opts.row_format(obj))


def _skip_rest_of_line(f: Any) -> int:
    skipped = 0
    while True:
        chunk = f.readline(1 << 20)
        skipped += len(chunk)
        if not chunk or chunk.endswith(b"\n"):
            return skipped


def iter_parquet(path: str, opts: ReadOptions) -> Iterator[RecordResult]:
    try:
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(path)
    except Exception as exc:
        yield RecordResult(path, None, "invalid_parquet", f"{type(exc).__name__}: {exc}")
        return
    index = 0
    for batch in pf.iter_batches(batch_size=64):
        for row in batch.to_pylist():
            yield to_result(row, f"{path}#{index}", path, opts, opts.row_format(row))
            index += 1


@lru_cache(maxsize=2)
def parsed_document(path: str, mtime_ns: int, size: int) -> Any:
    with open(path, "rb") as f:
        return loads(f.read())


class OneLine:
    """A file-like holding one line, so a re-read goes through the same JSONL code path."""

    def __init__(self, line: bytes) -> None:
        self._lines = [line]

    def readline(self, limit: int = -1) -> bytes:
        return self._lines.pop() if self._lines else b""


def relocated(rec: RecordResult, location: str) -> RecordResult:
    rec.location = location
    if rec.trajectory is not None:
        rec.trajectory.source = location
    return rec


def parquet_row(path: str, index: int, location: str, opts: ReadOptions) -> RecordResult:
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    for group in range(pf.num_row_groups):
        n = pf.metadata.row_group(group).num_rows
        if index < n:
            row = pf.read_row_group(group).slice(index, 1).to_pylist()[0]
            return to_result(row, location, path, opts, opts.row_format(row))
        index -= n
    return RecordResult(location, None, "missing_record", f"{path} has fewer rows")
