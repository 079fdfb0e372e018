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

import os
import re
from pathlib import Path
from typing import Any, Iterable, Iterator

from ctxdata.coding.formats import READERS
from ctxdata.coding.formats import load_results as load_results
from ctxdata.coding.formats.containers import OneLine, iter_file, iter_jsonl, parquet_row, parsed_document, relocated
from ctxdata.coding.formats.dispatch import DEFAULT_MAX_RECORD_BYTES, ReadOptions, RecordResult, check_fmt, to_result
from ctxdata.coding.trajectory import Trajectory
from ctxdata.errors import ConfigError, CtxdataError
from ctxdata.pipeline import INPUT, RunContext, Stage

__all__ = ["READERS", "RecordResult", "ReadTrajectories", "discover_trace_files", "iter_records", "load_results", "load_trajectory"]

TRACE_SUFFIXES = (".json", ".jsonl", ".ndjson", ".traj", ".parquet")
_JSONL_LOCATION = re.compile(r"^(.*):(\d+)@(\d+)$")
_INDEX_LOCATION = re.compile(r"^(.*)#(\d+)$")


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


def iter_records(
    path: Path, fmt: str | None = None, results: dict | None = None, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES, with_steps: bool = True
) -> Iterator[RecordResult]:
    """Every record in one file, as RecordResults (exactly one per input record found).

    `with_steps=False` is the light signature pass: steps are checked to exist but not built
    (`trajectory.steps == []`); `load_trajectory(trajectory.source)` gives the full record later.
    """
    check_fmt(fmt)
    opts = ReadOptions(fmt, results, max_record_bytes, with_steps)
    return iter_file(str(path), opts)


def load_trajectory(location: str, results: dict | None = None, fmt: str | None = None, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> Trajectory:
    """Re-read ONE record by the location `iter_records` gave it (a seek for JSONL lines)."""
    check_fmt(fmt)
    rec = _reread(location, ReadOptions(fmt, results, max_record_bytes))
    if rec.trajectory is None:
        raise CtxdataError(f"cannot re-read trajectory {location}: {rec.reason}: {rec.detail}")
    return rec.trajectory


def _reread(location: str, opts: ReadOptions) -> RecordResult:
    m = _JSONL_LOCATION.match(location)
    if m and not os.path.exists(location):
        path, offset = m.group(1), int(m.group(3))
        with open(path, "rb") as f:
            f.seek(offset)
            rows = list(iter_jsonl(OneLine(f.readline(opts.max_record_bytes + 1)), path, opts))
        if not rows:
            return RecordResult(location, None, "missing_record", f"no record at byte {offset}")
        rec = rows[0]
        return relocated(rec, location)
    m = _INDEX_LOCATION.match(location)
    if m and not os.path.exists(location):
        path, index = m.group(1), int(m.group(2))
        if path.endswith(".parquet"):
            return parquet_row(path, index, location, opts)
        st = os.stat(path)
        obj = parsed_document(path, st.st_mtime_ns, st.st_size)
        if not isinstance(obj, list) or index >= len(obj):
            return RecordResult(location, None, "missing_record", f"{path} has no element {index}")
        return to_result(obj[index], location, path, opts)
    records = list(iter_records(Path(location), opts.fmt, opts.results, opts.max_record_bytes))
    return records[0] if len(records) == 1 else RecordResult(location, None, "missing_record", f"{location} holds {len(records)} records")


class ReadTrajectories(Stage):
    """Files (or folders) -> Trajectory records; every unreadable record is an INPUT reject."""

    name = "read"
    reject_kind = INPUT
    in_unit = "files"  # files (or folders) in, trajectory records out

    def __init__(self, fmt: str | None = None, results_path: str | Path | None = None, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES, with_steps: bool = True) -> None:
        check_fmt(fmt)
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
            # A name with a trajectory suffix is read as a file without a stat first (the common
            # case: `discover_trace_files` output); anything else may be a folder to walk.
            name = str(item)
            files = [name] if name.endswith(TRACE_SUFFIXES) or not os.path.isdir(name) else discover_trace_files(Path(name))
            for path in files:
                for rec in iter_records(path, self.fmt, results, self.max_record_bytes, self.with_steps):
                    ctx.counters["inputs"] += 1
                    if rec.trajectory is None:
                        ctx.reject(rec.location, rec.reason or "unreadable", rec.detail, stage=self.name, kind=INPUT)
                    else:
                        yield rec.trajectory
