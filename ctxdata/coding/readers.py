"""Read agent trajectories of any supported format into `Trajectory` records, streaming.

    for rec in iter_records(Path("runs/")):          # one RecordResult per input record
        rec.trajectory or print(rec.reason, rec.detail)

Formats live in `ctxdata.coding.formats` (registry `READERS`). A file's container is picked by
extension plus a bounded peek (JSON, JSONL, Parquet); the format of each record by its keys, or
forced with `fmt`. Bad input never raises: it becomes a RecordResult with a `reason`
(`invalid_json`, `empty_file`, `not_utf8`, `binary_file`, `record_too_large`, `unknown_format`,
`missing_messages`, `no_steps`, ...) and a `detail` naming the problem, so inputs = read + rejected.

Locations name one record so it can be re-read later (`load_trajectory`): `path` (one-record
file), `path#INDEX` (element of a JSON list / row of a Parquet file), `path:LINENO@OFFSET` (JSONL
line LINENO starting at byte OFFSET, so a re-read is one seek).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Iterator

from ctxdata.coding.formats import DETECT_ORDER, READERS, RecordError, outcome_from_report
from ctxdata.coding.formats import load_results as load_results
from ctxdata.coding.trajectory import Outcome, Trajectory
from ctxdata.errors import ConfigError, CtxdataError
from ctxdata.pipeline import INPUT, RunContext, Stage

TRACE_SUFFIXES = (".json", ".jsonl", ".ndjson", ".traj", ".parquet")
PEEK_BYTES = 8192
_NUL = b"\x00"
DEFAULT_MAX_RECORD_BYTES = 64 << 20
_JSONL_LOCATION = re.compile(r"^(.*):(\d+)@(\d+)$")
_INDEX_LOCATION = re.compile(r"^(.*)#(\d+)$")


@dataclass
class RecordResult:
    """One input record: its location and either a Trajectory or a reject reason + detail."""

    location: str
    trajectory: Trajectory | None
    reason: str | None = None
    detail: str = ""


def discover_trace_files(root: Path) -> list[Path]:
    """Trajectory files under `root` (or `root` itself), sorted; skips hidden files and `logs/` folders."""
    root = Path(root)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise CtxdataError(f"trajectory path {root} does not exist")
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        # `logs/` holds SWE-bench harness outputs (report.json sidecars, test logs), never
        # trajectories: the readers look sidecars up directly, so the walk skips the whole tree.
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "logs")
        found.extend(os.path.join(dirpath, name) for name in filenames if not name.startswith(".") and name.endswith(TRACE_SUFFIXES))
    return [Path(p) for p in sorted(found)]


def _check_fmt(fmt: str | None) -> None:
    if fmt is not None and fmt not in READERS:
        raise ConfigError(f"unknown trajectory format {fmt!r}; valid formats: {', '.join(READERS)}")


def _extension_format(path: str) -> str | None:
    """The format a file's name implies, used when its keys alone do not say."""
    if path.endswith(".traj.json"):
        return "mini-swe-agent"
    if path.endswith(".traj"):
        return "swe-agent"
    if path.endswith((".jsonl", ".ndjson", ".parquet")):
        return "hf-messages"
    return None


def _detect(obj: Any) -> str | None:
    for name in DETECT_ORDER:
        if READERS[name].matches(obj):
            return name
    return None


def _results_hint(obj: Any) -> str:
    if isinstance(obj, dict):
        keys = sorted(map(str, obj))[:8]
        if "resolved_ids" in obj or "tests_status" in obj:
            return f"looks like a SWE-bench results file (keys {keys}); pass it with --results"
        return f"no known trajectory keys (top-level keys: {keys})"
    return f"top level is a {type(obj).__name__}"


@dataclass(frozen=True)
class _Options:
    """How to read: forced format, outcome overrides, size limit, light pass."""

    fmt: str | None = None
    results: dict | None = None
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES
    with_steps: bool = True

    def row_format(self, obj: Any) -> str | None:
        # A JSONL/Parquet row with no recognisable keys is read as an HF "messages" row, so it is
        # rejected as `missing_messages` rather than `unknown_format`.
        return self.fmt or (None if _detect(obj) else "hf-messages")


