"""Classic SWE-agent `.traj`: `{trajectory: [{thought, action, observation, ...}], history, info}`.

The issue is the first non-demonstration `user` turn of `history` (the text between `ISSUE:` and
`INSTRUCTIONS:`); patch and exit status are `info.submission` / `info.exit_status`; `resolved`
comes from a `logs/<id>/report.json` sidecar or `--results`, as for mini-swe-agent.
"""

from __future__ import annotations

from typing import Any

from ctxdata.coding.formats._text import RecordError, content_text, extract_issue, parse_instance_id
from ctxdata.coding.formats.mini_swe_agent import _id_from_path
from ctxdata.coding.formats.results import sidecar_outcome
from ctxdata.coding.trajectory import Outcome, Step, Trajectory


class SweAgentReader:
    name = "swe-agent"
    many_per_list = True

    def matches(self, obj: Any) -> bool:
        if not isinstance(obj, dict) or not isinstance(obj.get("trajectory"), list):
            return False
        first = obj["trajectory"][0] if obj["trajectory"] else {}
        return "info" in obj or "history" in obj or (isinstance(first, dict) and "action" in first)

    def parse(self, obj: Any, location: str, path: str) -> Trajectory:
        if not isinstance(obj, dict) or not isinstance(obj.get("trajectory"), list):
            raise RecordError("missing_trajectory", "SWE-agent .traj has no `trajectory` list")
        steps = []
        for i, s in enumerate(obj["trajectory"]):
            if not isinstance(s, dict):
                raise RecordError("bad_step", f"trajectory step {i} is a {type(s).__name__}")
            action = s.get("action") or ""
            steps.append(Step(thought=str(s.get("thought") or "").strip(), action=str(action).strip("\n"), observation=str(s.get("observation") or "")))
        info = obj.get("info") if isinstance(obj.get("info"), dict) else {}
        instance_id = str(info.get("instance_id") or obj.get("instance_id") or _id_from_path(path))
        repo, commit = parse_instance_id(instance_id)
        outcome = sidecar_outcome(path, instance_id) or Outcome()
        outcome.exit_status = outcome.exit_status or info.get("exit_status")
        return Trajectory(
            id=instance_id,
            format=self.name,
            source=location,
            repo=repo,
            base_commit=commit,
            issue=_issue(obj.get("history")),
            steps=steps,
            patch=info.get("submission") or "",
            outcome=outcome,
            model=str(info.get("model_name") or ""),
        )


def _issue(history: Any) -> str:
    for msg in history if isinstance(history, list) else []:
        if isinstance(msg, dict) and msg.get("role") == "user" and not msg.get("is_demo"):
            text = content_text(msg.get("content"))
            if not text.startswith("Here is a demonstration"):
                return extract_issue(text)
    return ""
