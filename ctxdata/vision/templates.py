"""Edit instructions and the EXPECTED NEW ANSWER, per question type (or from an instructions file).

An edit is only useful when we know what the edited image now answers. Each template picks an
operation the editors understand (`recolor`, `remove`, `duplicate`, `text`, `add`), the
instruction text a diffusion editor is prompted with, and the new answer:

    color     "What colour is the car?" red      -> recolor to blue          -> "blue"
    count     "How many coins?" 3                -> duplicate one coin        -> "4"
    presence  "Is there a cup?" yes              -> remove the cup            -> "no"
    yesno     same as presence (a yes whose region can be removed)
    text      "What number is shown?" 7          -> redraw the text           -> "8"

`--instructions FILE.jsonl` overrides the templates per (image, question):
    {"image": "a.jpg", "question": "...", "instruction": "make the mug green", "new_answer": "green",
     "op": "recolor", "params": {"target": "green"}}        # op/params optional
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ctxdata.errors import CtxdataError

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30), "green": (40, 170, 60), "blue": (40, 70, 220), "yellow": (240, 210, 40),
    "orange": (245, 140, 30), "purple": (140, 60, 180), "pink": (240, 120, 180), "cyan": (40, 200, 220),
    "white": (245, 245, 245), "black": (20, 20, 20), "gray": (128, 128, 128), "brown": (130, 80, 40),
}
COLOR_ALIASES = {"grey": "gray", "colour": "color"}
NUMBER_WORDS = {w: i for i, w in enumerate("zero one two three four five six seven eight nine ten".split())}
QUESTION_TYPES = ("color", "count", "presence", "yesno", "text", "other")
TEXT_WORDS = ("STOP", "OPEN", "EXIT", "CAFE", "SALE", "HOTEL", "PARK", "BANK")


@dataclass(frozen=True)
class EditPlan:
    """What to change and what the edited image will answer."""

    op: str  # recolor | remove | duplicate | text | add | procedural ops (see scene.py)
    instruction: str  # natural-language instruction (the diffusion editors' prompt)
    new_answer: str  # the answer the edited image supports
    params: dict[str, Any] = field(default_factory=dict)  # op arguments, e.g. {"target": "blue"}


def normalize_answer(text: str) -> str:
    """Lowercase, trim punctuation, number words -> digits, grey -> gray (for answer comparison)."""
    t = re.sub(r"[^\w\s-]", "", str(text).lower()).strip()
    t = re.sub(r"^(a|an|the)\s+", "", t)
    t = COLOR_ALIASES.get(t, t)
    return str(NUMBER_WORDS[t]) if t in NUMBER_WORDS else t


def parse_count(answer: str) -> int | None:
    a = normalize_answer(answer)
    return int(a) if a.isdigit() else None


def infer_type(question: str, answer: str) -> str:
    """Guess the question type from its wording and answer (a pool's `type` field wins)."""
    q, a = question.lower(), normalize_answer(answer)
    if re.search(r"\bcolou?r\b", q) and a in COLORS:
        return "color"
    if q.startswith("how many") and a.isdigit():
        return "count"
    if re.match(r"(is|are) there\b", q) and a in ("yes", "no"):
        return "presence"
    if re.search(r"\b(text|word|number|digit|written|say|read)\b", q):
        return "text"
    if a in ("yes", "no"):
        return "yesno"
    return "other"


def subject_of(question: str) -> str:
    """The object a question is about ("What colour is the red car?" -> "red car"), for instructions."""
    q = question.strip().rstrip("?").lower()
    for pattern in (r"colou?r (?:is|are|of) (?:the )?(.+)", r"how many (.+?)(?: are| is| can|$)", r"(?:is|are) there (?:a |an |any )?(.+?)(?: in| on|$)"):
        m = re.search(pattern, q)
        if m:
            return m.group(1).strip()
    return "object"


def plan_from_template(qtype: str, question: str, answer: str, rng: random.Random) -> EditPlan | None:
    """The edit for one QA row, or None when its type has no template (reject `no_edit_template`)."""
    subject = subject_of(question)
    a = normalize_answer(answer)
    if qtype == "color" and a in COLORS:
        target = rng.choice([c for c in COLORS if c != a and c not in ("white", "black", "gray", "brown")])
        return EditPlan("recolor", f"change the colour of the {subject} to {target}", target, {"target": target, "subject": subject})
    if qtype == "count" and parse_count(answer) is not None:
        n = parse_count(answer)
        if n >= 2 and rng.random() < 0.5:
            return EditPlan("remove", f"remove one {subject}", str(n - 1), {"subject": subject})
        return EditPlan("duplicate", f"add one more {subject}", str(n + 1), {"subject": subject})
    if qtype in ("presence", "yesno") and a == "yes":
        return EditPlan("remove", f"remove the {subject}", "no", {"subject": subject})
    if qtype == "text":
        if a.isdigit():
            new = str((int(a) + rng.randint(1, 8)) % (10 ** max(1, len(a))))
        else:
            new = rng.choice([w for w in TEXT_WORDS if w.lower() != a])
        return EditPlan("text", f"change the text {answer!r} to {new!r}", new, {"text": new, "subject": subject})
    return None


def load_instructions(path: str | Path) -> dict[tuple[str, str], EditPlan]:
    """(image id, normalised question) -> EditPlan, from an instructions JSONL file."""
    from ctxdata.vision.mine import normalize_question

    path = Path(path)
    if not path.is_file():
        raise CtxdataError(f"--instructions file {path} does not exist")
    plans: dict[tuple[str, str], EditPlan] = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            key = (str(row["image"]), normalize_question(row["question"]))
            plans[key] = EditPlan(str(row.get("op", "instruction")), str(row["instruction"]), str(row["new_answer"]), dict(row.get("params") or {}))
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise CtxdataError(f"{path}:{lineno}: bad instruction line ({exc}); need image, question, instruction, new_answer") from None
    return plans
