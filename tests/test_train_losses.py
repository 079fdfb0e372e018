"""The shared losses against hand computations: L_CA (value, gradient, clamp), letter variants,
group advantages, the k3 KL and clip-higher."""

import math

import pytest

torch = pytest.importorskip("torch")

from ctxdata.train.losses import (  # noqa: E402
    context_awareness_loss,
    group_advantages,
    grpo_token_loss,
    letter_token_ids,
    selection_logit_delta,
    zero_variance_groups,
)


def _sigmoid(x):
    return 1 / (1 + math.exp(-x))


def test_ca_loss_value_and_gradient_match_hand_computation():
    delta = torch.tensor([-1.0, 0.0, 2.5, 7.0, -9.0], requires_grad=True)
    loss, per_item = context_awareness_loss(delta, clip=5.0)
    clamped = [-1.0, 0.0, 2.5, 5.0, -5.0]
    expected = [-math.log(_sigmoid(d)) for d in clamped]
    assert per_item.detach().tolist() == pytest.approx(expected, rel=1e-6)
    assert loss.item() == pytest.approx(sum(expected) / 5, rel=1e-6)
    loss.backward()
    # d/dx -log sigmoid(x) = -(1 - sigmoid(x)) = -sigmoid(-x); mean over 5 items; exactly 0 beyond the clamp
    grad = [-_sigmoid(-d) / 5 for d in (-1.0, 0.0, 2.5)] + [0.0, 0.0]
    assert delta.grad.tolist() == pytest.approx(grad, rel=1e-6, abs=0)
    assert delta.grad[3].item() == 0.0 and delta.grad[4].item() == 0.0


def test_ca_loss_smaller_clip_saturates_earlier():
    delta = torch.tensor([3.0], requires_grad=True)
    loss, _ = context_awareness_loss(delta, clip=2.0)
    loss.backward()
    assert loss.item() == pytest.approx(-math.log(_sigmoid(2.0)))
    assert delta.grad.item() == 0.0


def test_delta_takes_max_over_letter_variants():
    logits = torch.full((2, 6), -10.0)
    # row 0: correct variants {1, 2}: the larger (token 2) wins; wrong variants {3, 4}
    logits[0, 1], logits[0, 2], logits[0, 3], logits[0, 4] = 1.0, 3.0, 2.0, 0.0
    logits[1, 1], logits[1, 2], logits[1, 3], logits[1, 4] = 4.0, 0.0, 0.0, 0.5
    delta = selection_logit_delta(logits, [1, 2], [3, 4])
    logp = torch.log_softmax(logits, -1)
    assert delta[0].item() == pytest.approx((logp[0, 2] - logp[0, 3]).item())
    assert delta[1].item() == pytest.approx((logp[1, 1] - logp[1, 4]).item())
    # per-row id lists (labels differ per row) and ragged variant counts
    per_row = selection_logit_delta(logits, [[1, 2], [3]], [[3, 4], [1, 2]])
    assert per_row[1].item() == pytest.approx((logp[1, 3] - logp[1, 1]).item())


def test_letter_token_ids_on_tiny_tokenizer():
    from ctxdata.train.tiny import build_tokenizer

    tok = build_tokenizer()
    ids = letter_token_ids(tok)
    assert set(ids) == {"A", "B"}
    for letter, variants in ids.items():
        assert 1 <= len(variants) <= 2
        assert tok.encode(letter, add_special_tokens=False)[0] in variants
        assert tok.encode(" " + letter, add_special_tokens=False)[0] in variants
    assert not set(ids["A"]) & set(ids["B"])


def test_group_advantages_group_batch_none():
    r = torch.tensor([1.0, 0.0, 0.0, 1.0, 2.0, 2.0])
    adv = group_advantages(r, 2, "group")
    std = math.sqrt(0.5)  # Bessel-corrected std of {0, 1}
    assert adv.tolist() == pytest.approx([0.5 / (std + 1e-4), -0.5 / (std + 1e-4), -0.5 / (std + 1e-4), 0.5 / (std + 1e-4), 0.0, 0.0], rel=1e-5)
    none = group_advantages(r, 2, "none")
    assert none.tolist() == pytest.approx([0.5, -0.5, -0.5, 0.5, 0.0, 0.0])
    batch = group_advantages(r, 2, "batch")
    assert batch.tolist() == pytest.approx((none / (r.std() + 1e-4)).tolist(), rel=1e-5)
    assert zero_variance_groups(r, 2).tolist() == [False, False, True]
    nan = group_advantages(torch.tensor([1.0, float("nan"), 0.0, 0.0]), 2, "group")
    assert not torch.isnan(nan).any() and nan[1].item() == 0.0
    with pytest.raises(ValueError):
        group_advantages(r, 2, "rank")


