"""Steps from an OpenAI-style chat (`[{role, content}]`): mini-swe-agent and HF "messages" rows.

Roles: `system` is skipped; the first `user` turn is the task; every `assistant` turn is one step
(THOUGHT + one ```bash block, or OpenAI `tool_calls`); the `user`/`tool` turns after it are its
observation (`<returncode>N</returncode><output>..</output>` is unwrapped).
"""

from __future__ import annotations

import json
from typing import Any

from ctxdata.coding.formats._text import RecordError, content_text, extract_issue, parse_observation, split_thought_action
from ctxdata.coding.trajectory import Step


def chat_steps(messages: Any) -> tuple[str, list[Step]]:
    """`(issue, steps)` from a chat list; raises RecordError for a non-list or a non-dict message."""
    if not isinstance(messages, list):
        raise RecordError("missing_messages", f"`messages` is a {type(messages).__name__}, expected a list of chat turns")
    issue = ""
    steps: list[Step] = []
    seen_task = False
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise RecordError("bad_message", f"message {i} is a {type(msg).__name__}, expected an object with role/content")
        role = msg.get("role")
        if role == "assistant":
            thought, action = split_thought_action(content_text(msg.get("content")))
            if not action and msg.get("tool_calls"):
                action = _tool_call_action(msg["tool_calls"])
            steps.append(Step(thought=thought, action=action))
        elif role in ("user", "tool"):
            text = content_text(msg.get("content"))
            if not seen_task and not steps:
                issue, seen_task = extract_issue(text), True
            elif steps:
                _attach_observation(steps[-1], text)
    return issue, steps


def _attach_observation(step: Step, text: str) -> None:
    output, returncode = parse_observation(text)
    if step.observation:  # a second observation turn (e.g. a format warning): keep both
        step.observation += "\n" + output
    else:
        step.observation = output
    if returncode is not None:
        step.returncode = returncode


def _tool_call_action(tool_calls: Any) -> str:
    """An OpenAI tool call as a command line: `command` argument if present, else `name {json}`."""
    parts = []
    for call in tool_calls if isinstance(tool_calls, list) else []:
        fn = call.get("function", {}) if isinstance(call, dict) else {}
        args = fn.get("arguments", "")
        if isinstance(args, str):
            try:
                args = json.loads(args)
            except ValueError:
                pass
        if isinstance(args, dict) and isinstance(args.get("command"), str) and fn.get("name") in ("bash", "execute_bash", "run", None):
            parts.append(args["command"])
        else:
            parts.append(f"{fn.get('name', 'tool')} {json.dumps(args, ensure_ascii=False) if not isinstance(args, str) else args}")
    return "\n".join(parts)


def last_diff(steps: list[Step]) -> str:
    """The patch of a chat trajectory: the output of its last `git diff` command, or ""."""
    from ctxdata.coding.formats._text import diff_in_output

    for step in reversed(steps):
        if "git diff" in step.action:
            found = diff_in_output(step.observation)
            if found:
                return found
    return ""