def _to_result(obj: Any, location: str, path: str, opts: _Options, fmt: str | None = None) -> RecordResult:
    """Parse one decoded record with the forced, detected or extension-implied reader."""
    with_steps, results = opts.with_steps, opts.results
    name = fmt or opts.fmt or _detect(obj) or _extension_format(path)
    if name is None:
        return RecordResult(location, None, "unknown_format", _results_hint(obj))
    try:
        traj = READERS[name].parse(obj, location, path, with_steps=with_steps)
    except RecordError as exc:
        return RecordResult(location, None, exc.reason, exc.detail)
    except Exception as exc:  # a record of an unexpected shape must not stop the run
        return RecordResult(location, None, "parse_error", f"{name} reader: {type(exc).__name__}: {exc}")
    if with_steps and not traj.steps:
        return RecordResult(location, None, "no_steps", f"{name} record {traj.id!r} has no agent steps")
    if not with_steps:
        traj.steps = []  # readers without a light path parsed them; the light pass promises none
    if results:
        _apply_results(traj, results)
    return RecordResult(location, traj)


def _apply_results(traj: Trajectory, results: dict) -> None:
    found = results.get(traj.id)
    if found is None:
        return
    outcome = found if isinstance(found, Outcome) else outcome_from_report(found) if isinstance(found, dict) else None
    if outcome is None:
        return
    traj.outcome = Outcome(
        resolved=outcome.resolved if outcome.resolved is not None else traj.outcome.resolved,
        exit_status=traj.outcome.exit_status or outcome.exit_status,
        tests=outcome.tests or traj.outcome.tests,
    )


def _json_error(exc: ValueError, where: str) -> tuple[str, str]:
    if isinstance(exc, UnicodeDecodeError):
        return "not_utf8", f"{where}: invalid UTF-8 byte 0x{exc.object[exc.start]:02x} at byte {exc.start}"
    return "invalid_json", f"{where}: {exc}"


def iter_records(
    path: Path, fmt: str | None = None, results: dict | None = None, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES, with_steps: bool = True
) -> Iterator[RecordResult]:
    """Every record in one file, as RecordResults (exactly one per input record found).

    `with_steps=False` is the light signature pass: steps are checked to exist but not built
    (`trajectory.steps == []`); `load_trajectory(trajectory.source)` gives the full record later.
    """
    _check_fmt(fmt)
    opts = _Options(fmt, results, max_record_bytes, with_steps)
    spath = str(path)
    try:
        with open(spath, "rb") as f:
            if spath.endswith((".jsonl", ".ndjson")):
                problem = _peek_problem(f.read(PEEK_BYTES), os.fstat(f.fileno()).st_size)
                if problem:
                    yield RecordResult(spath, None, *problem)
                    return
                f.seek(0)
                yield from _iter_jsonl(f, spath, opts)
                return
            # A JSON document is parsed whole anyway: one read (sized by fstat; `read(n)` would
            # preallocate n bytes), and the peek checks below only look at its first PEEK_BYTES.
            size = os.fstat(f.fileno()).st_size
            data = f.read() if size <= max_record_bytes else f.read(PEEK_BYTES)
    except OSError as exc:
        yield RecordResult(spath, None, "unreadable", f"{type(exc).__name__}: {exc}")
        return
    if data.startswith(b"PAR1") or spath.endswith(".parquet"):
        yield from _iter_parquet(spath, opts)
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


def _iter_json_document(data: bytes, path: str, opts: _Options) -> Iterator[RecordResult]:
    try:
        obj = json.loads(data)
    except ValueError as exc:
        if getattr(exc, "msg", "") == "Extra data" and data.lstrip()[:1] == b"{":
            import io  # JSON Lines under a .json name: stream it as such

            yield from _iter_jsonl(io.BytesIO(data), path, opts)
            return
        reason, detail = _json_error(exc, path)
        yield RecordResult(path, None, reason, detail)
        return
    yield from _records_of_document(obj, path, opts)


def _records_of_document(obj: Any, path: str, opts: _Options) -> Iterator[RecordResult]:
    if isinstance(obj, list):
        if not obj:
            yield RecordResult(path, None, "empty_file", "top-level JSON list is empty")
            return
        one_record = READERS[opts.fmt].many_per_list is False if opts.fmt else READERS["openhands"].matches(obj)
        if not one_record:
            for i, item in enumerate(obj):
                yield _to_result(item, f"{path}#{i}", path, opts)
            return
    yield _to_result(obj, path, path, opts)


def _iter_jsonl(f: Any, path: str, opts: _Options) -> Iterator[RecordResult]:
    max_record_bytes = opts.max_record_bytes
    limit = max_record_bytes + 1
    offset = lineno = 0
    loads = json.loads
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
        yield _to_result(obj, location, path, opts, opts.row_format(obj))


def _skip_rest_of_line(f: Any) -> int:
    skipped = 0
    while True:
        chunk = f.readline(1 << 20)
        skipped += len(chunk)
        if not chunk or chunk.endswith(b"\n"):
            return skipped


