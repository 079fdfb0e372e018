"""The `trl` backend: `trl.GRPOTrainer` plus lambda * L_CA, for multi-GPU, DeepSpeed/FSDP and vLLM.

`ContextRLGRPOTrainer.compute_loss` returns TRL's GRPO loss (already scaled for gradient
accumulation) plus lambda * L_CA on this micro-step's share of the step's pair batch: the batch
`PairSampler.batch(global_step)` is split into `gradient_accumulation_steps * num_processes` chunks
and chunk k is weighted by its size, so the gradient summed over micro-steps and ranks is that of
lambda * mean(L_CA) over the whole fresh batch, as in the native trainer. The losses are the same
functions (`ctxdata.train.losses`), and `context_awareness_step` is shared with the native trainer.

Images: task rows may carry an `images` column (TRL's multimodal convention: conversational
prompts, a VLM and its processor); selection examples of vision pairs carry their two context
images, which `selection_inputs` sends through the processor. (TRL 1.16 has no prompt truncation;
`max_prompt_length` is applied by the native backend and to the L_CA prompts here.)
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any, Callable

from ctxdata.errors import MissingDependencyError
from ctxdata.train.config import TrainConfig

LOSS_TYPES = {"token_mean": "dapo", "sequence_mean": "grpo"}


def _require_trl():
    try:
        import trl  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError("the trl backend needs TRL: pip install 'ctxdata[train]'") from exc


def grpo_config(cfg: TrainConfig, **overrides: Any):
    """TrainConfig -> trl.GRPOConfig (same names; report_to none; CPU when there is no GPU; no vLLM by default)."""
    import torch
    from trl import GRPOConfig

    kwargs = dict(
        output_dir=cfg.output_dir, per_device_train_batch_size=cfg.per_device_train_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps, num_generations=cfg.num_generations,
        max_completion_length=cfg.max_completion_length, temperature=cfg.temperature, top_p=cfg.top_p, top_k=0,
        generation_kwargs=cfg.generation_kwargs,
        beta=cfg.beta, use_bias_correction_kl=cfg.use_bias_correction_kl, epsilon=cfg.epsilon, epsilon_high=cfg.epsilon_high, scale_rewards=cfg.scale_rewards,
        loss_type=LOSS_TYPES[cfg.loss_type], num_iterations=cfg.num_iterations, learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler_type, warmup_steps=cfg.warmup_steps, weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm,
        max_steps=cfg.max_steps, logging_steps=cfg.logging_steps, save_steps=cfg.save_steps or cfg.max_steps,
        save_strategy="steps" if cfg.save_steps else "no", seed=cfg.seed, report_to="none",
        use_cpu=not torch.cuda.is_available(), bf16=False, activation_checkpointing=cfg.gradient_checkpointing,
        remove_unused_columns=False, log_completions=False, disable_tqdm=True, save_only_model=False,
    )
    kwargs.update(overrides)
    return GRPOConfig(**kwargs)


def _trainer_class():
    import torch
    from trl import GRPOTrainer

    from ctxdata.train.grpo import context_awareness_step

    class ContextRLGRPOTrainer(GRPOTrainer):
        """GRPOTrainer + lam * L_CA on a fresh pair batch per optimizer step (see module docstring)."""

        def __init__(self, *args, ctx_cfg: TrainConfig, pair_sampler=None, letter_ids=None, **kwargs):
            super().__init__(*args, **kwargs)
            self.ctx_cfg = ctx_cfg
            self.pair_sampler = pair_sampler
            self.letter_ids = letter_ids or {}
            self.last_ca: dict[str, float] = {}

        def _generate_and_score_completions(self, inputs):
            out = super()._generate_and_score_completions(inputs)
            if self.ctx_cfg.skip_zero_variance_groups:
                # a group has zero reward variance iff all its advantages are exactly 0
                adv = out["advantages"].view(-1, self.num_generations)  # (B, G)
                keep = (adv != 0).any(dim=1).repeat_interleave(self.num_generations)  # (N,)
                out["completion_mask"] = out["completion_mask"] * keep[:, None].to(out["completion_mask"].dtype)
                out["num_items_in_batch"] = self.accelerator.gather(out["completion_mask"].sum()).sum()
            return out

        def ca_chunk(self) -> tuple[list, float]:
            """This micro-step's (and rank's) slice of the step's pair batch, and its weight in the mean."""
            batch = self.pair_sampler.batch(self.state.global_step)
            n_chunks = self.current_gradient_accumulation_steps * self.accelerator.num_processes
            k = self.accelerator.process_index * self.current_gradient_accumulation_steps + self._step % self.current_gradient_accumulation_steps
            chunk = batch[k::n_chunks]
            return chunk, len(chunk) / len(batch)

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            loss = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            mode = "train" if self.model.training else "eval"
            self._metrics[mode]["loss_grpo"].append(float(loss.detach()) * self.current_gradient_accumulation_steps)
            if self.ctx_cfg.objective != "contextrl" or mode != "train":
                return loss
            chunk, weight = self.ca_chunk()
            if not chunk:
                return loss
            loss_ca, delta = context_awareness_step(model, self.processing_class, chunk, self.letter_ids, self.ctx_cfg)
            self.last_ca = {"loss_ca": float(loss_ca.detach()), "ca_accuracy": float((delta > 0).float().mean()),
                            "ca_trapped": float((delta < -self.ctx_cfg.ca_clip).float().mean())}
            for key, value in self.last_ca.items():
                self._metrics[mode][key].append(value)
            return loss + self.ctx_cfg.lam * weight * loss_ca.to(loss.dtype)

    return ContextRLGRPOTrainer


