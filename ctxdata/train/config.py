"""`TrainConfig`: one dataclass for both backends, with TRL's GRPOConfig names plus ContextRL's."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ctxdata.errors import ConfigError

OBJECTIVES = ("contextrl", "grpo", "da-sft", "da-rl")
BACKENDS = ("native", "trl")
LR_SCHEDULERS = ("linear", "constant", "constant_with_warmup")  # transformers' names and semantics
CA_LOSSES = ("paper", "upper-clip")  # the L_CA forms of ctxdata.train.losses.context_awareness_loss
DEFAULT_LAM = 0.01


@dataclass
class TrainConfig:
    """Everything `ctxdata train` needs; field names follow `trl.GRPOConfig` where one exists."""

    model: str = "tiny-llama"  # local model folder, `tiny-llama` or `smollm2-135m`
    output_dir: str = "runs/contextrl"  # checkpoints, metrics.jsonl, the final model
    task_data: str | None = None  # JSONL/Parquet task rows (prompt, answer[, images]) for GRPO
    pairs: list[str] = field(default_factory=list)  # pair folders (for contextrl, da-sft, da-rl)
    objective: str = "contextrl"  # contextrl | grpo | da-sft | da-rl
    backend: str = "native"  # native (ctxdata.train.grpo) | trl (trl.GRPOTrainer subclass)
    reward_funcs: list[str] = field(default_factory=lambda: ["normalized_contains"])  # names in rewards.REWARDS, summed
    # -- GRPO (TRL names) --
    num_generations: int = 4  # completions sampled per prompt (G); >= 2
    max_prompt_length: int = 1024  # prompts are truncated from the left (native backend)
    max_completion_length: int = 64  # new tokens per completion
    temperature: float = 1.0  # sampling temperature (log-probs use the same temperature, as TRL)
    top_p: float = 1.0  # nucleus sampling
    generation_kwargs: dict[str, Any] | None = None  # extra `generate` kwargs (e.g. min_new_tokens), as TRL
    beta: float = 0.0  # k3 KL coefficient to a frozen reference (0: no reference model)
    use_bias_correction_kl: bool = True  # weight the KL term by the ratio (TRL 1.16's default, unbiased gradient)
    epsilon: float = 0.2  # lower clip: ratio >= 1 - epsilon
    epsilon_high: float | None = 0.28  # upper clip (clip-higher, DAPO); None = epsilon
    scale_rewards: str = "group"  # group | batch | none
    loss_type: str = "token_mean"  # token_mean (TRL dapo) | sequence_mean (TRL grpo)
    num_iterations: int = 1  # optimizer steps per generation batch (mu)
    learning_rate: float = 1e-6  # AdamW learning rate
    lr_scheduler_type: str = "linear"  # linear (decay to 0, TRL's default) | constant | constant_with_warmup
    warmup_steps: int = 0  # linear warmup from lr 0 over the first N steps (linear, constant_with_warmup)
    weight_decay: float = 0.0  # AdamW weight decay
    max_grad_norm: float = 1.0  # gradient clipping (0 disables)
    per_device_train_batch_size: int = 8  # completions per micro-batch (TRL semantics)
    gradient_accumulation_steps: int = 1  # micro-batches per optimizer step
    max_steps: int = 10  # GRPO optimizer steps
    logging_steps: int = 1  # write metrics every N steps
    save_steps: int = 0  # checkpoint every N steps (0: only at the end)
    seed: int = 0  # seeds sampling, the pair sampler and the model RNG
    skip_zero_variance_groups: bool = False  # drop groups whose rewards are all equal from L_GRPO
    gradient_checkpointing: bool = False  # trade compute for memory on long contexts
    # -- ContextRL and baselines --
    lam: float | None = None  # weight of L_CA (contextrl only; default 0.01; paper 0.001-0.01)
    ca_clip: float = 5.0  # c in -log sigmoid(clip(Delta, -c, c))
    ca_batch_size: int = 8  # pairs per optimizer step for L_CA (a fresh batch every step)
    ca_prefill: str = ""  # text appended after the generation prompt before reading the answer logits
    ca_loss: str = "paper"  # paper: -log sigmoid(clip(Delta, -c, c)); upper-clip: -log sigmoid(min(Delta, c))
    ca_both_orders: bool = False  # show each L_CA pair in both A/B orders in the same batch (letter bias cancels)
    sft_steps: int = 0  # da-sft: supervised steps on (query + anchor context -> answer) before GRPO
    sft_batch_size: int = 8  # da-sft: examples per supervised step
    sft_learning_rate: float | None = None  # da-sft: learning rate of the SFT phase (default: learning_rate)
    da_rl_fraction: float = 0.5  # da-rl: fraction of each step's prompts drawn from the pairs
    resume: bool = False  # continue from the last checkpoint in output_dir

    def __post_init__(self) -> None:
        self.pairs = [str(p) for p in self.pairs]
        if self.objective not in OBJECTIVES:
            raise ConfigError(f"unknown objective {self.objective!r}; choose one of: {', '.join(OBJECTIVES)}")
        if self.backend not in BACKENDS:
            raise ConfigError(f"unknown backend {self.backend!r}; choose one of: {', '.join(BACKENDS)}")
        if self.num_generations < 2:
            raise ConfigError("GRPO needs num_generations >= 2 to form group advantages; set --num-generations 2 or more")
        batch = self.per_device_train_batch_size * self.gradient_accumulation_steps
        if batch % self.num_generations:
            raise ConfigError(
                f"per_device_train_batch_size * gradient_accumulation_steps ({batch}) must be divisible by "
                f"num_generations ({self.num_generations}): each step holds whole groups"
            )
        if self.objective in ("contextrl", "da-rl", "da-sft") and not self.pairs:
            raise ConfigError(f"objective {self.objective} trains on pairs: pass --pairs DIR")
        if self.objective != "da-rl" and not self.task_data:
            raise ConfigError(f"objective {self.objective} runs GRPO on task data: pass --task-data FILE")
        if self.lam is None:
            self.lam = DEFAULT_LAM if self.objective == "contextrl" else 0.0
        if self.objective == "contextrl" and self.lam <= 0:
            raise ConfigError("contextrl needs --lam > 0 (paper: 0.001-0.01); for plain GRPO use --objective grpo")
        if self.objective != "contextrl" and self.lam != 0:
            raise ConfigError(f"--lam only applies to --objective contextrl (got objective {self.objective})")
        if self.sft_steps and self.objective != "da-sft":
            raise ConfigError("--sft-steps only applies to --objective da-sft")
        if self.objective == "da-sft" and self.sft_steps < 1:
            raise ConfigError("da-sft needs --sft-steps >= 1 (the supervised phase before GRPO)")
        if not 0.0 < self.da_rl_fraction <= 1.0:
            raise ConfigError("da_rl_fraction must be in (0, 1]")
        if self.objective == "da-rl" and not self.task_data and self.da_rl_fraction != 1.0:
            self.da_rl_fraction = 1.0  # no task data: every prompt is a selection prompt
        if self.ca_loss not in CA_LOSSES:
            raise ConfigError(f"unknown ca_loss {self.ca_loss!r}; choose one of: {', '.join(CA_LOSSES)}")
        if self.ca_both_orders and self.ca_batch_size % 2:
            raise ConfigError(f"ca_both_orders shows every pair twice: ca_batch_size must be even, got {self.ca_batch_size}")
        if self.scale_rewards not in ("group", "batch", "none"):
            raise ConfigError("scale_rewards must be group, batch or none")
        if self.loss_type not in ("token_mean", "sequence_mean"):
            raise ConfigError("loss_type must be token_mean or sequence_mean")
        if self.lr_scheduler_type not in LR_SCHEDULERS:
            raise ConfigError(f"unknown lr_scheduler_type {self.lr_scheduler_type!r}; "
                              f"choose one of: {', '.join(LR_SCHEDULERS)}")
        if self.warmup_steps < 0 or self.warmup_steps >= self.max_steps:
            raise ConfigError(f"warmup_steps must be in [0, max_steps), got {self.warmup_steps} "
                              f"with max_steps {self.max_steps}")
        if self.warmup_steps and self.lr_scheduler_type == "constant":
            raise ConfigError("lr_scheduler_type constant has no warmup (as in transformers): "
                              "use constant_with_warmup")
        if self.epsilon <= 0 or (self.epsilon_high is not None and self.epsilon_high < self.epsilon):
            raise ConfigError("need epsilon > 0 and epsilon_high >= epsilon (clip-higher widens the upper bound only)")
        if self.beta < 0 or self.ca_clip <= 0 or self.temperature <= 0:
            raise ConfigError("beta must be >= 0, ca_clip > 0 and temperature > 0")
        if min(self.max_steps, self.max_completion_length, self.max_prompt_length, self.ca_batch_size, self.num_iterations, self.logging_steps) < 1:
            raise ConfigError("max_steps, max_completion_length, max_prompt_length, ca_batch_size, num_iterations and logging_steps must be >= 1")
        if not self.reward_funcs:
            raise ConfigError("give at least one reward function (--reward)")
        from ctxdata.train.rewards import get_reward

        for name in self.reward_funcs:
            get_reward(name)

    @property
    def prompts_per_step(self) -> int:
        return self.per_device_train_batch_size * self.gradient_accumulation_steps // self.num_generations

    def lr_factor(self, step: int) -> float:
        """The learning-rate multiplier of optimizer step `step` (0-based), as transformers' schedulers.

        Warmup: step / warmup_steps (the first step has lr 0, as in transformers); then linear decays
        to 0 at max_steps, the constant schedules stay at 1.
        """
        if step < self.warmup_steps:
            return step / self.warmup_steps
        if self.lr_scheduler_type == "linear":
            return max(0.0, (self.max_steps - step) / max(1, self.max_steps - self.warmup_steps))
        return 1.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
