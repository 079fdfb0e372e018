"""The native GRPO + ContextRL trainer: one readable file, plain torch + transformers.

GRPO variant (names as in `trl.GRPOConfig`), per optimizer step:
  1. Draw `prompts_per_step = per_device_train_batch_size * gradient_accumulation_steps / G` task
     prompts (seeded by (seed, step)); sample G = `num_generations` completions each with
     `model.generate` (left padding, temperature, top_p, at most `max_completion_length` tokens;
     tokens after the first EOS are masked, the EOS itself is kept).
  2. Rewards r (N = B*G): the sum of `reward_funcs`; group-normalised advantages
     A = (r - mean_group r) / (std_group r + 1e-4)   (`scale_rewards`: group | batch | none).
     With `skip_zero_variance_groups`, groups whose rewards are all equal leave the loss mask.
  3. Clipped surrogate with clip-higher, ratio rho = exp(logp - logp_old) per token:
     L_GRPO = token_mean(-min(rho*A, clip(rho, 1-epsilon, 1+epsilon_high)*A) + beta*rho*KL3)
     where KL3 = exp(ref - logp) - (ref - logp) - 1 to a frozen copy of the initial model (only
     when beta > 0; the factor rho is TRL's `use_bias_correction_kl`, on by default), and
     token_mean averages over all completion tokens of the step (TRL "dapo";
     `loss_type="sequence_mean"` gives TRL "grpo"). logp_old is the policy that generated the
     batch: with num_iterations = 1 it equals logp.detach() (rho = 1), with num_iterations > 1 the
     batch is reused for that many optimizer steps and rho moves away from 1 and gets clipped.
  4. ContextRL (objective `contextrl`): a FRESH batch of `ca_batch_size` pairs per step, teacher-
     forced on the selection prompt (chat template + generation prompt [+ `ca_prefill`]):
     Delta = max_v log p(correct_v) - max_w log p(wrong_w) at the answer position (letter variants
     " A"/"A"), L_CA = mean -log sigmoid(clip(Delta, -ca_clip, ca_clip)) (the paper's form, `ca_loss`
     "paper"; "upper-clip" drops the lower clamp), and L = L_GRPO + lam * L_CA before every optimizer
     step (AdamW, grad-norm clipping of the summed gradient, linear decay). With `ca_both_orders`
     the batch holds ca_batch_size / 2 pairs, each as stored and with A and B swapped.
Baselines: `grpo` (lam = 0), `da-sft` (supervised phase on query + anchor context -> answer, then
GRPO), `da-rl` (selection prompts mixed into the GRPO prompts with a 0/1 letter reward).
Per-step metrics go to <output_dir>/metrics.jsonl; checkpoints to <output_dir>/checkpoint-<step>.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any, Callable

import torch

from ctxdata.errors import ConfigError
from ctxdata.train import losses
from ctxdata.train.config import TrainConfig
from ctxdata.train.data import PairSampler, SelectionExample, decode_image, sft_examples
from ctxdata.train.setup import (
    TrainSetup,
    find_last_checkpoint,
    load_checkpoint,
    prepare,
    save_checkpoint,
    step_seed,
    write_metrics,
)

__all__ = ["TrainConfig", "train_native", "selection_inputs", "context_awareness_step", "run_sft_phase"]


# -- prompts -> tensors ------------------------------------------------------------------------
def render_prompt(processing_class: Any, prompt: Any, suffix: str = "") -> str:
    """Chat messages go through the chat template (+ generation prompt); strings are used as-is."""
    if isinstance(prompt, str):
        return prompt + suffix
    return processing_class.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False) + suffix


def encode_prompts(processing_class: Any, prompts: list[Any], images: list[list[Any]] | None, max_length: int, suffix: str = "") -> dict[str, torch.Tensor]:
    """Left-padded input_ids/attention_mask (+ pixel values for a VLM processor); text is truncated from the left."""
    texts = [render_prompt(processing_class, p, suffix) for p in prompts]
    if images and any(images):
        if not hasattr(processing_class, "image_processor"):
            raise ConfigError("image prompts need a vision-language model with a processor (got a text tokenizer)")
        pil = [[decode_image(c) for c in imgs] for imgs in images]
        return dict(processing_class(text=texts, images=pil, padding=True, padding_side="left", return_tensors="pt"))
    tok = getattr(processing_class, "tokenizer", processing_class)
    tok.truncation_side = "left"  # keep the instruction and the generation prompt, which end the prompt
    return dict(tok(texts, padding=True, padding_side="left", truncation=True, max_length=max_length, add_special_tokens=False, return_tensors="pt"))


def selection_inputs(processing_class: Any, examples: list[SelectionExample], prefill: str = "", max_length: int = 4096) -> dict[str, torch.Tensor]:
    """The teacher-forced selection prompts of a pair batch; the last position is the answer position."""
    images = [ex.images for ex in examples] if any(ex.images for ex in examples) else None
    return encode_prompts(processing_class, [ex.messages for ex in examples], images, max_length, suffix=prefill)


def context_awareness_step(model, processing_class, examples: list[SelectionExample], letter_ids: dict[str, list[int]], cfg: TrainConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """(L_CA, Delta (B,)) for one pair batch, with gradient; shared by both backends."""
    device = next(model.parameters()).device
    inputs = {k: v.to(device) for k, v in selection_inputs(processing_class, examples, cfg.ca_prefill, cfg.max_prompt_length).items()}
    logits = model(**inputs, logits_to_keep=1).logits[:, -1, :]  # (B, V): next-token logits at the answer position
    delta = losses.selection_logit_delta(logits, [letter_ids[ex.correct] for ex in examples], [letter_ids[ex.wrong] for ex in examples])
    loss, _ = losses.context_awareness_loss(delta, clip=cfg.ca_clip, form=cfg.ca_loss)
    return loss, delta.detach()


def completion_logprobs(model, batch: dict[str, torch.Tensor], temperature: float) -> torch.Tensor:
    """Per-token log-probs (N, T) of the completion tokens under `model`."""
    completion_ids = batch["completion_ids"]  # (N, T)
    T = completion_ids.size(1)
    input_ids = torch.cat([batch["prompt_ids"], completion_ids], dim=1)  # (N, P+T)
    attention = torch.cat([batch["prompt_mask"], batch["completion_mask"]], dim=1)
    extra = {k: batch[k] for k in ("pixel_values", "image_grid_thw", "image_sizes") if k in batch}
    logits = model(input_ids=input_ids, attention_mask=attention, logits_to_keep=T + 1, **extra).logits[:, :-1, :]  # (N, T, V)
    return losses.sequence_logprobs(logits, completion_ids, temperature)


# -- one generation batch ----------------------------------------------------------------------
@torch.no_grad()
def generate_batch(setup: TrainSetup, rows: list[dict[str, Any]], step: int) -> dict[str, Any]:
    """Sample G completions per row and score them: tensors (N = len(rows)*G) + rewards + advantages."""
    cfg, model, proc = setup.cfg, setup.model, setup.processing_class
    G = cfg.num_generations
    # rows are repeated before encoding (not the tensors after), so per-image tensors of a VLM stay in row order
    images = [r.get("images") or [] for r in rows for _ in range(G)] if any(r.get("images") for r in rows) else None
    enc = encode_prompts(proc, [r["prompt"] for r in rows for _ in range(G)], images, cfg.max_prompt_length)
    enc = {k: v.to(setup.device) for k, v in enc.items()}  # (N, P): the G completions of a prompt are consecutive
    torch.manual_seed(step_seed(cfg.seed, step, "generate"))
    was_training = model.training
    model.eval()
    out = model.generate(**enc, do_sample=True, temperature=cfg.temperature, top_p=cfg.top_p, top_k=0,
                         max_new_tokens=cfg.max_completion_length, pad_token_id=setup.tokenizer.pad_token_id,
                         eos_token_id=setup.eos_ids, **(cfg.generation_kwargs or {}))
    model.train(was_training)
    completion_ids = out[:, enc["input_ids"].size(1):]  # (N, T)
    is_eos = torch.isin(completion_ids, torch.tensor(setup.eos_ids, device=completion_ids.device))
    first_eos = torch.where(is_eos.any(1), is_eos.int().argmax(1), torch.full_like(is_eos[:, 0], is_eos.size(1), dtype=torch.long))
    completion_mask = (torch.arange(is_eos.size(1), device=is_eos.device)[None] <= first_eos[:, None]).long()  # keep EOS
    completion_ids = completion_ids.masked_fill(completion_mask == 0, setup.tokenizer.pad_token_id)

    texts = setup.tokenizer.batch_decode(completion_ids, skip_special_tokens=True)
    prompts = [r["prompt"] for r in rows for _ in range(G)]
    completions = [[{"role": "assistant", "content": t}] if isinstance(p, list) else t for p, t in zip(prompts, texts)]
    columns = {k: [r.get(k) for r in rows for _ in range(G)] for k in {k for r in rows for k in r} - {"prompt"}}
    rewards = score(setup.reward_funcs, prompts, completions, columns)  # (N,)
    advantages = losses.group_advantages(rewards, G, cfg.scale_rewards)  # (N,)
    zero_var = losses.zero_variance_groups(torch.nan_to_num(rewards, nan=0.0), G)  # (B,)
    if cfg.skip_zero_variance_groups:
        completion_mask = completion_mask * (~zero_var).repeat_interleave(G).long()[:, None].to(completion_mask.device)
    batch = {"prompt_ids": enc["input_ids"], "prompt_mask": enc["attention_mask"], "completion_ids": completion_ids,
             "completion_mask": completion_mask, "advantages": advantages.to(setup.device)}
    batch.update({k: v for k, v in enc.items() if k not in ("input_ids", "attention_mask")})
    if cfg.num_iterations > 1:  # the sampling policy, frozen for the reuse steps
        batch["old_logp"] = completion_logprobs(model, batch, cfg.temperature)
    if cfg.beta > 0:
        batch["ref_logp"] = completion_logprobs(setup.ref_model, batch, cfg.temperature)
    stats = {"reward_mean": float(torch.nanmean(rewards)), "frac_zero_variance": float(zero_var.float().mean()),
             "completion_length": float(completion_mask.sum(1).float().mean())}
    return {"tensors": batch, "stats": stats}


def score(reward_funcs: list[Callable], prompts, completions, columns: dict[str, list]) -> torch.Tensor:
    """Sum of the reward functions; a completion every function returned None for gets NaN."""
    table = torch.tensor([[float("nan") if v is None else float(v) for v in f(prompts, completions, **columns)] for f in reward_funcs])  # (F, N)
    assert table.shape[1] == len(completions), "a reward function returned the wrong number of rewards"
    total = table.nansum(0)
    total[torch.isnan(table).all(0)] = float("nan")
    return total


def grpo_loss_backward(setup: TrainSetup, batch: dict[str, torch.Tensor]) -> dict[str, float]:
    """Backward of L_GRPO over the micro-batches of one step; returns the step's loss and metrics."""
    cfg = setup.cfg
    n = batch["completion_ids"].size(0)
    if "pixel_values" in batch and cfg.per_device_train_batch_size < n:
        # pixel_values is indexed by image, not by row: slicing it per micro-batch would misalign images
        raise ConfigError("the native backend trains VLMs with one micro-batch per step: set gradient_accumulation_steps=1")
    total_tokens = batch["completion_mask"].sum().clamp(min=1)
    totals = {"loss_grpo": 0.0, "kl": 0.0, "clip_fraction": 0.0}
    for start in range(0, n, cfg.per_device_train_batch_size):
        mb = {k: v[start:start + cfg.per_device_train_batch_size] for k, v in batch.items() if isinstance(v, torch.Tensor)}
        logp = completion_logprobs(setup.model, mb, cfg.temperature)  # (n_mb, T)
        old = mb.get("old_logp", logp.detach())
        loss, m = losses.grpo_token_loss(logp, old, mb["advantages"], mb["completion_mask"], cfg.epsilon, cfg.epsilon_high,
                                         cfg.beta, mb.get("ref_logp"), loss_type=cfg.loss_type,
                                         kl_bias_correction=cfg.use_bias_correction_kl)
        # token_mean over the whole step (TRL dapo): weight each micro-batch by its share of tokens
        weight = (mb["completion_mask"].sum() / total_tokens) if cfg.loss_type == "token_mean" else 1.0 / cfg.gradient_accumulation_steps
        (loss * weight).backward()
        totals["loss_grpo"] += float(loss.detach()) * float(weight)
        totals["kl"] += m["kl"] * float(weight)
        totals["clip_fraction"] += m["clip_fraction"] * float(weight)
    return totals