def __getattr__(name: str):  # `from ctxdata.train.trl_backend import ContextRLGRPOTrainer` imports TRL lazily
    if name == "ContextRLGRPOTrainer":
        _require_trl()
        return _trainer_class()
    raise AttributeError(name)


def _dataset_rows(setup) -> list[dict[str, Any]]:
    """Task rows (+ da-rl selection rows oversampled to `da_rl_fraction`), prompts in one format."""
    cfg = setup.cfg
    rows = list(setup.task_rows)
    if cfg.objective == "da-rl":
        sel = setup.selection_rows
        if rows:
            k = max(1, round(cfg.da_rl_fraction / max(1e-9, 1 - cfg.da_rl_fraction) * len(rows))) if cfg.da_rl_fraction < 1 else len(sel)
            rng = random.Random(cfg.seed)
            sel = [rng.choice(sel) for _ in range(k)]
        rows = rows + [dict(r) for r in sel]
    if any(isinstance(r["prompt"], list) for r in rows):  # Arrow needs one prompt type: lift strings to messages
        rows = [{**r, "prompt": [{"role": "user", "content": r["prompt"]}]} if isinstance(r["prompt"], str) else r for r in rows]
    if any(r.get("images") for r in rows):
        from ctxdata.train.data import decode_image

        rows = [{**r, "images": [decode_image(c) for c in (r.get("images") or [])]} for r in rows]
    keys = sorted({k for r in rows for k in r})
    return [{k: r.get(k) for k in keys} for r in rows]


class MetricsCallback:
    """Writes TRL's logs as ctxdata metrics.jsonl rows (same keys as the native trainer)."""

    RENAME = {"reward": "reward_mean", "frac_reward_zero_std": "frac_zero_variance", "clip_ratio/region_mean": "clip_fraction",
              "learning_rate": "lr", "completions/mean_length": "completion_length"}

    def __init__(self, out: Path, on_step: Callable[[dict], None] | None) -> None:
        self.out, self.on_step, self.rows = out, on_step, []

    def as_callback(self):
        from transformers import TrainerCallback

        owner = self

        class _CB(TrainerCallback):
            def on_log(self, args, state, control, logs=None, **kwargs):
                if not logs or "loss" not in logs:
                    return
                row = {"phase": "grpo", "step": state.global_step}
                for key, value in logs.items():
                    row[owner.RENAME.get(key, key)] = value
                row.setdefault("kl", 0.0)
                row.setdefault("loss_ca", float("nan"))
                row.setdefault("ca_accuracy", float("nan"))
                row.setdefault("ca_trapped", float("nan"))
                owner.rows.append(row)
                from ctxdata.train.setup import write_metrics

                write_metrics(owner.out, row)
                if owner.on_step is not None:
                    owner.on_step(row)

        return _CB()


def train_trl(cfg: TrainConfig, on_step: Callable[[dict], None] | None = None) -> dict[str, Any]:
    """Run the configured objective with trl.GRPOTrainer; returns {first, last, output_dir, history}."""
    _require_trl()
    from datasets import Dataset

    from ctxdata.train.grpo import run_sft_phase
    from ctxdata.train.setup import prepare, read_metrics, write_metrics

    setup = prepare(cfg)
    out = Path(cfg.output_dir)
    trl_last = _last_trl_checkpoint(out) if cfg.resume else None
    history: list[dict] = []
    if cfg.objective == "da-sft" and trl_last is None:
        def log(row):
            history.append(row)
            write_metrics(out, row)
            if on_step:
                on_step(row)
        run_sft_phase(setup.model, setup.processing_class, setup.pair_examples, cfg, log)
    if trl_last is not None:  # drop rows logged after the checkpoint: they are replayed
        step = int(trl_last.name.split("-")[-1])
        kept = [r for r in read_metrics(out) if r["phase"] != "grpo" or r["step"] <= step]
        (out / "metrics.jsonl").write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in kept))
    callback = MetricsCallback(out, on_step)
    Trainer = _trainer_class()
    trainer = Trainer(
        model=setup.model, reward_funcs=setup.reward_funcs, args=grpo_config(cfg),
        train_dataset=Dataset.from_list(_dataset_rows(setup)), processing_class=setup.processing_class,
        callbacks=[callback.as_callback()], ctx_cfg=cfg, pair_sampler=setup.pair_sampler, letter_ids=setup.letter_ids,
    )
    from transformers import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # ctxdata prints its own progress and summary
    trainer.train(resume_from_checkpoint=str(trl_last) if trl_last is not None else None)
    trainer.save_model(str(out / "final"))
    history += callback.rows
    grpo_rows = [r for r in history if r["phase"] == "grpo"]
    return {"first": grpo_rows[0] if grpo_rows else None, "last": grpo_rows[-1] if grpo_rows else None, "output_dir": str(out), "history": history}


def _last_trl_checkpoint(out: Path) -> Path | None:
    done = [p for p in Path(out).glob("checkpoint-*") if (p / "trainer_state.json").exists() and p.name.split("-")[-1].isdigit()]
    return max(done, key=lambda p: int(p.name.split("-")[-1]), default=None)
