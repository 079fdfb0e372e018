"""The objective guard: ContextRL must teach the tiny model a trivially learnable selection task.

The easy synthetic task (`synth task --easy`: the decisive line is `answer: <value>`, one filler-free
trace per context, kind `test`, so the answer is `passed` or `failed`) is solved by finding the
context whose line repeats the given answer. A random 2-layer Llama starts at chance; after a short
contextrl run (the real native trainer, L_CA pairs in both orders) it must pick the anchor on
HELD-OUT pairs it never trained on. A regression in the loss, the letter ids, the answer position
or the pair batches shows up here as accuracy near 0.5.
"""

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from ctxdata.train.config import TrainConfig  # noqa: E402
from ctxdata.train.probe import ProbeConfig, run_probe  # noqa: E402
from ctxdata.train.synth_task import SynthTaskConfig, write_synth_task  # noqa: E402
from ctxdata.train.tiny import build_tiny_llama  # noqa: E402


@pytest.mark.slow
def test_contextrl_lifts_heldout_probe_accuracy_of_the_tiny_model(tmp_path):
    from ctxdata.train.grpo import train_native

    torch.set_num_threads(1)
    model = build_tiny_llama(tmp_path / "tiny")
    data = tmp_path / "task"
    write_synth_task(SynthTaskConfig(n=160, heldout=0.25, filler=0, kinds=("test",), easy=True), data)
    probe = ProbeConfig(batch_size=20)
    before = run_probe([data / "heldout"], [str(model)], probe)[str(model)]["overall"]
    cfg = TrainConfig(model=str(model), output_dir=str(tmp_path / "run"), task_data=str(data / "task.jsonl"), pairs=[str(data)],
                      objective="contextrl", lam=1.0, learning_rate=3e-3, lr_scheduler_type="constant", max_steps=150,
                      num_generations=2, per_device_train_batch_size=2, max_completion_length=2, ca_batch_size=8,
                      ca_both_orders=True, seed=0)
    train_native(cfg)
    after = run_probe([data / "heldout"], [str(tmp_path / "run" / "final")], probe)[str(tmp_path / "run" / "final")]["overall"]
    assert before["n"] == after["n"] == 40
    assert before["accuracy"] <= 0.65  # chance, give or take
    assert after["accuracy"] >= 0.85 and after["ci_low"] > before["ci_high"], (before, after)