# -- da-sft --------------------------------------------------------------------------------------
def run_sft_phase(model, processing_class, examples: list[SelectionExample], cfg: TrainConfig, log: Callable[[dict], None]) -> None:
    """da-sft: `sft_steps` AdamW steps of cross-entropy on the answer tokens given query + anchor context."""
    tok = getattr(processing_class, "tokenizer", processing_class)
    rows = sft_examples(examples)
    sampler = PairSampler(list(range(len(rows))), cfg.sft_batch_size, seed=cfg.seed + 7919)  # type: ignore[arg-type]
    optim = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.sft_learning_rate or cfg.learning_rate, weight_decay=cfg.weight_decay)
    device = next(model.parameters()).device
    model.train()
    for step in range(cfg.sft_steps):
        t0 = time.perf_counter()
        batch = [rows[i] for i in sampler.batch(step)]  # type: ignore[index]
        prompt_ids = [tok(render_prompt(processing_class, r["prompt"]), add_special_tokens=False)["input_ids"] for r in batch]
        target_ids = [tok(r["target"], add_special_tokens=False)["input_ids"] + [tok.eos_token_id] for r in batch]
        seqs = [(p + t)[-cfg.max_prompt_length:] for p, t in zip(prompt_ids, target_ids)]
        labels = [([-100] * len(p) + t)[-cfg.max_prompt_length:] for p, t in zip(prompt_ids, target_ids)]
        width = max(len(s) for s in seqs)
        ids = torch.tensor([[tok.pad_token_id] * (width - len(s)) + s for s in seqs], device=device)
        lab = torch.tensor([[-100] * (width - len(l)) + l for l in labels], device=device)
        mask = (torch.arange(width)[None] >= torch.tensor([width - len(s) for s in seqs])[:, None]).long().to(device)
        loss = model(input_ids=ids, attention_mask=mask, labels=lab).loss
        optim.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
        optim.step()
        log({"phase": "sft", "step": step + 1, "loss_sft": float(loss.detach()), "step_time": time.perf_counter() - t0})


