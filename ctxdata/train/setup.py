"""What both backends share around the loop: model loading, data, rewards, checkpoints, metrics."""

from __future__ import annotations

import json
import os
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ctxdata.errors import CtxdataError
from ctxdata.train.config import TrainConfig

STATE_FILE = "trainer_state.pt"


def step_seed(seed: int, step: int, purpose: str) -> int:
    """A seed that depends only on (seed, step, purpose): a resumed run replays the same draws."""
    return random.Random(f"{seed}-{step}-{purpose}").getrandbits(63)


def load_policy(spec: str):
    """(model, processing_class, tokenizer): a causal LM in float32 on CPU/GPU, tokenizer padding on the left.

    `spec` goes through `ctxdata.models.resolve_model` (alias, local folder or cached hub id; offline).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ctxdata.models import resolve_model

    path = resolve_model(spec)
    if "vision_config" in json.loads((path / "config.json").read_text()):
        return load_vision_policy(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return model.to(device), tokenizer, tokenizer


def load_vision_policy(path: Path):
    """(model, processor, tokenizer) for a VLM folder (e.g. `tiny.build_tiny_vlm`): the processor is the processing class."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(path)
    tokenizer = processor.tokenizer
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForImageTextToText.from_pretrained(path, dtype=torch.float32)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return model.to(device), processor, tokenizer


@dataclass
class TrainSetup:
    """The built pieces of a run."""

    cfg: TrainConfig
    model: Any
    processing_class: Any
    tokenizer: Any
    device: Any
    eos_ids: list[int]
    reward_funcs: list[Callable]
    task_rows: list[dict[str, Any]]
    pair_examples: list[Any] = field(default_factory=list)
    pair_sampler: Any = None
    letter_ids: dict[str, list[int]] = field(default_factory=dict)
    ref_model: Any = None
    selection_rows: list[dict[str, Any]] = field(default_factory=list)

    def draw_prompts(self, rng: random.Random) -> list[dict[str, Any]]:
        """The step's prompts: task rows, and for da-rl a `da_rl_fraction` share of selection rows."""
        n = self.cfg.prompts_per_step
        n_sel = 0
        if self.cfg.objective == "da-rl":
            n_sel = n if not self.task_rows else min(n, max(1, round(self.cfg.da_rl_fraction * n)))
        rows = [rng.choice(self.selection_rows) for _ in range(n_sel)]
        rows += [rng.choice(self.task_rows) for _ in range(n - n_sel)]
        return rows


def build_reward_funcs(cfg: TrainConfig) -> list[Callable]:
    """The configured rewards; for da-rl the first is routed per row and the others skip selection rows."""
    from ctxdata.train.rewards import get_reward, routed_reward

    if cfg.objective != "da-rl":
        return [get_reward(n) for n in cfg.reward_funcs]
    funcs = [routed_reward(cfg.reward_funcs[0])]
    for name in cfg.reward_funcs[1:]:
        funcs.append(_task_rows_only(get_reward(name)))
    return funcs


def _task_rows_only(func: Callable) -> Callable:
    def reward(prompts, completions, **kwargs):
        scores = func(prompts, completions, **kwargs)
        routed = kwargs.get("reward_fn") or [None] * len(scores)
        return [None if r else s for s, r in zip(scores, routed)]

    reward.__name__ = getattr(func, "__name__", "reward")
    return reward


def load_run_data(cfg: TrainConfig) -> tuple[list[dict[str, Any]], list[Any], list[dict[str, Any]]]:
    """(task rows, selection examples, da-rl selection rows), with a `reward_fn` column on every row for da-rl."""
    from ctxdata.train.data import load_selection_examples, load_task_data, selection_rl_rows

    task_rows = load_task_data(cfg.task_data) if cfg.task_data else []
    examples = load_selection_examples(cfg.pairs) if cfg.pairs and cfg.objective != "grpo" else []
    selection_rows = selection_rl_rows(examples) if cfg.objective == "da-rl" else []
    if cfg.objective == "da-rl":
        task_rows = [{**r, "reward_fn": None} for r in task_rows]
    return task_rows, examples, selection_rows


