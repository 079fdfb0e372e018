"""Letter scoring for the selection prompt (the part of the loss module the probe needs).

NOTE: the `train` helper owns this module; these two functions are written under its names so
the probe can run before that branch is merged. On merge, the train branch's version wins.
"""

from __future__ import annotations

from typing import Any

LETTERS = ("A", "B")


def letter_token_ids(tokenizer: Any) -> dict[str, list[int]]:
    """Single-token ids of each letter's variants (" A" and "A"), e.g. {"A": [330, 32], "B": [...]}.

    A variant that encodes to several tokens is skipped; a letter with no single-token variant
    is an error, because its log-probability could not be read from one position.
    """
    ids: dict[str, list[int]] = {}
    for letter in LETTERS:
        variants = []
        for text in (f" {letter}", letter):
            enc = tokenizer.encode(text, add_special_tokens=False)
            if len(enc) == 1 and enc[0] not in variants:
                variants.append(enc[0])
        if not variants:
            raise ValueError(f"the tokenizer has no single-token encoding of {letter!r} or ' {letter}'")
        ids[letter] = variants
    return ids


def selection_logit_delta(logits_at_answer, correct_ids, wrong_ids):
    """Delta = max_v log p(correct variant v) - max_v log p(wrong variant v), one per row.

    logits_at_answer: [B, V] logits at the answer position; correct_ids, wrong_ids: [B, K] token
    ids (a letter's variants, K = variants per letter). Returns a [B] tensor; Delta > 0 means
    the model prefers the correct letter.
    """
    import torch

    logp = torch.log_softmax(logits_at_answer.float(), dim=-1)  # [B, V]
    correct = torch.as_tensor(correct_ids, device=logp.device)
    wrong = torch.as_tensor(wrong_ids, device=logp.device)
    assert correct.shape[0] == logp.shape[0] == wrong.shape[0], "one row of ids per row of logits"
    return logp.gather(1, correct).max(dim=1).values - logp.gather(1, wrong).max(dim=1).values
