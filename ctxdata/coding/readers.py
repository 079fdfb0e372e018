"""Read agent trajectories of any supported format into `Trajectory` records, streaming.

    for path in discover_trace_files(Path("runs/")):   # files, plus what was found but not read
        for rec in iter_records(path):                # one RecordResult per input record
            rec.trajectory or print(rec.reason, rec.detail)

Formats live in `ctxdata.coding.formats` (registry `READERS`, contract `TrajectoryReader`). A
file's container is picked by extension plus a bounded peek (JSON, JSONL, Parquet, each optionally
gzipped); the format of each record by its keys, or forced with `fmt`. Bad input never raises: it
becomes a RecordResult with a `reason` (`invalid_json`, `empty_file`, `not_utf8`, `binary_file`,
`record_too_large`, `unknown_format`, `missing_messages`, `no_steps`, ...) and a `detail` naming
the problem, so inputs = read + rejected.

What is read: regular files named `*.json`, `*.jsonl`, `*.ndjson`, `*.traj`, `*.parquet` (and
`.gz` of the text ones). Hidden names and `logs/` folders (SWE-bench harness output) are passed
over by convention. Everything else found is a `Skipped` entry that `iter_records` turns into one
reject: `unsupported_file`, `not_regular_file` (a FIFO, device or socket is never opened, so a
read cannot block), `symlink_outside_root` (links are followed only inside the input folder,
unless `follow_symlinks`), `broken_symlink`, `unreadable` (a folder that cannot be listed).
Locations name one record: `path`, `path#INDEX` (element of a JSON list, row of a Parquet file)
or `path:LINENO@OFFSET` (JSONL line LINENO starting at byte OFFSET).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any, Iterable, Iterator, NamedTuple

from ctxdata.coding.formats import READERS, TrajectoryReader
from ctxdata.coding.formats import load_results as load_results
from ctxdata.coding.formats.containers import display_name, iter_file
from ctxdata.coding.formats.dispatch import DEFAULT_MAX_RECORD_BYTES, ReadOptions, RecordResult, check_fmt
from ctxdata.coding.trajectory import Trajectory
from ctxdata.errors import ConfigError, CtxdataError
from ctxdata.pipeline import INPUT, RunContext, Stage

__all__ = [
    "READERS",
    "RecordResult",
    "ReadTrajectories",
    "Skipped",
    "TrajectoryReader",
    "discover_trace_files",
    "iter_records",
    "load_results",
]

TEXT_SUFFIXES = (".json", ".jsonl", ".ndjson", ".traj")
TRACE_SUFFIXES = TEXT_SUFFIXES + (".parquet",) + tuple(s + ".gz" for s in TEXT_SUFFIXES)


class Skipped(NamedTuple):
    """Something found under an input folder that is not read; `iter_records` makes it one reject."""

    path: str
    reason: str
    detail: str


def discover_trace_files(root: Path, *, follow_symlinks: bool = False) -> list[Path | Skipped]:
    """Trajectory files under `root` (or `root` itself), sorted, plus a `Skipped` for everything else found.

    Symlinks (to files or folders) are followed when their target lies inside `root`, or anywhere
    with `follow_symlinks`; a folder reached twice (a link loop) is listed once.
    """
    root = Path(root)
    if not root.is_dir():
        if not os.path.lexists(root):
            raise CtxdataError(f"trajectory path {root} does not exist")
        return [_classify(str(root), None, follow_symlinks)]
    real_root = os.path.realpath(root)
    found: list[Path | Skipped] = []
    seen: set[str] = set()

    def walk_error(exc: OSError) -> None:
        found.append(
            Skipped(
                display_name(exc.filename or str(root)),
                "unreadable",
                f"folder cannot be listed: {exc.strerror or exc}",
            )
        )

    for dirpath, dirnames, filenames in os.walk(root, onerror=walk_error, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:  # a link loop, or a folder linked twice
            dirnames[:] = []
            continue
        seen.add(real)
        # `logs/` holds SWE-bench harness outputs (report.json sidecars, test logs), never
        # trajectories: the readers look sidecars up directly, so the walk skips the whole tree.
        kept = []
        for d in sorted(dirnames):
            if d.startswith(".") or d == "logs":
                continue
            path = os.path.join(dirpath, d)
            problem = _link_problem(path, real_root, follow_symlinks) if os.path.islink(path) else None
            if problem:
                found.append(Skipped(display_name(path), *problem))
            else:
                kept.append(d)
        dirnames[:] = kept
        for name in filenames:
            if not name.startswith("."):
                found.append(_classify(os.path.join(dirpath, name), real_root, follow_symlinks))
    return sorted(found, key=lambda item: os.fsencode(item.path if isinstance(item, Skipped) else item))


def _link_problem(path: str, real_root: str | None, follow_symlinks: bool) -> tuple[str, str] | None:
    target = os.path.realpath(path)
    if not os.path.exists(target):
        return "broken_symlink", f"symlink to {display_name(os.readlink(path))}, which does not exist"
    if not follow_symlinks and real_root is not None and os.path.commonpath([target, real_root]) != real_root:
        return (
            "symlink_outside_root",
            f"symlink to {display_name(target)}, outside the input folder; pass --follow-symlinks to read it",
        )
    return None


def _classify(path: str, real_root: str | None, follow_symlinks: bool) -> Path | Skipped:
    """A file to read, or why it is not read (never opening it: a FIFO would block the open)."""
    if os.path.islink(path):
        problem = _link_problem(path, real_root, follow_symlinks)
        if problem:
            return Skipped(display_name(path), *problem)
    if real_root is not None and not path.endswith(
        TRACE_SUFFIXES
    ):  # a file named explicitly is read whatever its name
        return Skipped(
            display_name(path), "unsupported_file", f"not a trajectory file (read: {', '.join(TRACE_SUFFIXES)})"
        )
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        return Skipped(display_name(path), "unreadable", f"{type(exc).__name__}: {exc.strerror or exc}")
    if not stat.S_ISREG(mode):
        return Skipped(
            display_name(path), "not_regular_file", f"a {_file_kind(mode)}, not a regular file: never opened"
        )
    return Path(path)


def _file_kind(mode: int) -> str:
    for test, kind in (
        (stat.S_ISFIFO, "FIFO"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
        (stat.S_ISDIR, "folder"),
    ):
        if test(mode):
            return kind
    return "special file"


def iter_records(
    path: Path | str | Skipped,
    fmt: str | None = None,
    results: dict | None = None,
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
) -> Iterator[RecordResult]:
    """Every record in one file, as RecordResults (exactly one per input record found; one for a `Skipped`)."""
    check_fmt(fmt)
    if isinstance(path, Skipped):
        return iter([RecordResult(path.path, None, path.reason, path.detail)])
    return iter_file(os.fspath(path), ReadOptions(fmt, results, max_record_bytes))


class ReadTrajectories(Stage):
    """Files (or folders) -> Trajectory records; every unreadable record is an INPUT reject."""

    name = "read"
    reject_kind = INPUT
    in_unit = "files"  # files (or folders) in, trajectory records out

    def __init__(
        self,
        fmt: str | None = None,
        results_path: str | Path | None = None,
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
        follow_symlinks: bool = False,
    ) -> None:
        check_fmt(fmt)
        if max_record_bytes < 1:
            raise ConfigError(f"max_record_bytes must be >= 1, got {max_record_bytes}")
        self.fmt = fmt
        self.results_path = Path(results_path) if results_path else None
        self.max_record_bytes = max_record_bytes
        self.follow_symlinks = follow_symlinks
        self._results: dict | None = None  # loaded on first run, so the stage stays cheap to build and pickle

    def results(self) -> dict | None:
        if self._results is None and self.results_path is not None:
            self._results = load_results(self.results_path)
        return self._results

    def run(self, paths: Iterable[Any], ctx: RunContext) -> Iterator[Trajectory]:
        results = self.results()
        for item in paths:
            # `discover_trace_files` output is read as is (no second stat); a folder is walked.
            is_folder = (
                not isinstance(item, Skipped) and not str(item).endswith(TRACE_SUFFIXES) and os.path.isdir(item)
            )
            files = discover_trace_files(Path(item), follow_symlinks=self.follow_symlinks) if is_folder else [item]
            for path in files:
                for rec in _guarded(path, self.fmt, results, self.max_record_bytes):
                    ctx.counters["inputs"] += 1
                    if rec.trajectory is None:
                        ctx.reject(rec.location, rec.reason or "unreadable", rec.detail, stage=self.name, kind=INPUT)
                    else:
                        yield rec.trajectory


def _guarded(
    path: Path | str | Skipped, fmt: str | None, results: dict | None, max_record_bytes: int
) -> Iterator[RecordResult]:
    """`iter_records`, with anything a container did not foresee becoming one reject for the rest of the file."""
    try:
        yield from iter_records(path, fmt, results, max_record_bytes)
    except MemoryError:
        raise
    except Exception as exc:  # a data problem no reader anticipated must cost one record, not the run
        where = path.path if isinstance(path, Skipped) else display_name(os.fspath(path))
        yield RecordResult(where, None, "read_error", f"{type(exc).__name__}: {exc}")