def test_grpo_loss_on_policy_is_minus_mean_advantage_and_k3_kl():
    new = torch.tensor([[-1.0, -2.0, -0.5], [-0.3, -0.7, -9.0]], requires_grad=True)
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    adv = torch.tensor([1.0, -2.0])
    loss, m = grpo_token_loss(new, new.detach(), adv, mask)
    # ratio == 1: per-token loss = -A; token mean over 5 tokens
    assert loss.item() == pytest.approx(-(3 * 1.0 + 2 * -2.0) / 5)
    assert m["clip_fraction"] == 0.0 and m["kl"] == 0.0
    ref = torch.tensor([[-1.5, -2.0, 0.0], [-0.3, -0.2, 0.0]])
    loss_kl, m = grpo_token_loss(new, new.detach(), adv, mask, beta=0.1, ref_logp=ref)
    d = (ref - new.detach())
    k3 = (torch.exp(d) - d - 1) * mask
    assert m["kl"] == pytest.approx((k3.sum() / 5).item(), rel=1e-6)
    assert loss_kl.item() == pytest.approx(loss.item() + 0.1 * m["kl"], rel=1e-6)
    assert (k3 >= 0).all()
    seq, _ = grpo_token_loss(new, new.detach(), adv, mask, loss_type="sequence_mean")
    assert seq.item() == pytest.approx((-1.0 + 2.0) / 2)


def test_clip_higher_bounds_and_gradients():
    old = torch.zeros(1, 4)
    # ratios 0.7, 1.25, 1.35, 1.1 with a positive advantage: clipped above at 1 + epsilon_high only
    new = torch.log(torch.tensor([[0.7, 1.25, 1.35, 1.1]])).requires_grad_(True)
    mask = torch.ones(1, 4)
    loss, m = grpo_token_loss(new, old, torch.tensor([1.0]), mask, epsilon=0.2, epsilon_high=0.28)
    loss.backward()
    # tokens with ratio > 1.28 are clipped (zero grad); ratio 1.25 < 1.28 still gets gradient (clip-higher)
    assert new.grad[0, 2].item() == 0.0
    assert new.grad[0, 1].item() != 0.0 and new.grad[0, 0].item() != 0.0
    assert m["clip_fraction"] == pytest.approx(0.25)
    expected = -(0.7 + 1.25 + 1.28 + 1.1) / 4
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    # symmetric epsilon=0.2 clips ratio 1.25 too
    new2 = new.detach().clone().requires_grad_(True)
    loss2, m2 = grpo_token_loss(new2, old, torch.tensor([1.0]), mask, epsilon=0.2)
    loss2.backward()
    assert new2.grad[0, 1].item() == 0.0 and m2["clip_fraction"] == pytest.approx(0.5)
    # negative advantage: clipped below at 1 - epsilon (ratio 0.7 < 0.8 -> no gradient)
    new3 = new.detach().clone().requires_grad_(True)
    loss3, m3 = grpo_token_loss(new3, old, torch.tensor([-1.0]), mask, epsilon=0.2, epsilon_high=0.28)
    loss3.backward()
    assert new3.grad[0, 0].item() == 0.0 and new3.grad[0, 2].item() != 0.0
    assert m3["clip_fraction"] == pytest.approx(0.25)


def test_kl_bias_correction_changes_gradient_not_value():
    new = torch.tensor([[-1.0, -2.0]], requires_grad=True)
    ref = torch.tensor([[-1.5, -1.0]])
    mask = torch.ones(1, 2)
    adv = torch.tensor([0.0])  # isolate the KL term
    plain, _ = grpo_token_loss(new, new.detach(), adv, mask, beta=1.0, ref_logp=ref, kl_bias_correction=False)
    (g_plain,) = torch.autograd.grad(plain, new)
    corrected, _ = grpo_token_loss(new, new.detach(), adv, mask, beta=1.0, ref_logp=ref, kl_bias_correction=True)
    (g_corr,) = torch.autograd.grad(corrected, new)
    assert corrected.item() == pytest.approx(plain.item())
    d = ref - new.detach()
    k3 = torch.exp(d) - d - 1
    # d/dnew k3 = 1 - exp(ref - new); with the ratio factor (value 1) the gradient gains + k3; token mean over 2
    assert g_plain[0].tolist() == pytest.approx(((1 - torch.exp(d)) / 2)[0].tolist(), rel=1e-6)
    assert g_corr[0].tolist() == pytest.approx(((1 - torch.exp(d) + k3) / 2)[0].tolist(), rel=1e-6)


def test_upper_clip_form_keeps_the_gradient_of_confidently_wrong_pairs():
    delta = torch.tensor([-9.0, -1.0, 7.0], requires_grad=True)
    loss, per_item = context_awareness_loss(delta, clip=5.0, form="upper-clip")
    assert per_item.detach().tolist() == pytest.approx([-math.log(_sigmoid(d)) for d in (-9.0, -1.0, 5.0)], rel=1e-6)
    loss.backward()
    # the trapped pair (-9) now pulls with -sigmoid(9)/3 ~ -1/3; the confidently right one still stops
    assert delta.grad.tolist() == pytest.approx([-_sigmoid(9.0) / 3, -_sigmoid(1.0) / 3, 0.0], rel=1e-6)
    with pytest.raises(ValueError, match="paper, upper-clip"):
        context_awareness_loss(delta, form="softclip")
