"""Reward functions: TRL signature, string and message completions, None for unscorable rows."""

import pytest

from ctxdata.errors import ConfigError
from ctxdata.train.rewards import REWARDS, get_reward, routed_reward


def test_exact_match_and_messages():
    f = REWARDS["exact_match"]
    comps = [" 42 ", [{"role": "assistant", "content": "42"}], "41"]
    assert f(["p"] * 3, comps, answer=["42", "42", "42"]) == [1.0, 1.0, 0.0]


def test_normalized_contains_ignores_case_punctuation_articles():
    f = REWARDS["normalized_contains"]
    out = f(["p"] * 4, ["The answer is: Red.", "reddish", "it is the RED square", "x"], answer=["red", "red", "red square", ""])
    assert out == [1.0, 0.0, 1.0, None]


def test_multiple_choice_letter():
    f = REWARDS["multiple_choice"]
    comps = ["A", " (B) because", "Answer: B", "I think so", [{"role": "assistant", "content": [{"type": "text", "text": "B"}]}]]
    assert f(["p"] * 5, comps, answer=["A", "A", "B", "A", "b"]) == [1.0, 0.0, 1.0, 0.0, 1.0]


def test_numeric_tolerance_and_unparseable_answer():
    f = REWARDS["numeric"]
    out = f(["p"] * 4, ["so 1,234.0", "about 3.1416", "none", "7"], answer=["1234", "3.14159", "5", "n/a"], tolerance=1e-3)
    assert out == [1.0, 1.0, 0.0, None]


def test_missing_answer_and_unknown_reward():
    with pytest.raises(ConfigError, match="answer"):
        REWARDS["exact_match"](["p"], ["x"])
    with pytest.raises(ConfigError, match="exact_match"):
        get_reward("bleu")


def test_routed_reward_mixes_row_kinds():
    f = routed_reward("normalized_contains")
    out = f(["p"] * 3, ["A", "red", "B"], answer=["A", "red", "A"], reward_fn=["multiple_choice", None, "multiple_choice"])
    assert out == [1.0, 1.0, 0.0]
