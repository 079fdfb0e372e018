"""nebius/SWE-agent-trajectories rows: `{instance_id, model_name, target, exit_status,
generated_patch, eval_logs, trajectory: [{role: system|user|ai, text}]}` (JSON list, JSONL or Parquet).

Each `ai` turn is a step (thought + the last fenced SWE-agent command); the `user` turn after it is
its observation. `target` is the resolved label; `generated_patch` the patch.
"""

from __future__ import annotations

from typing import Any

from ctxdata.coding.formats._text import RecordError, extract_issue, parse_instance_id, split_last_fence
from ctxdata.coding.trajectory import Outcome, Step, Trajectory


class NebiusReader:
    name = "swe-agent-nebius"
    many_per_list = True

    def matches(self, obj: Any) -> bool:
        if not isinstance(obj, dict) or not isinstance(obj.get("trajectory"), list):
            return False
        first = obj["trajectory"][0] if obj["trajectory"] else {}
        return "generated_patch" in obj or "target" in obj or (isinstance(first, dict) and "text" in first)

    def parse(self, obj: Any, location: str, path: str) -> Trajectory:
        if not isinstance(obj, dict) or not isinstance(obj.get("trajectory"), list):
            raise RecordError("missing_trajectory", "nebius row has no `trajectory` list")
        issue, steps = "", []
        for i, turn in enumerate(obj["trajectory"]):
            if not isinstance(turn, dict):
                raise RecordError("bad_message", f"trajectory turn {i} is a {type(turn).__name__}")
            role, text = turn.get("role"), turn.get("text") or ""
            if role == "ai":
                thought, action = split_last_fence(text)
                steps.append(Step(thought=thought, action=action))
            elif role == "user":
                if not issue and not steps:
                    issue = extract_issue(text)
                elif steps:
                    steps[-1].observation = f"{steps[-1].observation}\n{text}" if steps[-1].observation else text
        instance_id = str(obj.get("instance_id") or "")
        if not instance_id:
            raise RecordError("missing_id", "row has no `instance_id`")
        repo, commit = parse_instance_id(instance_id)
        target = obj.get("target")
        return Trajectory(
            id=instance_id,
            format=self.name,
            source=location,
            repo=repo,
            base_commit=commit,
            issue=issue,
            steps=steps,
            patch=obj.get("generated_patch") or "",
            outcome=Outcome(resolved=target if isinstance(target, bool) else None, exit_status=obj.get("exit_status")),
            model=str(obj.get("model_name") or ""),
        )
