"""mini-swe-agent `*.traj.json` (`trajectory_format: mini-swe-agent-1`).

Outcome: `info.exit_status`; `resolved` + per-test results from a SWE-bench `report.json` found in
the sibling `logs/<instance_id>/report.json` of the `trajs/` folder (or a `--results` file).
"""

from __future__ import annotations

import os
from typing import Any

from ctxdata.coding.formats._text import RecordError, parse_instance_id
from ctxdata.coding.formats.chat import chat_steps
from ctxdata.coding.formats.results import sidecar_outcome
from ctxdata.coding.trajectory import Outcome, Trajectory


class MiniSweAgentReader:
    name = "mini-swe-agent"
    many_per_list = True  # a JSON list of these holds one trajectory per element

    def matches(self, obj: Any) -> bool:
        if not isinstance(obj, dict):
            return False
        fmt = obj.get("trajectory_format")
        if isinstance(fmt, str) and fmt.startswith("mini-swe-agent"):
            return True
        return "messages" in obj and isinstance(obj.get("info"), dict)

    def parse(self, obj: Any, location: str, path: str) -> Trajectory:
        if not isinstance(obj, dict):
            raise RecordError("unknown_format", f"expected a JSON object, got {type(obj).__name__}")
        if "messages" not in obj:
            raise RecordError("missing_messages", "mini-swe-agent trajectory has no `messages` key")
        issue, steps = chat_steps(obj["messages"])
        info = obj.get("info") if isinstance(obj.get("info"), dict) else {}
        instance_id = obj.get("instance_id") or _id_from_path(path)
        if not isinstance(instance_id, str):
            raise RecordError("bad_field", f"`instance_id` is a {type(instance_id).__name__}, expected a string")
        repo, commit = parse_instance_id(instance_id)
        outcome = sidecar_outcome(path, instance_id) or Outcome()
        if outcome.exit_status is None:
            outcome.exit_status = info.get("exit_status")
        config = info.get("config") if isinstance(info.get("config"), dict) else {}
        model = config.get("model", {}).get("model_name", "") if isinstance(config.get("model"), dict) else ""
        return Trajectory(
            id=str(instance_id),
            format=self.name,
            source=location,
            repo=repo,
            base_commit=str(obj.get("base_commit") or info.get("base_commit") or commit),
            issue=issue,
            steps=steps,
            patch=info.get("submission") or "",
            outcome=outcome,
            model=model or "",
        )


def _id_from_path(path: str) -> str:
    name = os.path.basename(path)
    for suffix in (".traj.json", ".json", ".traj"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name
