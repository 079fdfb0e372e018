"""Fit a pair's prompt under a token limit by trimming both contexts alike, or reject it with a reason.

The consumers drop (verl, SkyRL, EasyR1 with `filter_overlong_prompts`) or cut (EasyR1's
`truncation=right`, which would lose context B) a prompt over their `max_prompt_length`. An export
therefore never writes such a row: it caps both contexts at the same number of tokens (a context
shorter than the cap stays whole) and re-measures, or it rejects the row.

A cut keeps the head (2/3) and the tail (1/3) of a context with a marker between them; when the
two contexts share a prefix (near-identical traces) and their first difference would fall in the
cut, one window around that difference is kept instead, so the decisive line survives.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ctxdata.tokens import TokenCounter

MIN_CONTEXT_TOKENS = 32  # below this a context says nothing; the row is rejected instead
MAX_ROUNDS = 8


class RowRejected(Exception):
    """A pair that cannot become a row of this target; `reason` is the counted key."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


def marker(n_tokens: int) -> str:
    return f"\n[... {n_tokens} tokens trimmed by ctxdata export ...]\n"


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def cut_context(counter: TokenCounter, ids: list[int], cap: int, first_difference: int) -> str:
    """`ids` as text of about `cap` tokens (plus markers); unchanged when it already fits."""
    if len(ids) <= cap:
        return counter.decode(ids)
    head = cap * 2 // 3
    tail = cap - head
    if first_difference > 0 and head <= first_difference < len(ids) - tail:
        start = min(max(0, first_difference - cap // 4), len(ids) - cap)
        left = marker(start) if start else ""
        right = marker(len(ids) - start - cap) if start + cap < len(ids) else ""
        return left + counter.decode(ids[start : start + cap]) + right
    return counter.decode(ids[:head]) + marker(len(ids) - cap) + counter.decode(ids[len(ids) - tail :])


def _cap_removing(lengths: tuple[int, int], excess: int) -> int:
    """The largest common cap whose cuts remove at least `excess` tokens in total."""
    lo, hi = 0, max(lengths)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if sum(max(0, n - mid) for n in lengths) >= excess:
            lo = mid
        else:
            hi = mid - 1
    return lo


@dataclass
class Fitted:
    record: dict[str, Any]
    prompt_tokens: int
    trimmed_tokens: int  # tokens cut from the two contexts together (0 = whole)


def fit_pair(
    pair: dict[str, Any],
    make: Callable[[dict[str, Any]], dict[str, Any]],
    measure: Callable[[dict[str, Any], dict[str, Any]], int],
    counter: TokenCounter,
    limit: int | None,
) -> Fitted:
    """The row for `pair` within `limit` prompt tokens (as `measure` counts them), or RowRejected."""
    record = make(pair)
    n_tokens = measure(pair, record)
    if limit is None or n_tokens <= limit:
        return Fitted(record, n_tokens, 0)
    if pair["domain"] == "vision":
        raise RowRejected(
            "prompt over max_prompt_length (a vision prompt has no text context to trim)", f"{n_tokens} > {limit}"
        )
    a_ids, b_ids = counter.encode(pair["context_a_text"] or ""), counter.encode(pair["context_b_text"] or "")
    first_difference = _common_prefix(a_ids, b_ids)
    marker_cost = 2 * len(counter.encode(marker(10**6)))
    excess = n_tokens - limit + marker_cost
    for _ in range(MAX_ROUNDS):
        cap = _cap_removing((len(a_ids), len(b_ids)), excess)
        if cap < MIN_CONTEXT_TOKENS:
            raise RowRejected(
                "prompt over max_prompt_length even with both contexts trimmed",
                f"{n_tokens} tokens; under {limit} each context would keep < {MIN_CONTEXT_TOKENS} tokens",
            )
        a_text, b_text = (cut_context(counter, ids, cap, first_difference) for ids in (a_ids, b_ids))
        if a_text == b_text:
            raise RowRejected(
                "trimming to max_prompt_length removed the difference between the contexts", f"cap {cap} tokens"
            )
        trimmed = {**pair, "context_a_text": a_text, "context_b_text": b_text}
        record = make(trimmed)
        fitted_tokens = measure(trimmed, record)
        if fitted_tokens <= limit:
            removed = sum(max(0, n - cap) for n in (len(a_ids), len(b_ids)))
            return Fitted(record, fitted_tokens, removed)
        excess += fitted_tokens - limit  # re-tokenising at the cut points can cost a few tokens
    raise RowRejected(
        "prompt over max_prompt_length even with both contexts trimmed",
        f"still over {limit} after {MAX_ROUNDS} rounds",
    )
