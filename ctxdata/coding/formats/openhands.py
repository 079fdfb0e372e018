"""OpenHands event streams: a JSON list of events (one trajectory), or an evaluation `output.jsonl`
row `{instance_id, instruction, history: [events], test_result: {git_patch}, report?, metadata}`.

Agent action events (`run`, `edit`, `read`, `run_ipython`, `browse`, `think`, `message`, `finish`)
become steps; an observation event is attached to the step whose action `id` equals its `cause`.
Old-style histories of `[action, observation]` pairs are accepted too.
"""

from __future__ import annotations

import os
from typing import Any

from ctxdata.coding.formats._text import RecordError, parse_instance_id
from ctxdata.coding.trajectory import Outcome, Step, Trajectory

_SKIP_ACTIONS = {"system", "recall", "change_agent_state", "null"}


def _is_event(e: Any) -> bool:
    return isinstance(e, dict) and ("action" in e or "observation" in e) and "source" in e


class OpenHandsReader:
    name = "openhands"
    many_per_list = False  # a JSON list of events is ONE trajectory

    def matches(self, obj: Any) -> bool:
        if isinstance(obj, list):
            return bool(obj) and _is_event(obj[0])
        return isinstance(obj, dict) and isinstance(obj.get("history"), list) and ("instance_id" in obj or "instruction" in obj)

    def parse(self, obj: Any, location: str, path: str) -> Trajectory:
        row = obj if isinstance(obj, dict) else {}
        events = obj if isinstance(obj, list) else row.get("history")
        if not isinstance(events, list):
            raise RecordError("missing_events", "OpenHands record has no event list (`history`)")
        events = _flatten_pairs(events)
        issue, steps, model, finished = _steps(events)
        instance_id = str(row.get("instance_id") or os.path.splitext(os.path.basename(path))[0])
        repo, commit = parse_instance_id(instance_id)
        test_result = row.get("test_result") if isinstance(row.get("test_result"), dict) else {}
        report = row.get("report") if isinstance(row.get("report"), dict) else {}
        resolved = report.get("resolved", row.get("resolved"))
        metadata = row.get("metadata") if isinstance(row.get("metadata"), dict) else {}
        llm = metadata.get("llm_config") if isinstance(metadata.get("llm_config"), dict) else {}
        instance = row.get("instance") if isinstance(row.get("instance"), dict) else {}
        return Trajectory(
            id=instance_id,
            format=self.name,
            source=location,
            repo=str(instance.get("repo") or repo),
            base_commit=str(instance.get("base_commit") or commit),
            issue=str(instance.get("problem_statement") or row.get("instruction") or issue),
            steps=steps,
            patch=str(test_result.get("git_patch") or ""),
            outcome=Outcome(resolved=resolved if isinstance(resolved, bool) else None, exit_status=_exit_status(finished, row)),
            model=str(llm.get("model") or metadata.get("model_name") or model),
        )


def _exit_status(finished: bool, row: dict) -> str | None:
    if finished:
        return "finish"
    return "error" if row.get("error") else None


def _flatten_pairs(events: list[Any]) -> list[Any]:
    if events and isinstance(events[0], (list, tuple)):
        return [e for pair in events for e in pair if isinstance(e, dict)]
    return events


def _steps(events: list[Any]) -> tuple[str, list[Step], str, bool]:
    issue, model, finished = "", "", False
    steps: list[Step] = []
    by_id: dict[Any, Step] = {}
    for i, e in enumerate(events):
        if not isinstance(e, dict):
            raise RecordError("bad_event", f"event {i} is a {type(e).__name__}, expected an object")
        args = e.get("args") if isinstance(e.get("args"), dict) else {}
        if "action" in e:
            kind = e["action"]
            if e.get("source") == "user":
                if kind == "message" and not issue:
                    issue = str(args.get("content") or e.get("message") or "")
                continue
            if kind in _SKIP_ACTIONS:
                continue
            step = Step(thought=_thought(kind, args, e), action=_action_text(kind, args))
            finished = finished or kind == "finish"
            model = model or _model_of(e)
            steps.append(step)
            by_id[e.get("id")] = step
        elif "observation" in e:
            step = by_id.get(e.get("cause"))
            if step is None:
                continue  # observations of user/system actions (e.g. the initial recall)
            step.observation = str(e.get("content") or "")
            extras = e.get("extras") if isinstance(e.get("extras"), dict) else {}
            meta = extras.get("metadata") if isinstance(extras.get("metadata"), dict) else {}
            code = meta.get("exit_code", extras.get("exit_code"))
            if isinstance(code, int) and code >= 0:
                step.returncode = code
    return issue, steps, model, finished


def _thought(kind: str, args: dict, event: dict) -> str:
    if kind in ("message", "finish"):
        return str(args.get("thought") or args.get("final_thought") or args.get("content") or event.get("message") or "")
    return str(args.get("thought") or "")


def _action_text(kind: str, args: dict) -> str:
    if kind == "run":
        return str(args.get("command") or "")
    if kind == "run_ipython":
        return str(args.get("code") or "")
    if kind in ("edit", "read"):
        command = args.get("command") or ("view" if kind == "read" else "edit")
        return f"{command} {args.get('path', '')}".strip()
    if kind == "browse":
        return f"browse {args.get('url', '')}"
    if kind == "finish":
        return "finish"
    return ""


def _model_of(event: dict) -> str:
    meta = event.get("tool_call_metadata")
    if isinstance(meta, dict) and isinstance(meta.get("model_response"), dict):
        return str(meta["model_response"].get("model") or "")
    return ""
