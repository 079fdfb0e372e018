"""Two steps of every objective on both backends on a tiny random Llama: parameters move, every
logged loss is finite, metrics.jsonl is written; resume continues and replays the same step."""

import json
import math

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from conftest import make_pair  # noqa: E402
from ctxdata.errors import ConfigError  # noqa: E402
from ctxdata.engine import run_tasks  # noqa: E402
from ctxdata.io import PairOutput  # noqa: E402
from ctxdata.pipeline import RunContext  # noqa: E402
from ctxdata.train.config import TrainConfig  # noqa: E402
from ctxdata.train.setup import read_metrics  # noqa: E402
from ctxdata.train.tiny import build_tiny_llama  # noqa: E402

LOSS_KEYS = ("loss_grpo", "loss_ca", "loss", "kl")


def char_count(prompts, completions, **kwargs):
    """A test reward with variance even for a random model: completion length in characters / 10."""
    from ctxdata.train.rewards import completion_text

    return [len(completion_text(c)) / 10 for c in completions]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    from ctxdata.train.rewards import REWARDS

    REWARDS.setdefault("char_count", char_count)  # registries are plain dicts: users add rewards the same way
    root = tmp_path_factory.mktemp("train")
    model = build_tiny_llama(root / "tiny")
    pairs = [make_pair(query=f"Fix bug {i}", label="AB"[i % 2], context_a_text=f"$ pytest\n{i} passed") for i in range(6)]
    output = PairOutput(root / "pairs", {"seed": 0}, command="test")
    run_tasks(output, [pairs], [])
    output.finalize(1, inputs=len(pairs), global_ctx=RunContext())
    task = root / "task.jsonl"
    # answers the random model sometimes emits, so some groups have reward variance
    task.write_text("".join(json.dumps({"prompt": [{"role": "user", "content": f"Pick a letter {i}"}], "answer": "B"}) + "\n" for i in range(4)))
    return {"root": root, "model": str(model), "pairs": str(root / "pairs"), "task": str(task)}


def _cfg(w, out, **kw):
    base = dict(model=w["model"], output_dir=str(out), task_data=w["task"], pairs=[w["pairs"]], max_steps=2, num_generations=2,
                per_device_train_batch_size=4, max_completion_length=6, learning_rate=5e-3, ca_batch_size=3,
                reward_funcs=["char_count", "normalized_contains"], seed=1)
    base.update(kw)
    return TrainConfig(**base)


def _weights(path):
    from safetensors.torch import load_file

    return load_file(str(next(iter(sorted((path).glob("*.safetensors"))))))


def _run(cfg):
    if cfg.backend == "trl":
        from ctxdata.train.trl_backend import train_trl

        return train_trl(cfg)
    from ctxdata.train.grpo import train_native

    return train_native(cfg)


@pytest.mark.parametrize("backend", ["native", "trl"])
@pytest.mark.parametrize("objective", ["contextrl", "grpo", "da-sft", "da-rl"])
def test_two_steps_of_every_objective(workdir, tmp_path, objective, backend):
    extra = {"sft_steps": 2, "sft_batch_size": 3} if objective == "da-sft" else {}
    cfg = _cfg(workdir, tmp_path / "run", objective=objective, backend=backend, **extra)
    result = _run(cfg)
    rows = read_metrics(tmp_path / "run")
    grpo = [r for r in rows if r["phase"] == "grpo"]
    assert [r["step"] for r in grpo] == [1, 2]
    for r in grpo:
        for key in LOSS_KEYS:
            if key == "loss_ca" and objective != "contextrl":
                continue
            assert math.isfinite(r[key]), (key, r)
        assert 0.0 <= r["frac_zero_variance"] <= 1.0 and math.isfinite(r["reward_mean"])
    if objective == "contextrl":
        assert all(0.0 <= r["ca_accuracy"] <= 1.0 and r["loss_ca"] > 0 and 0.0 <= r["ca_trapped"] <= 1.0 for r in grpo)
    if objective == "da-sft":
        sft = [r for r in rows if r["phase"] == "sft"]
        assert len(sft) == 2 and all(math.isfinite(r["loss_sft"]) for r in sft)
    before, after = _weights(workdir["root"] / "tiny"), _weights(tmp_path / "run" / "final")
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed, "no parameter changed after training"
    assert result["last"]["step"] == 2


@pytest.mark.parametrize("backend", ["native", "trl"])
def test_contextrl_variants_both_orders_and_upper_clip_train(workdir, tmp_path, backend):
    cfg = _cfg(workdir, tmp_path / "run", backend=backend, ca_batch_size=4, ca_both_orders=True, ca_loss="upper-clip", ca_clip=0.01)
    _run(cfg)
    grpo = [r for r in read_metrics(tmp_path / "run") if r["phase"] == "grpo"]
    # with c = 0.01 nearly every wrong pair lies beyond -c: the paper's clamp would trap it, upper-clip still trains on it
    assert all(math.isfinite(r["loss_ca"]) and 0.0 <= r["ca_trapped"] <= 1.0 for r in grpo)
    if backend == "native":
        assert all(r["grad_norm"] > 0 for r in grpo)


