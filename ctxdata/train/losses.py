"""The losses, as pure torch functions shared by the native trainer and the TRL backend.

Notation: B prompts-or-pairs, G = num_generations, N = B*G completions, T completion tokens, V vocab.

Context-awareness (ContextRL) loss, a logit-level term added to GRPO (not a reward):

    Delta_i = max_v log p(correct_v | prompt_i) - max_w log p(wrong_w | prompt_i)
    L_CA    = mean_i  -log sigmoid(clip(Delta_i, -c, c))

where v, w range over the token variants of each letter (" A" and "A": the first token of each
variant) and p is the next-token distribution at the answer position of the selection prompt.
The clamp makes the gradient exactly zero once |Delta| > c (saturated pairs stop pulling). That is
the default (`ca_loss="paper"`); `ca_loss="upper-clip"` is -log sigmoid(min(Delta, c)), which keeps
the stop for confidently right pairs but lets confidently wrong ones (Delta < -c) keep pulling.

GRPO (TRL names):

    A_j     = (r_j - mean_group(r)) / (std_group(r) + 1e-4)        scale_rewards="group"
    rho_jt  = exp(logp_new_jt - logp_old_jt)
    L_clip  = -min(rho * A, clip(rho, 1 - epsilon, 1 + epsilon_high) * A)
    KL_jt   = exp(ref - new) - (ref - new) - 1                         (k3 estimator, >= 0)
    L_GRPO  = token_mean(L_clip + beta * rho * KL)  over completion tokens of the batch

The factor rho on the KL term (`kl_bias_correction`, TRL's `use_bias_correction_kl`, default on in
TRL 1.16) makes the KL gradient the unbiased reverse-KL gradient (DeepSeek-V3.2); it equals 1 in
value on-policy but still contributes gradient. Set it off for the classic k3 penalty.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F

from ctxdata.train.config import CA_LOSSES

ADV_EPS = 1e-4  # TRL's denominator guard in the advantage normalisation
SCALE_REWARDS = ("group", "batch", "none")
LOSS_TYPES = ("token_mean", "sequence_mean")


def letter_token_ids(tokenizer: Any, letters: Sequence[str] = ("A", "B")) -> dict[str, list[int]]:
    """For each letter, the first token id of each variant (" A", "A"), deduplicated, in that order.

    Raises ValueError when two letters share a first token (the delta would be meaningless).
    """
    ids: dict[str, list[int]] = {}
    for letter in letters:
        variants: list[int] = []
        for text in (f" {letter}", letter):
            toks = tokenizer.encode(text, add_special_tokens=False)
            if toks and toks[0] not in variants:
                variants.append(int(toks[0]))
        if not variants:
            raise ValueError(f"the tokenizer encodes letter {letter!r} to no tokens")
        ids[letter] = variants
    seen: dict[int, str] = {}
    for letter, variants in ids.items():
        for t in variants:
            if t in seen and seen[t] != letter:
                raise ValueError(f"letters {seen[t]!r} and {letter!r} share first token id {t}")
            seen[t] = letter
    return ids


def _variant_index(ids: Sequence[int] | Sequence[Sequence[int]], batch: int, device: torch.device) -> torch.Tensor:
    """(B, K) index of token variants; a flat list applies to every row; rows are padded by repetition."""
    rows = [list(ids)] * batch if ids and isinstance(ids[0], int) else [list(r) for r in ids]  # type: ignore[arg-type]
    assert len(rows) == batch, f"expected {batch} rows of token ids, got {len(rows)}"
    width = max(len(r) for r in rows)
    padded = [r + [r[0]] * (width - len(r)) for r in rows]  # repeating a variant leaves the max unchanged
    return torch.tensor(padded, dtype=torch.long, device=device)


def selection_logit_delta(logits_at_answer: torch.Tensor, correct_ids, wrong_ids) -> torch.Tensor:
    """Delta (B,) = max over correct variants of log p - max over wrong variants of log p.

    `logits_at_answer` is (B, V): the next-token logits after the selection prompt. `correct_ids` and
    `wrong_ids` are either one list of token ids for every row or one list per row (B lists).
    """
    assert logits_at_answer.dim() == 2, f"logits_at_answer must be (B, V), got {tuple(logits_at_answer.shape)}"
    batch = logits_at_answer.size(0)
    logp = F.log_softmax(logits_at_answer.float(), dim=-1)  # (B, V)
    right = logp.gather(1, _variant_index(correct_ids, batch, logp.device)).max(dim=1).values  # (B,)
    wrong = logp.gather(1, _variant_index(wrong_ids, batch, logp.device)).max(dim=1).values  # (B,)
    return right - wrong


def context_awareness_loss(delta: torch.Tensor, clip: float = 5.0, form: str = "paper") -> tuple[torch.Tensor, torch.Tensor]:
    """(loss_mean, per_item) for the named L_CA form (`CA_LOSSES`).

    paper:      per_item = -log sigmoid(clamp(delta, -clip, clip)) = softplus(-clamp(.)). torch.clamp
                passes no gradient outside [-clip, clip], so saturated items contribute zero gradient,
                including confidently WRONG items (delta < -clip): they are trapped.
    upper-clip: per_item = -log sigmoid(min(delta, clip)): confidently right items still stop
                (the paper's reason for the clip), a confidently wrong item keeps a gradient of ~1.
    """
    assert delta.dim() == 1, f"delta must be (B,), got {tuple(delta.shape)}"
    assert clip > 0, "clip must be positive"
    if form not in CA_LOSSES:
        raise ValueError(f"unknown L_CA form {form!r}; choose one of: {', '.join(CA_LOSSES)}")
    low = -clip if form == "paper" else None
    per_item = F.softplus(-torch.clamp(delta, low, clip))  # (B,), numerically stable -log sigmoid
    return per_item.mean(), per_item


def group_advantages(rewards: torch.Tensor, num_generations: int, scale_rewards: str = "group") -> torch.Tensor:
    """Advantages (N,) from rewards (N,) laid out group by group (G consecutive completions per prompt).

    A = r - mean_group(r), divided by (std + 1e-4) where std is the group's ("group") or the whole
    batch's ("batch") Bessel-corrected standard deviation; "none" leaves it unscaled (Dr. GRPO).
    NaN rewards (every reward function returned None) are ignored by the mean/std and get A = 0.
    """
    assert rewards.dim() == 1 and rewards.numel() % num_generations == 0, "rewards must be (B*G,)"
    if scale_rewards not in SCALE_REWARDS:
        raise ValueError(f"scale_rewards must be one of {SCALE_REWARDS}, got {scale_rewards!r}")
    grouped = rewards.view(-1, num_generations)  # (B, G)
    mean = torch.nanmean(grouped, dim=1, keepdim=True)  # (B, 1)
    adv = (grouped - mean).reshape(-1)  # (N,)
    if scale_rewards == "group":
        adv = adv / (_nanstd(grouped, dim=1).repeat_interleave(num_generations) + ADV_EPS)
    elif scale_rewards == "batch":
        adv = adv / (_nanstd(rewards.view(1, -1), dim=1) + ADV_EPS)
    return torch.nan_to_num(adv, nan=0.0)


def _nanstd(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Bessel-corrected std ignoring NaNs (as trl.trainer.utils.nanstd)."""
    mean = torch.nanmean(x, dim=dim, keepdim=True)
    count = (~torch.isnan(x)).sum(dim=dim)
    var = torch.nanmean((x - mean) ** 2, dim=dim) * count / (count - 1).clamp(min=1)
    return var.sqrt()


def zero_variance_groups(rewards: torch.Tensor, num_generations: int) -> torch.Tensor:
    """(B,) bool: groups whose G rewards are all equal (they carry no GRPO signal)."""
    grouped = rewards.view(-1, num_generations)  # (B, G)
    return torch.isclose(grouped.max(dim=1).values, grouped.min(dim=1).values)


def grpo_token_loss(
    logp_new: torch.Tensor,
    logp_old: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    epsilon: float = 0.2,
    epsilon_high: float | None = None,
    beta: float = 0.0,
    ref_logp: torch.Tensor | None = None,
    loss_type: str = "token_mean",
    kl_bias_correction: bool = True,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The clipped GRPO surrogate with an optional k3 KL penalty -> (loss, metrics).

    logp_new, logp_old, ref_logp, mask: (N, T); advantages: (N,).
        per_token = -min(rho*A, clip(rho, 1-epsilon, 1+epsilon_high)*A) + beta * w * (exp(ref-new) - (ref-new) - 1)
    with w = rho when `kl_bias_correction` (TRL 1.16's default), else 1.
    token_mean: sum(per_token*mask) / sum(mask) (TRL "bnpo"/"dapo" with one micro-batch);
    sequence_mean: mean over sequences of the per-sequence token mean (TRL "grpo").
    metrics: kl (token mean of k3, 0 when beta == 0), clip_fraction (tokens in the clipped region).
    """
    assert logp_new.shape == logp_old.shape == mask.shape, "logp_new, logp_old and mask must all be (N, T)"
    assert advantages.shape == logp_new.shape[:1], "advantages must be (N,)"
    if loss_type not in LOSS_TYPES:
        raise ValueError(f"loss_type must be one of {LOSS_TYPES}, got {loss_type!r}")
    epsilon_high = epsilon if epsilon_high is None else epsilon_high
    mask = mask.to(logp_new.dtype)
    adv = advantages.unsqueeze(1)  # (N, 1)
    ratio = torch.exp(logp_new - logp_old)  # (N, T)
    clipped = torch.clamp(ratio, 1 - epsilon, 1 + epsilon_high)
    per_token = -torch.min(ratio * adv, clipped * adv)  # (N, T)
    kl = torch.zeros_like(per_token)
    if beta != 0.0:
        assert ref_logp is not None and ref_logp.shape == logp_new.shape, "beta > 0 needs ref_logp (N, T)"
        diff = ref_logp - logp_new
        kl = torch.exp(diff) - diff - 1  # k3: unbiased for KL(new || ref), always >= 0
        per_token = per_token + beta * (kl * ratio if kl_bias_correction else kl)
    n_tokens = mask.sum().clamp(min=1.0)
    if loss_type == "token_mean":
        loss = (per_token * mask).sum() / n_tokens
    else:
        loss = ((per_token * mask).sum(1) / mask.sum(1).clamp(min=1.0)).mean()
    with torch.no_grad():
        is_clipped = ((ratio < 1 - epsilon) & (adv < 0)) | ((ratio > 1 + epsilon_high) & (adv > 0))
        metrics = {
            "kl": float((kl * mask).sum() / n_tokens),
            "clip_fraction": float((is_clipped.to(mask.dtype) * mask).sum() / n_tokens),
        }
    return loss, metrics


def sequence_logprobs(logits: torch.Tensor, targets: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Per-token log-probs (N, T) of `targets` (N, T) under `logits` (N, T, V) / temperature."""
    assert logits.shape[:2] == targets.shape, "logits must be (N, T, V) aligned with targets (N, T)"
    logp = F.log_softmax(logits.float() / temperature, dim=-1)
    return logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