def prepare(cfg: TrainConfig) -> TrainSetup:
    """Load data, model (+ frozen reference when beta > 0), rewards and letter ids; seed torch."""
    import copy

    import torch

    from ctxdata.train.data import PairSampler
    from ctxdata.train.losses import letter_token_ids

    out = Path(cfg.output_dir)
    if not cfg.resume and out.is_dir() and any(out.glob("checkpoint-*")):
        raise CtxdataError(f"{out} already holds checkpoints; pass --resume to continue, or choose another --output-dir")
    out.mkdir(parents=True, exist_ok=True)
    if not cfg.resume and (out / "metrics.jsonl").exists():
        (out / "metrics.jsonl").unlink()
    task_rows, examples, selection_rows = load_run_data(cfg)
    torch.manual_seed(cfg.seed)
    model, proc, tok = load_policy(cfg.model)
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    eos = model.generation_config.eos_token_id if model.generation_config.eos_token_id is not None else tok.eos_token_id
    setup = TrainSetup(cfg=cfg, model=model, processing_class=proc, tokenizer=tok, device=next(model.parameters()).device,
                       eos_ids=list(eos) if isinstance(eos, (list, tuple)) else [int(eos)], reward_funcs=build_reward_funcs(cfg),
                       task_rows=task_rows, pair_examples=examples, selection_rows=selection_rows)
    if cfg.objective == "contextrl":
        setup.pair_sampler = PairSampler(examples, cfg.ca_batch_size, seed=cfg.seed, both_orders=cfg.ca_both_orders)
        setup.letter_ids = letter_token_ids(tok)
    if cfg.beta > 0:
        setup.ref_model = copy.deepcopy(model).eval().requires_grad_(False)
    (out / "train_config.json").write_text(json.dumps(cfg.to_dict(), indent=2, sort_keys=True) + "\n")
    return setup


# -- metrics and checkpoints ---------------------------------------------------------------------
def write_metrics(out: Path, row: dict[str, Any]) -> None:
    with open(Path(out) / "metrics.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps(row, sort_keys=True) + "\n")


def read_metrics(out: str | Path) -> list[dict[str, Any]]:
    path = Path(out) / "metrics.jsonl"
    return [json.loads(l) for l in path.read_text().splitlines() if l.strip()] if path.exists() else []


def find_last_checkpoint(out: Path) -> Path | None:
    """The checkpoint-<step> folder with the highest step that holds a complete trainer state."""
    if not Path(out).is_dir():
        return None
    done = [p for p in Path(out).glob("checkpoint-*") if (p / STATE_FILE).exists() and p.name.split("-")[-1].isdigit()]
    return max(done, key=lambda p: int(p.name.split("-")[-1]), default=None)


def save_checkpoint(out: Path, step: int, model, tokenizer, optim, sched, cfg: TrainConfig, final: bool = False) -> Path:
    """model + tokenizer + optimizer + scheduler + RNG + step, written to a temp folder then renamed."""
    import torch

    target = Path(out) / ("final" if final else f"checkpoint-{step}")
    tmp = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if not final:
        state = {"step": step, "optimizer": optim.state_dict(), "scheduler": sched.state_dict(), "config": cfg.to_dict(),
                 "rng": {"python": random.getstate(), "torch": torch.get_rng_state()}}
        torch.save(state, tmp / STATE_FILE)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)
    return target


def load_checkpoint(path: Path, model, optim, sched) -> int:
    """Restore weights, optimizer, scheduler and RNG from `path`; returns the step to continue from."""
    import torch
    from safetensors.torch import load_file

    weights = sorted(path.glob("*.safetensors"))
    state_dict = {}
    for w in weights:
        state_dict.update(load_file(w))
    missing, unexpected = model.load_state_dict(state_dict, strict=False)
    if unexpected or [m for m in missing if "lm_head" not in m]:  # tied lm_head is not saved separately
        raise CtxdataError(f"checkpoint {path} does not match the model (missing {missing[:3]}, unexpected {unexpected[:3]})")
    if hasattr(model, "tie_weights"):
        model.tie_weights()
    state = torch.load(path / STATE_FILE, weights_only=False)
    optim.load_state_dict(state["optimizer"])
    sched.load_state_dict(state["scheduler"])
    random.setstate(state["rng"]["python"])
    torch.set_rng_state(state["rng"]["torch"])
    metrics = read_metrics(path.parent)  # drop rows logged after the checkpoint: they are replayed
    (path.parent / "metrics.jsonl").write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in metrics if r["phase"] != "grpo" or r["step"] <= state["step"]))
    return int(state["step"])
