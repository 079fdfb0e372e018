"""Which context a completion chose: the one parser every shipped scorer embeds.

The export copies this module's code (below the marker) into each scorer file it writes, so the
written scorers need nothing but the standard library in the trainer's environment.
"""

# --- scorer code starts here ---
import re

_THINK = re.compile(r"<think>.*?(?:</think>|$)", re.DOTALL | re.IGNORECASE)
_TAGGED = (re.compile(r"<answer>(.*?)</answer>", re.DOTALL | re.IGNORECASE), re.compile(r"\\boxed\{([^{}]*)\}"))
_NAMED = re.compile(r"(?<![A-Za-z0-9])context\s*:?\s*([AB])(?![A-Za-z0-9])", re.IGNORECASE)
_LETTER = re.compile(r"(?<![A-Za-z0-9])([AB])(?![A-Za-z0-9])")


def chosen_letter(text):
    """The context letter a completion chose ("A" or "B"), or None when it names neither.

    Accepted: "A", " A", "Context A", "<answer>A</answer>", "\\boxed{A}", "(B)"; a <think> block is
    ignored, an explicit <answer> or \\boxed{} wins over letters in the surrounding prose, and
    "Context B" wins over a bare article "A" before it.
    """
    text = _THINK.sub(" ", str(text or ""))
    for pattern in _TAGGED:
        found = pattern.findall(text)
        if found:
            text = found[-1]
            break
    for pattern in (_NAMED, _LETTER):
        match = pattern.search(text)
        if match:
            return match.group(1).upper()
    return None


def letter_score(completion, ground_truth):
    """1.0 when the completion chose the ground-truth letter, else 0.0."""
    return float(chosen_letter(completion) == str(ground_truth).strip().upper())