# -- the loop --------------------------------------------------------------------------------------
def train_native(cfg: TrainConfig, on_step: Callable[[dict], None] | None = None) -> dict[str, Any]:
    """Run the configured objective with the native backend; returns {first, last, output_dir}."""
    setup = prepare(cfg)
    model, out = setup.model, Path(cfg.output_dir)
    optim = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(optim, cfg.lr_factor)
    start_step, history = 0, []

    def log(row: dict) -> None:
        history.append(row)
        write_metrics(out, row)
        if on_step is not None:
            on_step(row)

    last = find_last_checkpoint(out) if cfg.resume else None
    if last is not None:
        start_step = load_checkpoint(last, model, optim, sched)
    elif cfg.objective == "da-sft":
        run_sft_phase(model, setup.processing_class, setup.pair_examples, cfg, log)

    rng_rows = random.Random()
    buffered: dict[str, Any] | None = None
    for step in range(start_step, cfg.max_steps):
        t0 = time.perf_counter()
        model.train()
        if buffered is None or step % cfg.num_iterations == 0:
            rng_rows.seed(step_seed(cfg.seed, step, "prompts"))
            buffered = generate_batch(setup, setup.draw_prompts(rng_rows), step)
        metrics = grpo_loss_backward(setup, buffered["tensors"])
        ca = {k: float("nan") for k in ("loss_ca", "ca_accuracy", "ca_trapped", "ca_share_a")}
        if cfg.objective == "contextrl":
            pairs = setup.pair_sampler.batch(step)
            loss_ca, delta = context_awareness_step(model, setup.processing_class, pairs, setup.letter_ids, cfg)
            (cfg.lam * loss_ca).backward()
            picked_a = [(d > 0) == (ex.correct == "A") for d, ex in zip(delta.tolist(), pairs)]
            ca = {"loss_ca": float(loss_ca.detach()), "ca_accuracy": float((delta > 0).float().mean()),
                  # wrong pairs the paper's clamp gives no gradient
                  "ca_trapped": float((delta < -cfg.ca_clip).float().mean()),
                  "ca_share_a": sum(picked_a) / len(pairs)}  # near 0 or 1: a letter preference, not content
        grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm or float("inf")))
        lr = optim.param_groups[0]["lr"]
        optim.step()
        sched.step()
        optim.zero_grad(set_to_none=True)
        ca_loss = ca["loss_ca"]
        row = {"phase": "grpo", "step": step + 1, **buffered["stats"], **metrics, **ca, "grad_norm": grad_norm,
               "loss": metrics["loss_grpo"] + (cfg.lam or 0.0) * (0.0 if ca_loss != ca_loss else ca_loss),
               "lr": lr, "step_time": time.perf_counter() - t0}
        if (step + 1) % cfg.logging_steps == 0 or step + 1 == cfg.max_steps:
            log(row)
        if cfg.save_steps and (step + 1) % cfg.save_steps == 0:
            save_checkpoint(out, step + 1, model, setup.tokenizer, optim, sched, cfg)
    save_checkpoint(out, cfg.max_steps, model, setup.tokenizer, optim, sched, cfg, final=True)
    grpo_rows = [r for r in history if r["phase"] == "grpo"]
    return {"first": grpo_rows[0] if grpo_rows else None, "last": grpo_rows[-1] if grpo_rows else None, "output_dir": str(out), "history": history}
