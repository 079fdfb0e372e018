"""Small string helpers shared by the format readers: fast `find`-based splits, no regex over big text.

Observations can be hundreds of KB (file dumps, test logs), so everything here is a bounded
`str.find` / slice; regexes only ever run over short ids.
"""

from __future__ import annotations

import re
from typing import Any


class RecordError(Exception):
    """A bad record: becomes a reject with `reason` (a short snake_case code) and `detail`."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


# SWE-smith: owner__repo.commit8[.bugtype__hash]; repo names may contain dots, so anchor on 8 hex.
_SWE_SMITH_ID = re.compile(r"^([A-Za-z0-9-]+)__(.+?)\.([0-9a-f]{8})(?:\.(.+))?$")
# SWE-bench / nebius: owner__repo-1234 (nebius adds a run suffix: owner__repo-1234_17).
_SWE_BENCH_ID = re.compile(r"^([A-Za-z0-9-]+)__(.+?)-\d+(?:_\d+)?$")


def parse_instance_id(instance_id: str) -> tuple[str, str]:
    """`(repo, base_commit)` from a task instance id; ("", "") when the id has no known shape."""
    m = _SWE_SMITH_ID.match(instance_id)
    if m:
        return f"{m.group(1)}/{m.group(2)}", m.group(3)
    m = _SWE_BENCH_ID.match(instance_id)
    if m:
        return f"{m.group(1)}/{m.group(2)}", ""
    return "", ""


def content_text(content: Any) -> str:
    """Chat `content` as text: a str, or OpenAI-style parts `[{type: text, text}]` joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
    return "" if content is None else str(content)


def split_thought_action(text: str) -> tuple[str, str]:
    """Split an assistant turn into (thought, the command that was executed).

    mini-swe-agent runs the turn's one ```bash block and nothing else: a ```python block before
    it is part of the thought (code the agent quotes or plans), and a turn with several ```bash
    blocks runs none of them (the agent is told "EXACTLY ONE action"). So the command is the only
    ```bash block; when a turn has no ```bash block at all, the only bare, ```sh or ```shell block
    (other chat agents fence commands so). The thought is the rest of the turn, the text before
    and after the command block. No single command block -> (the whole turn, "").
    """
    block = _command_block(text, "```bash")
    if block is None and "```bash" not in text:
        block = _command_block(text, "```sh") or _command_block(text, "```shell") or _command_block(text, "```")
    if block is None:
        return _strip_thought(text), ""
    start, body, close, end = block
    thought = text[:start].rstrip() + ("\n\n" + text[end:].strip() if text[end:].strip() else "")
    return _strip_thought(thought), text[body:close].strip("\n")


def _command_block(text: str, opener: str) -> tuple[int, int, int, int] | None:
    """(start, body start, body end, end) of the only block opened by `opener` on its own line, or None.

    The opener must be followed by nothing but spaces up to the end of its line (so ```bash
    matches ```bash and not ```bashrc, and a bare ``` is not ```python); None when there is no
    such block or more than one.
    """
    found, i = None, text.find(opener)
    while i != -1:
        newline = text.find("\n", i)
        if newline != -1 and not text[i + len(opener) : newline].strip():
            close = text.find("```", newline + 1)
            close = len(text) if close == -1 else close
            if found is not None:
                return None  # several command blocks: the agent ran none of them
            found = (i, newline + 1, close, min(len(text), close + 3))
            i = text.find(opener, found[3])
        else:
            close = text.find("```", i + 3)  # skip the whole block this opener starts
            i = -1 if close == -1 else text.find(opener, close + 3)
    return found


def split_last_fence(text: str) -> tuple[str, str]:
    """SWE-agent style: the command is the LAST fenced block (thought may quote code earlier)."""
    end = text.rfind("```")
    if end < 0:
        return text.strip(), ""
    start = text.rfind("```", 0, end)
    if start < 0:
        return text.strip(), ""
    body = text.find("\n", start, end)
    command = text[body + 1 : end] if body >= 0 else ""
    return text[:start].strip(), command.strip("\n")


def _strip_thought(text: str) -> str:
    text = text.strip()
    return text[8:].lstrip() if text.startswith("THOUGHT:") else text


def parse_observation(text: str) -> tuple[str, int | None]:
    """mini-swe-agent observation `<returncode>N</returncode>\\n<output>\\n...\\n</output>` -> (output, N)."""
    if not text.startswith("<returncode>"):
        return text, None
    close = text.find("</returncode>", 12, 40)
    if close < 0:
        return text, None
    try:
        returncode: int | None = int(text[12:close])
    except ValueError:
        returncode = None
    rest = text[close + 13 :].lstrip("\n")
    if rest.startswith("<output>") and rest.endswith("</output>"):
        rest = rest[8:-9].strip("\n")
    return rest, returncode


def extract_issue(text: str) -> str:
    """The issue inside a task prompt: `<pr_description>` (mini-swe-agent) or `ISSUE:` (SWE-agent)."""
    start = text.find("<pr_description>")
    if start >= 0:
        end = text.find("</pr_description>", start)
        body = text[start + 16 : end if end >= 0 else len(text)].strip()
        prefix = "Consider the following PR description:"
        return body[len(prefix) :].strip() if body.startswith(prefix) else body
    start = text.find("ISSUE:\n")
    if start >= 0:
        end = text.find("\nINSTRUCTIONS:", start)
        return text[start + 7 : end if end >= 0 else len(text)].strip()
    return text.strip()


def diff_in_output(text: str) -> str:
    """The unified diff inside a command's output (after any `echo` banner), or ""."""
    start = text.find("diff --git ")
    if start < 0:
        return ""
    return text[start:] if text.endswith("\n") else text[start:] + "\n"
