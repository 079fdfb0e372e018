"""Reward functions with TRL's signature: `(prompts, completions, **kwargs) -> list[float | None]`.

`kwargs` carries the dataset columns, one value per completion (`answer` is required). A
completion is a string, or a list of chat messages (TRL's conversational format) whose last
assistant message is scored. `None` means "this function does not score this row" (TRL then
ignores it in the group statistics).

`REWARDS` is the registry; `routed_reward(default)` lets one run mix row kinds (da-rl mixes task
rows and selection rows): each row is scored by the reward named in its `reward_fn` column, or by
`default` when that column is absent or null.
"""

from __future__ import annotations

import math
import re
import string
from typing import Any, Callable

from ctxdata.errors import ConfigError

RewardFn = Callable[..., list]


def completion_text(completion: Any) -> str:
    """The text of a completion: a string, or the content of its last message."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion:
        content = completion[-1].get("content", "") if isinstance(completion[-1], dict) else completion[-1]
        if isinstance(content, list):  # structured content: join the text parts
            return "".join(p.get("text", "") for p in content if isinstance(p, dict))
        return str(content)
    return ""


def normalize_text(text: str) -> str:
    """Lowercase, strip punctuation and articles, collapse whitespace (SQuAD-style normalisation)."""
    text = text.lower().translate(str.maketrans("", "", string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def _answers(kwargs: dict[str, Any], n: int) -> list[Any]:
    answers = kwargs.get("answer")
    if answers is None:
        raise ConfigError("the reward functions need an `answer` column in the task data")
    if len(answers) != n:
        raise ValueError(f"got {n} completions but {len(answers)} answers")
    return list(answers)


def exact_match(prompts, completions, **kwargs) -> list[float | None]:
    """1.0 when the stripped completion equals the stripped answer."""
    answers = _answers(kwargs, len(completions))
    return [None if a is None else float(completion_text(c).strip() == str(a).strip()) for c, a in zip(completions, answers)]


def normalized_contains(prompts, completions, **kwargs) -> list[float | None]:
    """1.0 when the normalised answer occurs in the normalised completion (case/punctuation/articles ignored)."""
    answers = _answers(kwargs, len(completions))
    out: list[float | None] = []
    for c, a in zip(completions, answers):
        target = normalize_text(str(a)) if a is not None else ""
        out.append(None if not target else float(f" {target} " in f" {normalize_text(completion_text(c))} "))
    return out


_LETTER = re.compile(r"\b([A-Z])\b")


def first_letter(text: str) -> str | None:
    """The first standalone capital letter (`A`, `(B)`, `Answer: A`), or None."""
    match = _LETTER.search(text)
    return match.group(1) if match else None


def multiple_choice(prompts, completions, **kwargs) -> list[float | None]:
    """1.0 when the first standalone capital letter of the completion is the answer letter."""
    answers = _answers(kwargs, len(completions))
    return [None if a is None else float(first_letter(completion_text(c)) == str(a).strip().upper()) for c, a in zip(completions, answers)]


_NUMBER = re.compile(r"[-+]?(?:\d+(?:,\d{3})*(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")


def parse_number(text: str) -> float | None:
    """The last number in `text` (thousands separators allowed), or None."""
    found = _NUMBER.findall(text)
    if not found:
        return None
    try:
        return float(found[-1].replace(",", ""))
    except ValueError:
        return None


def numeric(prompts, completions, tolerance: float = 1e-6, **kwargs) -> list[float | None]:
    """1.0 when the last number of the completion is within `tolerance` (relative, or absolute near 0) of the answer."""
    answers = _answers(kwargs, len(completions))
    out: list[float | None] = []
    for c, a in zip(completions, answers):
        target = parse_number(str(a)) if a is not None else None
        if target is None:
            out.append(None)
            continue
        got = parse_number(completion_text(c))
        out.append(float(got is not None and math.isclose(got, target, rel_tol=tolerance, abs_tol=tolerance)))
    return out


REWARDS: dict[str, RewardFn] = {
    "exact_match": exact_match,
    "normalized_contains": normalized_contains,
    "multiple_choice": multiple_choice,
    "numeric": numeric,
}


def get_reward(name: str) -> RewardFn:
    if name not in REWARDS:
        raise ConfigError(f"unknown reward {name!r}; choose one of: {', '.join(REWARDS)}")
    return REWARDS[name]


def routed_reward(default: str) -> RewardFn:
    """A reward that scores each row with REWARDS[row's `reward_fn`] (or `default` when absent/null)."""
    get_reward(default)

    def reward(prompts, completions, **kwargs) -> list[float | None]:
        names = kwargs.get("reward_fn") or [None] * len(completions)
        out: list[float | None] = [None] * len(completions)
        for name in set(n or default for n in names):
            rows = [i for i, n in enumerate(names) if (n or default) == name]
            sub = {k: [v[i] for i in rows] for k, v in kwargs.items() if isinstance(v, list) and len(v) == len(completions)}
            scores = get_reward(name)([prompts[i] for i in rows], [completions[i] for i in rows], **sub)
            for i, s in zip(rows, scores):
                out[i] = s
        return out

    reward.__name__ = f"reward_{default}"
    return reward
