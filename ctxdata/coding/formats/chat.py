"""Steps from an OpenAI-style chat (`[{role, content}]`): mini-swe-agent and HF "messages" rows.

Roles: `system` is skipped; the first `user` turn is the task; every `assistant` turn is one step
(its thought and the one ```bash block that ran, see `split_thought_action`, or OpenAI
`tool_calls`); the `user`/`tool` turns after it are its observation
(`<returncode>N</returncode><output>..</output>` is unwrapped).
"""

from __future__ import annotations

import json
from typing import Any

from ctxdata._json import loads
from ctxdata.coding.formats._text import RecordError, content_text, extract_issue, parse_observation, split_thought_action
from ctxdata.coding.trajectory import Step


def chat_steps(messages: Any) -> tuple[str, list[Step]]:
    """`(issue, steps)` from a chat list; raises RecordError for a non-list or a non-dict message.

    This is the hot loop of reading (every message of every trajectory): splits are `str.find`s
    and slices, not regexes, to stay close to raw `json.loads` speed.
    """
    if type(messages) is not list:
        raise RecordError("missing_messages", f"`messages` is a {type(messages).__name__}, expected a list of chat turns")
    issue = ""
    steps: list[Step] = []
    append = steps.append
    last: Step | None = None
    seen_task = False
    for i, msg in enumerate(messages):
        if type(msg) is not dict:
            raise RecordError("bad_message", f"message {i} is a {type(msg).__name__}, expected an object with role/content")
        role = msg.get("role")
        text = msg.get("content")
        if type(text) is not str:
            text = content_text(text)
        if role == "assistant":
            thought, action = split_thought_action(text)
            if not action and "tool_calls" in msg:
                action = _tool_call_action(msg["tool_calls"])
            last = Step(thought, action, "", None)
            append(last)
        elif role == "user" or role == "tool":
            if last is None:
                if not seen_task:
                    issue, seen_task = extract_issue(text), True
            elif text[:12] == "<returncode>" and not last.observation and _fast_observation(last, text):
                pass
            else:
                _attach_observation(last, text)
    return issue, steps


def _fast_observation(step: Step, text: str) -> bool:
    """The common `<returncode>N</returncode>\n<output>\n...\n</output>` turn, without copies."""
    close = text.find("</returncode>", 12, 40)
    if close < 0:
        return False
    try:
        step.returncode = int(text[12:close])
    except ValueError:
        return False
    rest = text[close + 13 :]
    if rest[:10] == "\n<output>\n" and rest[-10:] == "\n</output>":
        step.observation = rest[10:-10].strip("\n")
    else:
        step.observation = parse_observation(text)[0]
    return True


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
                args = loads(args)  # lone surrogates become U+FFFD, as in every decoded record
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
