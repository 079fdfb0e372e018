"""Both backends, fed the same fixed batch, give the same GRPO loss, the same L_CA and the same gradient."""

import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl")

from conftest import make_pair  # noqa: E402
from ctxdata.engine import run_tasks  # noqa: E402
from ctxdata.io import PairOutput  # noqa: E402
from ctxdata.pipeline import RunContext  # noqa: E402
from ctxdata.train import losses  # noqa: E402
from ctxdata.train.config import TrainConfig  # noqa: E402
from ctxdata.train.tiny import build_tiny_llama  # noqa: E402


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("equiv")
    model_dir = build_tiny_llama(root / "tiny", seed=3)
    pairs = [make_pair(query=f"q{i}", label="AB"[i % 2], context_b_text=f"$ pytest\n{i} failed") for i in range(5)]
    out = PairOutput(root / "pairs", {"seed": 0}, command="test")
    run_tasks(out, [pairs], [])
    out.finalize(1, inputs=5, global_ctx=RunContext())
    task = root / "task.jsonl"
    task.write_text("".join(json.dumps({"prompt": [{"role": "user", "content": f"Count {i}"}], "answer": str(i)}) + "\n" for i in range(2)))
    return root, model_dir, task


def _fixed_batch(tok, temperature_seed=0):
    from ctxdata.train.grpo import encode_prompts

    enc = encode_prompts(tok, [[{"role": "user", "content": "Count 0"}], [{"role": "user", "content": "How many circles are there?"}]], None, 512)
    g = torch.Generator().manual_seed(temperature_seed)
    N, T = 4, 5
    prompt_ids = enc["input_ids"].repeat_interleave(2, 0)
    prompt_mask = enc["attention_mask"].repeat_interleave(2, 0)
    completion_ids = torch.randint(10, 300, (N, T), generator=g)
    completion_mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 1, 0]])
    completion_ids = completion_ids.masked_fill(completion_mask == 0, tok.pad_token_id)
    advantages = losses.group_advantages(torch.tensor([1.0, 0.0, 0.2, 0.9]), 2)
    ref = -torch.rand(N, T, generator=g) * 6
    return {"prompt_ids": prompt_ids, "prompt_mask": prompt_mask, "completion_ids": completion_ids,
            "completion_mask": completion_mask, "advantages": advantages, "ref_per_token_logps": ref}


@pytest.mark.parametrize(
    "loss_type, beta, temperature, kl_correction",
    [("token_mean", 0.0, 1.0, True), ("token_mean", 0.0, 0.7, True), ("token_mean", 0.04, 1.0, True),
     ("token_mean", 0.04, 1.0, False), ("sequence_mean", 0.04, 0.7, True)],
)
def test_same_batch_same_losses_and_gradient(world, loss_type, beta, temperature, kl_correction):
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ctxdata.train.data import PairSampler, load_selection_examples
    from ctxdata.train.grpo import completion_logprobs, context_awareness_step
    from ctxdata.train.rewards import REWARDS
    from ctxdata.train.trl_backend import ContextRLGRPOTrainer, grpo_config

    root, model_dir, task = world
    cfg = TrainConfig(model=str(model_dir), output_dir=str(root / f"out-{loss_type}-{beta}-{temperature}-{kl_correction}"), task_data=str(task), pairs=[str(root / "pairs")],
                      num_generations=2, per_device_train_batch_size=4, beta=beta, temperature=temperature, loss_type=loss_type,
                      ca_batch_size=4, ca_prefill="The answer is", lam=0.01,
                      use_bias_correction_kl=kl_correction)
    tok = AutoTokenizer.from_pretrained(model_dir)
    tok.padding_side = "left"
    batch = _fixed_batch(tok)
    sampler = PairSampler(load_selection_examples(cfg.pairs), cfg.ca_batch_size, seed=0)
    letter_ids = losses.letter_token_ids(tok)

    # native: the same calls train_native makes
    native = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).train()
    logp = completion_logprobs(native, batch, temperature)
    grpo_n, _ = losses.grpo_token_loss(logp, logp.detach(), batch["advantages"], batch["completion_mask"], cfg.epsilon, cfg.epsilon_high,
                                       beta, batch["ref_per_token_logps"], loss_type=loss_type,
                                       kl_bias_correction=cfg.use_bias_correction_kl)
    ca_n, _ = context_awareness_step(native, tok, sampler.batch(0), letter_ids, cfg)
    (grpo_n + cfg.lam * ca_n).backward()

    # trl: ContextRLGRPOTrainer.compute_loss on the same inputs
    policy = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    trainer = ContextRLGRPOTrainer(model=policy, reward_funcs=[REWARDS["exact_match"]], args=grpo_config(cfg, num_iterations=1),
                                   train_dataset=Dataset.from_list([json.loads(l) for l in task.read_text().splitlines()]),
                                   processing_class=tok, ctx_cfg=cfg, pair_sampler=sampler, letter_ids=letter_ids)
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 1
    inputs = dict(batch, num_items_in_batch=batch["completion_mask"].sum())
    if beta == 0:
        inputs.pop("ref_per_token_logps")
    total_t = trainer.compute_loss(trainer.model, inputs)
    total_t.backward()

    grpo_t = trainer._metrics["train"]["loss_grpo"][-1]
    assert grpo_t == pytest.approx(grpo_n.item(), abs=1e-5)
    assert trainer.last_ca["loss_ca"] == pytest.approx(float(ca_n), abs=1e-5)
    assert float(total_t) == pytest.approx(float(grpo_n + cfg.lam * ca_n), abs=1e-5)
    if beta:
        assert trainer._metrics["train"]["kl"][-1] > 0
    for (name, p_n), (_, p_t) in zip(native.named_parameters(), policy.named_parameters()):
        assert torch.allclose(p_n.grad, p_t.grad, atol=1e-5, rtol=1e-3), name
