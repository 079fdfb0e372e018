"""SWE-bench outcomes: per-instance `report.json` sidecars and `--results` files -> `Outcome`.

Shapes understood:
- a per-instance harness report, wrapped `{instance_id: {resolved, tests_status, ...}}` (what
  `swebench.harness.run_evaluation` writes to `logs/run_evaluation/.../<id>/report.json`) or flat
  `{resolved, tests_status, ...}` (what some agent repos keep next to their trajectories);
- a mapping `{instance_id: report}` for many instances (the per-instance reports merged);
- the harness summary `{resolved_ids: [...], unresolved_ids: [...], error_ids: [...], ...}` and the
  older `{resolved: [...], ...}` lists: `resolved` only, no per-test results;
- a folder: every `report.json` below it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ctxdata._json import loads
from ctxdata.coding.trajectory import Outcome
from ctxdata.errors import CtxdataError

_SUMMARY_TRUE = ("resolved_ids", "resolved")
_SUMMARY_FALSE = ("unresolved_ids", "error_ids", "empty_patch_ids", "incomplete_ids", "applied", "no_apply", "no_generation", "no_logs")


def outcome_from_report(report: dict[str, Any]) -> Outcome:
    """One SWE-bench report dict (`resolved`, `tests_status`) as an Outcome."""
    tests = {}
    status = report.get("tests_status")
    if isinstance(status, dict):
        for kind, result in status.items():
            if isinstance(result, dict):
                tests[kind] = {k: list(v) for k, v in result.items() if isinstance(v, list)}
    resolved = report.get("resolved")
    return Outcome(resolved=bool(resolved) if resolved is not None else None, tests=tests)


def _is_report(d: Any) -> bool:
    return isinstance(d, dict) and ("resolved" in d or "tests_status" in d) and not isinstance(d.get("resolved"), list)


def outcomes_from_json(data: Any) -> dict[str, Outcome]:
    """Every instance outcome in one parsed results document (see the module doc for shapes)."""
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object, got {type(data).__name__}")
    if any(isinstance(data.get(k), list) for k in _SUMMARY_TRUE + _SUMMARY_FALSE):
        out: dict[str, Outcome] = {}
        for key in _SUMMARY_FALSE:  # resolved lists last so they win for ids listed twice ("applied")
            for iid in data.get(key) or []:
                out[str(iid)] = Outcome(resolved=False)
        for key in _SUMMARY_TRUE:
            for iid in data.get(key) or []:
                out[str(iid)] = Outcome(resolved=True)
        return out
    return {str(iid): outcome_from_report(rep) for iid, rep in data.items() if _is_report(rep)}


def load_results(path: str | Path) -> dict[str, Outcome]:
    """`{instance_id: Outcome}` from a results file or a folder of `report.json` files."""
    path = Path(path)
    if path.is_dir():
        merged: dict[str, Outcome] = {}
        for report in sorted(path.rglob("report.json")):
            merged.update(_load_one(report, default_id=report.parent.name))
        return merged
    if not path.is_file():
        raise CtxdataError(f"results file {path} does not exist")
    return _load_one(path)


def _load_one(path: Path, default_id: str | None = None) -> dict[str, Outcome]:
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise CtxdataError(f"cannot read results file {path}: {exc}") from None
    if default_id is not None and _is_report(data):
        return {default_id: outcome_from_report(data)}
    try:
        return outcomes_from_json(data)
    except ValueError as exc:
        raise CtxdataError(f"results file {path}: {exc}") from None


# traj dir -> the `logs` dir that holds its sidecars ("" = none): one lookup per folder, not per file.
_LOGS_DIR_CACHE: dict[str, str] = {}


def _logs_dir(traj_dir: str, instance_id: str) -> str:
    cached = _LOGS_DIR_CACHE.get(traj_dir)
    if cached is not None:
        return cached
    d = traj_dir
    found = ""
    for _ in range(3):
        if os.path.isdir(os.path.join(d, "logs")):
            found = os.path.join(d, "logs")
            if os.path.isdir(os.path.join(found, instance_id)):
                break
        d = os.path.dirname(d)
    if len(_LOGS_DIR_CACHE) > 4096:
        _LOGS_DIR_CACHE.clear()
    _LOGS_DIR_CACHE[traj_dir] = found
    return found


def sidecar_outcome(traj_path: str, instance_id: str) -> Outcome | None:
    """The outcome in `<dir>/logs/<instance_id>/report.json` for one of the trajectory's 3 nearest dirs.

    Covers `X/trajs/<id>/<id>.traj.json` + `X/logs/<id>/report.json` (the SWE-bench layout) and
    flatter variants. A sidecar that cannot be parsed is ignored (outcome unknown), not fatal.
    """
    traj_dir = os.path.dirname(traj_path)
    key = os.path.dirname(traj_dir) if os.path.basename(traj_dir) == instance_id else traj_dir
    logs = _logs_dir(key, instance_id)
    if not logs:
        return None
    try:
        with open(os.path.join(logs, instance_id, "report.json"), "rb") as f:
            data = loads(f.read())
    except (OSError, ValueError):
        return None
    if isinstance(data, dict) and isinstance(data.get(instance_id), dict):
        data = data[instance_id]
    return outcome_from_report(data) if _is_report(data) else None
