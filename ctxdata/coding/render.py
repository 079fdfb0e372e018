"""Render a trajectory as compact text under a token budget.

Format (the HTML viewer and the tests rely on it):

    ## Step 1
    THOUGHT: ...
    $ <action>
    <observation>
    (exit 0)

Actions are kept whole when possible (they are the agent's decisions); thoughts are shortened;
long observations are cut to head + tail, at line boundaries, with an elision marker. When even
that exceeds the budget, middle steps are elided, keeping the first and last ones. Tokens are
estimated as characters / `CHARS_PER_TOKEN` so rendering needs no tokenizer; given `count_tokens`
(a real tokenizer's count, `ctxdata.tokens.TokenCounter.count`), the character budget is shrunk
until the real count is within `max_tokens`.
"""

from __future__ import annotations

from typing import Callable

from ctxdata.coding.trajectory import Step, Trajectory

CHARS_PER_TOKEN = 4
MAX_THOUGHT_CHARS = 400
MAX_ACTION_CHARS = 600


def _clip(text: str, limit: int) -> str:
    """Head and tail of `text`, at most `limit` characters, with a marker saying how much was cut.

    Cuts fall on line boundaries when one lies in the outer half of the head or tail, so no line is
    cut in two: the patch masks, applied to the rendered text, then see whole lines, and a masked
    line cannot leave a fragment of the answer behind. A single line longer than that is cut as is.
    """
    text = text.strip("\n")
    if len(text) <= limit:
        return text
    if limit < 40:
        return f"[... {len(text)} chars elided ...]"
    head_len = limit * 2 // 3
    tail_len = limit - head_len
    newline = text.rfind("\n", 0, head_len + 1)
    head = newline if newline >= head_len // 2 else head_len  # the head ends before a newline
    start = len(text) - tail_len
    newline = text.find("\n", start - 1, start + tail_len // 2)
    if newline != -1:
        start = newline + 1  # the tail starts after a newline
    return f"{text[:head]}\n[... {start - head} chars elided ...]\n{text[start:]}"


def _step_frame(index: int, step: Step) -> tuple[str, str]:
    """What a rendered step holds besides its observation: the head (title, thought, action) and the exit line."""
    head = f"## Step {index}"
    if step.thought.strip():
        head += "\nTHOUGHT: " + _clip(step.thought, MAX_THOUGHT_CHARS)
    if step.action.strip():
        head += "\n$ " + _clip(step.action, MAX_ACTION_CHARS)
    return head, ("" if step.returncode is None else f"\n(exit {step.returncode})")


def _fair_share(lengths: list[int], budget: int) -> int:
    """The per-observation cap that spends `budget` best: short outputs stay whole (water-filling)."""
    remaining, pending = budget, sorted(n for n in lengths if n > 0)
    while pending:
        share = remaining // len(pending)
        if pending[0] > share:
            return share
        remaining -= pending.pop(0)
    return max(lengths, default=0)


def render_trajectory(traj: Trajectory, max_tokens: int = 4096, count_tokens: Callable[[str], int] | None = None) -> str:
    """The trajectory's steps as text of at most `max_tokens` tokens (~4 characters each without `count_tokens`)."""
    text = _render_chars(traj, max_tokens * CHARS_PER_TOKEN)
    if count_tokens is None:
        return text
    budget = len(text)
    for _ in range(8):  # code and logs run 2-3.5 characters per token, so the first estimate is often over
        n_tokens = count_tokens(text)
        if n_tokens <= max_tokens or budget <= 64:
            return text
        budget = int(budget * max_tokens / n_tokens * 0.97)
        text = _render_chars(traj, budget)
    return text


def _render_chars(traj: Trajectory, budget: int) -> str:
    """The trajectory's steps as text of at most `budget` characters."""
    steps = traj.steps
    if not steps:
        return ""
    frames = [_step_frame(i, s) for i, s in enumerate(steps, 1)]  # each step's frame is built once
    fixed = sum(len(head) + len(tail) + 1 for head, tail in frames)
    lengths = [len(s.observation.strip("\n")) for s in steps]
    # Each cut observation gains an elision marker line (~40 chars): reserve it up front.
    limit = _fair_share(lengths, max(0, budget - fixed - 40 * sum(1 for n in lengths if n)))
    rendered = [head + "\n" + _clip(s.observation, limit) + tail if s.observation.strip() else head + tail for (head, tail), s in zip(frames, steps)]
    text = "\n".join(rendered)
    if len(text) <= budget:
        return text
    # Too many steps for the budget: keep the first and last ones, elide the middle.
    head, tail = [], []
    used = 0
    left, right = 0, len(rendered) - 1
    while left <= right:
        for side in ("head", "tail"):
            if left > right:
                break
            piece = rendered[left] if side == "head" else rendered[right]
            if used + len(piece) + 1 > budget - 40:
                left = right + 1
                break
            used += len(piece) + 1
            if side == "head":
                head.append(piece)
                left += 1
            else:
                tail.insert(0, piece)
                right -= 1
    elided = len(rendered) - len(head) - len(tail)
    middle = [f"[... {elided} steps elided ...]"] if elided else []
    return "\n".join(head + middle + tail)


def estimate_tokens(text: str) -> int:
    return (len(text) + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN
