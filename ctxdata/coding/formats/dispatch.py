"""Record dispatch shared by every container: pick a reader, parse, apply outcomes, never raise.

`to_result(obj, location, path, opts)` turns one decoded record into a `RecordResult`: the
forced format, else the first reader whose `matches` accepts the keys, else the format the file
name implies. Reader errors become reject reasons; anything unexpected becomes `parse_error`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ctxdata.coding.formats import DETECT_ORDER, READERS, RecordError, outcome_from_report
from ctxdata.coding.trajectory import Outcome, Trajectory
from ctxdata.errors import ConfigError

DEFAULT_MAX_RECORD_BYTES = 64 << 20


@dataclass
class RecordResult:
    """One input record: its location and either a Trajectory or a reject reason + detail."""

    location: str
    trajectory: Trajectory | None
    reason: str | None = None
    detail: str = ""


def check_fmt(fmt: str | None) -> None:
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


def detect(obj: Any) -> str | None:
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
class ReadOptions:
    """How to read: forced format, outcome overrides, size limit."""

    fmt: str | None = None
    results: dict | None = None
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES

    def row_format(self, obj: Any) -> str:
        # A JSONL/Parquet row with no recognisable keys is read as an HF "messages" row, so it is
        # rejected as `missing_messages` rather than `unknown_format`.
        return self.fmt or detect(obj) or "hf-messages"


def to_result(obj: Any, location: str, path: str, opts: ReadOptions, fmt: str | None = None) -> RecordResult:
    """Parse one decoded record with the forced, detected or extension-implied reader."""
    results = opts.results
    name = fmt or opts.fmt or detect(obj) or _extension_format(path)
    if name is None:
        return RecordResult(location, None, "unknown_format", _results_hint(obj))
    try:
        traj = READERS[name].parse(obj, location, path)
    except RecordError as exc:
        return RecordResult(location, None, exc.reason, exc.detail)
    except Exception as exc:  # a record of an unexpected shape must not stop the run
        return RecordResult(location, None, "parse_error", f"{name} reader: {type(exc).__name__}: {exc}")
    if not isinstance(traj.model, str):  # provenance only: kept, as text
        traj.model = "" if traj.model is None else str(traj.model)
    problem = _type_problem(traj)
    if problem:  # a field of the wrong JSON type (e.g. a numeric `submission`): say which
        return RecordResult(location, None, "bad_field", f"{name} record {traj.id!r}: {problem}")
    if not traj.steps:
        return RecordResult(location, None, "no_steps", f"{name} record {traj.id!r} has no agent steps")
    if results:
        _apply_results(traj, results)
    return RecordResult(location, traj)


def _type_problem(traj: Trajectory) -> str | None:
    """What is not a string (or an int exit code) where the Trajectory promises one, else None."""
    for name in ("id", "repo", "base_commit", "issue", "patch"):
        value = getattr(traj, name)
        if not isinstance(value, str):
            return f"`{_FIELD_NAMES.get(name, name)}` is a {type(value).__name__}, expected a string"
    for i, step in enumerate(traj.steps):
        for name in ("thought", "action", "observation"):
            if not isinstance(getattr(step, name), str):
                return f"step {i} `{name}` is a {type(getattr(step, name)).__name__}, expected a string"
        if step.returncode is not None and not isinstance(step.returncode, int):
            return f"step {i} return code is a {type(step.returncode).__name__}, expected an integer"
    return None


_FIELD_NAMES = {"patch": "patch (e.g. info.submission)", "issue": "issue text", "base_commit": "base commit"}


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
