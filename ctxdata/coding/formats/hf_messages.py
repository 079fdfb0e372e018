"""Hugging Face "messages" rows (JSONL or Parquet), e.g. SWE-smith `...-trajectories-66k`.

A row is `{instance_id, messages: [{role, content}], ...}`; `messages` may also be a JSON string
(some Parquet exports). Patch: a `patch`/`model_patch` column, else the output of the last
`git diff` in the trajectory (the submit command), else "". Outcome: a `resolved` column if any.
"""

from __future__ import annotations

from typing import Any

from ctxdata._json import loads
from ctxdata.coding.formats._text import RecordError, parse_instance_id
from ctxdata.coding.formats.chat import chat_steps, last_diff
from ctxdata.coding.trajectory import Outcome, Trajectory


class HfMessagesReader:
    name = "hf-messages"
    many_per_list = True

    def matches(self, obj: Any) -> bool:
        return isinstance(obj, dict) and "messages" in obj

    def parse(self, obj: Any, location: str, path: str) -> Trajectory:
        if not isinstance(obj, dict):
            raise RecordError("unknown_format", f"expected a JSON object per row, got {type(obj).__name__}")
        if "messages" not in obj:
            keys = ", ".join(sorted(map(str, obj))[:8])
            raise RecordError("missing_messages", f"row has no `messages` key (keys: {keys})")
        messages = obj["messages"]
        if isinstance(messages, str):
            try:
                messages = loads(messages)  # lone surrogates become U+FFFD, as in every decoded record
            except ValueError:
                raise RecordError("missing_messages", "`messages` is a string that is not a JSON list") from None
        issue, steps = chat_steps(messages)
        found_diff = last_diff(steps)
        instance_id = str(obj.get("instance_id") or obj.get("id") or "")
        if not instance_id:
            raise RecordError("missing_id", "row has neither `instance_id` nor `id`")
        repo, commit = parse_instance_id(instance_id)
        patch = obj.get("patch") or obj.get("model_patch") or found_diff
        resolved = obj.get("resolved")
        return Trajectory(
            id=instance_id,
            format=self.name,
            source=location,
            repo=str(obj.get("repo") or repo),
            base_commit=str(obj.get("base_commit") or commit),
            issue=issue or str(obj.get("problem_statement") or ""),
            steps=steps,
            patch=patch if isinstance(patch, str) else "",
            outcome=Outcome(resolved=resolved if isinstance(resolved, bool) else None, exit_status=obj.get("exit_status")),
            model=str(obj.get("model") or obj.get("model_name") or ""),
        )