def _iter_parquet(path: str, opts: _Options) -> Iterator[RecordResult]:
    try:
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(path)
    except Exception as exc:
        yield RecordResult(path, None, "invalid_parquet", f"{type(exc).__name__}: {exc}")
        return
    index = 0
    for batch in pf.iter_batches(batch_size=64):
        for row in batch.to_pylist():
            yield _to_result(row, f"{path}#{index}", path, opts, opts.row_format(row))
            index += 1


@lru_cache(maxsize=2)
def _parsed_document(path: str, mtime_ns: int, size: int) -> Any:
    with open(path, "rb") as f:
        return json.loads(f.read())


def load_trajectory(location: str, results: dict | None = None, fmt: str | None = None, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> Trajectory:
    """Re-read ONE record by the location `iter_records` gave it (a seek for JSONL lines)."""
    _check_fmt(fmt)
    rec = _reread(location, _Options(fmt, results, max_record_bytes))
    if rec.trajectory is None:
        raise CtxdataError(f"cannot re-read trajectory {location}: {rec.reason}: {rec.detail}")
    return rec.trajectory


def _reread(location: str, opts: _Options) -> RecordResult:
    m = _JSONL_LOCATION.match(location)
    if m and not os.path.exists(location):
        path, lineno, offset = m.group(1), int(m.group(2)), int(m.group(3))
        with open(path, "rb") as f:
            f.seek(offset)
            rows = list(_iter_jsonl(_OneLine(f.readline(opts.max_record_bytes + 1)), path, opts))
        if not rows:
            return RecordResult(location, None, "missing_record", f"no record at byte {offset}")
        rec = rows[0]
        return _relocated(rec, location)
    m = _INDEX_LOCATION.match(location)
    if m and not os.path.exists(location):
        path, index = m.group(1), int(m.group(2))
        if path.endswith(".parquet"):
            return _parquet_row(path, index, location, opts)
        st = os.stat(path)
        obj = _parsed_document(path, st.st_mtime_ns, st.st_size)
        if not isinstance(obj, list) or index >= len(obj):
            return RecordResult(location, None, "missing_record", f"{path} has no element {index}")
        return _to_result(obj[index], location, path, opts)
    records = list(iter_records(Path(location), opts.fmt, opts.results, opts.max_record_bytes))
    return records[0] if len(records) == 1 else RecordResult(location, None, "missing_record", f"{location} holds {len(records)} records")


class _OneLine:
    """A file-like holding one line, so a re-read goes through the same JSONL code path."""

    def __init__(self, line: bytes) -> None:
        self._lines = [line]

    def readline(self, limit: int = -1) -> bytes:
        return self._lines.pop() if self._lines else b""


def _relocated(rec: RecordResult, location: str) -> RecordResult:
    rec.location = location
    if rec.trajectory is not None:
        rec.trajectory.source = location
    return rec


def _parquet_row(path: str, index: int, location: str, opts: _Options) -> RecordResult:
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    for group in range(pf.num_row_groups):
        n = pf.metadata.row_group(group).num_rows
        if index < n:
            row = pf.read_row_group(group).slice(index, 1).to_pylist()[0]
            return _to_result(row, location, path, opts, opts.row_format(row))
        index -= n
    return RecordResult(location, None, "missing_record", f"{path} has fewer rows")


class ReadTrajectories(Stage):
    """Files (or folders) -> Trajectory records; every unreadable record is an INPUT reject."""

    name = "read"
    reject_kind = INPUT

    def __init__(self, fmt: str | None = None, results_path: str | Path | None = None, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES, with_steps: bool = True) -> None:
        _check_fmt(fmt)
        if max_record_bytes < 1:
            raise ConfigError(f"max_record_bytes must be >= 1, got {max_record_bytes}")
        self.fmt = fmt
        self.results_path = Path(results_path) if results_path else None
        self.max_record_bytes = max_record_bytes
        self.with_steps = with_steps  # False: the light signature pass (steps validated, not built)
        self._results: dict | None = None  # loaded on first run, so the stage stays cheap to build and pickle

    def results(self) -> dict | None:
        if self._results is None and self.results_path is not None:
            self._results = load_results(self.results_path)
        return self._results

    def run(self, paths: Iterable[Any], ctx: RunContext) -> Iterator[Trajectory]:
        results = self.results()
        for item in paths:
            files = discover_trace_files(Path(item)) if Path(item).is_dir() else [Path(item)]
            for path in files:
                for rec in iter_records(path, self.fmt, results, self.max_record_bytes, self.with_steps):
                    ctx.counters["inputs"] += 1
                    if rec.trajectory is None:
                        ctx.reject(rec.location, rec.reason or "unreadable", rec.detail, stage=self.name, kind=INPUT)
                    else:
                        yield rec.trajectory