def test_native_resume_replays_the_same_step(workdir, tmp_path):
    straight = _run(_cfg(workdir, tmp_path / "a", max_steps=3, lr_scheduler_type="constant"))
    _run(_cfg(workdir, tmp_path / "b", max_steps=2, save_steps=1, lr_scheduler_type="constant"))
    assert (tmp_path / "b" / "checkpoint-2" / "trainer_state.pt").exists()
    resumed = _run(_cfg(workdir, tmp_path / "b", max_steps=3, save_steps=1, lr_scheduler_type="constant", resume=True))
    assert [r["step"] for r in read_metrics(tmp_path / "b")] == [1, 2, 3]
    a, b = straight["last"], resumed["last"]
    assert b["step"] == 3 and b["loss_ca"] == pytest.approx(a["loss_ca"], rel=1e-5)
    assert b["reward_mean"] == a["reward_mean"]
    wa, wb = _weights(tmp_path / "a" / "final"), _weights(tmp_path / "b" / "final")
    assert all(torch.allclose(wa[k], wb[k], atol=1e-6) for k in wa)


def test_trl_resume_continues(workdir, tmp_path):
    _run(_cfg(workdir, tmp_path / "t", backend="trl", max_steps=2, save_steps=1, lr_scheduler_type="constant"))
    assert (tmp_path / "t" / "checkpoint-2").is_dir()
    _run(_cfg(workdir, tmp_path / "t", backend="trl", max_steps=3, save_steps=1, lr_scheduler_type="constant", resume=True))
    assert [r["step"] for r in read_metrics(tmp_path / "t")] == [1, 2, 3]


def test_lr_schedule_warms_up_linearly_as_transformers(workdir, tmp_path):
    """lr factor per step against transformers' own schedulers (the TRL backend uses those)."""
    from transformers import get_constant_schedule_with_warmup, get_linear_schedule_with_warmup

    for kind, make in (("linear", get_linear_schedule_with_warmup), ("constant_with_warmup", get_constant_schedule_with_warmup)):
        cfg = _cfg(workdir, tmp_path, lr_scheduler_type=kind, warmup_steps=4, max_steps=10)
        optim = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        sched = make(optim, 4, 10) if kind == "linear" else make(optim, 4)
        expected = []
        for _ in range(10):
            expected.append(optim.param_groups[0]["lr"])
            optim.step()
            sched.step()
        assert [cfg.lr_factor(s) for s in range(10)] == pytest.approx(expected)
    assert [cfg.lr_factor(s) for s in range(5)] == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0])
    assert _cfg(workdir, tmp_path, max_steps=4).lr_factor(1) == pytest.approx(0.75)  # plain linear decay, no warmup


def test_existing_checkpoints_need_resume(workdir, tmp_path):
    from ctxdata.errors import CtxdataError

    _run(_cfg(workdir, tmp_path / "c", max_steps=1, save_steps=1))
    with pytest.raises(CtxdataError, match="--resume"):
        _run(_cfg(workdir, tmp_path / "c", max_steps=1))


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"num_generations": 1}, "num_generations"),
        ({"pairs": []}, "--pairs"),
        ({"objective": "grpo", "lam": 0.01}, "--lam only"),
        ({"lam": 0.0}, "lam > 0"),
        ({"objective": "da-sft"}, "sft-steps"),
        ({"per_device_train_batch_size": 3}, "divisible"),
        ({"objective": "ppo"}, "contextrl, grpo"),
        ({"reward_funcs": ["bleu"]}, "exact_match"),
        ({"ca_loss": "softclip"}, "paper, upper-clip"),
        ({"ca_both_orders": True, "ca_batch_size": 3}, "must be even"),
        ({"lr_scheduler_type": "cosine"}, "constant_with_warmup"),
        ({"lr_scheduler_type": "constant", "warmup_steps": 2, "max_steps": 10}, "use constant_with_warmup"),
        ({"warmup_steps": 10, "max_steps": 10}, "warmup_steps"),
    ],
)
def test_config_rejects_bad_combinations(workdir, tmp_path, kw, match):
    with pytest.raises(ConfigError, match=match):
        _cfg(workdir, tmp_path, **kw)


def test_cli_runs_and_prints_summary(workdir, tmp_path):
    from typer.testing import CliRunner

    from ctxdata.cli.main import app

    args = ["train", "--pairs", workdir["pairs"], "--task-data", workdir["task"], "--model", workdir["model"], "--steps", "1",
            "--num-generations", "2", "--batch-size", "2", "--max-completion-length", "4", "--ca-batch-size", "2",
            "--ca-prefill", "The answer is", "-o", str(tmp_path / "cli")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "loss_ca" in result.output and (tmp_path / "cli" / "metrics.jsonl").exists()
    bad = CliRunner().invoke(app, ["train", "--task-data", workdir["task"], "--objective", "contextrl", "-o", str(tmp_path / "x")])
    assert bad.exit_code == 1 and "--pairs" in bad.output


def test_native_num_iterations_reuses_the_batch_off_policy(workdir, tmp_path):
    _run(_cfg(workdir, tmp_path / "mu", max_steps=2, num_iterations=2, learning_rate=5e-2, objective="grpo", lam=None))
    first, second = [r for r in read_metrics(tmp_path / "mu") if r["phase"] == "grpo"]
    # step 2 trains on step 1's completions against the frozen sampling log-probs: same rewards, ratio != 1
    assert second["reward_mean"] == first["reward_mean"] and second["completion_length"] == first["completion_length"]
    assert first["clip_fraction"] == 0.0 and math.isfinite(second["loss_grpo"])
    assert second["loss_grpo"] != pytest.approx(first["loss_grpo"], abs=1e-7)
