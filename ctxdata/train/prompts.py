"""The contrastive-context selection prompt, shared by the trainer, the probe and the exports.

The model sees the query, the answer and contexts A and B, and must output the letter of the
context that supports the answer ("Output A or B directly."), as in the ContextRL paper.
"""

from __future__ import annotations

from typing import Any

INSTRUCTION = "Which context supports the answer? Output A or B directly."
SYSTEM = "You compare two near-identical contexts and pick the one that supports the given answer."
IMAGE_TOKEN = "<image>"


def _text_block(row: dict[str, Any]) -> tuple[str, str]:
    head = f"Question:\n{row['query']}\n\nAnswer:\n{row['answer']}\n\n"
    return head, INSTRUCTION


def selection_text(row: dict[str, Any], image_token: str = IMAGE_TOKEN) -> str:
    """The prompt as one string; vision contexts appear as `image_token` placeholders (A first)."""
    head, tail = _text_block(row)
    if row["domain"] == "vision":
        body = f"Context A: {image_token}\nContext B: {image_token}\n\n"
    else:
        body = f"Context A:\n{row['context_a_text']}\n\nContext B:\n{row['context_b_text']}\n\n"
    return head + body + tail


def selection_messages(row: dict[str, Any], system: bool = False) -> list[dict[str, Any]]:
    """Chat messages; vision rows use structured content with two `{"type": "image"}` parts."""
    head, tail = _text_block(row)
    if row["domain"] == "vision":
        content: Any = [
            {"type": "text", "text": head + "Context A:"},
            {"type": "image"},
            {"type": "text", "text": "Context B:"},
            {"type": "image"},
            {"type": "text", "text": tail},
        ]
    else:
        content = selection_text(row)
    messages = [{"role": "system", "content": SYSTEM}] if system else []
    return messages + [{"role": "user", "content": content}]


def wrong_label(label: str) -> str:
    return "B" if label == "A" else "A"
