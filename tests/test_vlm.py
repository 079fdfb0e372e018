"""The vision path on a tiny random Qwen2-VL built offline: two-image probe, and TRL training."""

from __future__ import annotations

import json
import math

import pytest
from conftest import make_pair, png_bytes

from ctxdata.io import PairOutput
from ctxdata.pipeline import RunContext
from ctxdata.train.probe import ProbeConfig, load_probe_model, probe_rows, run_probe

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")


def write_pairs(path, pairs):
    out = PairOutput(path, {"test": str(path)}, command="test")
    out.write_task(0, [p.to_row() for p in pairs], RunContext())
    out.finalize(1, inputs=len(pairs), global_ctx=RunContext())
    return path


def vision_pairs(n=4):
    colours = [(200, 30, 30), (30, 30, 200), (30, 160, 30), (220, 200, 20)]
    from ctxdata.schema import image_cell

    return [
        make_pair(domain="vision", label="AB"[i % 2], anchor_id=f"v{i}",
                  context_a_image=image_cell(png_bytes(colours[i % 4])), context_b_image=image_cell(png_bytes(colours[(i + 1) % 4], size=(40, 24))))
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def tiny_vlm(tmp_path_factory):
    from ctxdata.train.tiny import build_tiny_vlm

    return build_tiny_vlm(tmp_path_factory.mktemp("vlm") / "qwen2vl")


def test_tiny_vlm_processor_expands_one_placeholder_per_image(tiny_vlm):
    from transformers import AutoProcessor

    from ctxdata.train.probe_model import prompt_text, row_images

    processor = AutoProcessor.from_pretrained(tiny_vlm)
    row = vision_pairs(1)[0].to_row()
    text = prompt_text(processor, row)
    assert text.count("<|vision_start|><|image_pad|><|vision_end|>") == 2
    enc = processor(text=[text], images=[row_images(row)], return_tensors="pt")
    assert enc["image_grid_thw"].shape == (2, 3)  # two images, one grid each
    n_pad = int((enc["input_ids"] == processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")).sum())
    assert n_pad == int(enc["image_grid_thw"].prod(dim=1).sum()) // 4  # merge_size 2 -> 4 patches per token


def test_probe_reads_two_image_pairs(tiny_vlm, tmp_path):
    rows = [p.to_row() for p in vision_pairs(4)] + [make_pair(anchor_id="c0").to_row()]
    model = load_probe_model(str(tiny_vlm))
    assert model.is_vision
    one, skipped = probe_rows(model, rows, ProbeConfig(mode="both", batch_size=1, max_new_tokens=2))
    three, _ = probe_rows(model, rows, ProbeConfig(mode="both", batch_size=3, max_new_tokens=2))
    assert skipped == {} and [r.pair_id for r in one] == [r["pair_id"] for r in rows]
    assert [r.delta for r in one] == pytest.approx([r.delta for r in three], abs=1e-4)
    assert all(math.isfinite(r.delta) and r.generated is not None for r in one)
    pairs = write_pairs(tmp_path / "vision", vision_pairs(4))
    summary = run_probe([pairs], [str(tiny_vlm)], ProbeConfig(batch_size=2))[str(tiny_vlm)]
    assert summary["by_domain"]["vision"]["n"] == 4 and summary["overall"]["n"] == 4


def test_swapping_the_images_flips_delta(tiny_vlm):
    """The images reach the logits: swapping context A and B changes the answer-position logits."""
    row = vision_pairs(1)[0].to_row()
    swapped = {**row, "context_a_image": row["context_b_image"], "context_b_image": row["context_a_image"], "pair_id": "swapped"}
    model = load_probe_model(str(tiny_vlm))
    config = ProbeConfig()
    logits = model.answer_logits([row, swapped], config)
    assert not torch.allclose(logits[0], logits[1])


@pytest.mark.slow
def test_tiny_vlm_trains_through_the_trl_backend(tiny_vlm, tmp_path):
    pytest.importorskip("trl")
    from transformers import AutoModelForImageTextToText

    from ctxdata.train.config import TrainConfig
    from ctxdata.train.trl_backend import train_trl

    pairs = write_pairs(tmp_path / "pairs", vision_pairs(4))
    for name, colour in (("red", (200, 30, 30)), ("blue", (30, 30, 200))):
        (tmp_path / f"{name}.png").write_bytes(png_bytes(colour))
    rows = [{"prompt": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What colour is the square?"}]}],
             "images": [str(tmp_path / f"{name}.png")], "answer": name} for name in ("red", "blue")]
    (tmp_path / "task.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    before = {k: v.clone() for k, v in AutoModelForImageTextToText.from_pretrained(tiny_vlm).state_dict().items()}
    cfg = TrainConfig(model=str(tiny_vlm), output_dir=str(tmp_path / "run"), task_data=str(tmp_path / "task.jsonl"), pairs=[str(pairs)],
                      objective="contextrl", backend="trl", num_generations=2, per_device_train_batch_size=2, max_steps=2,
                      max_completion_length=4, learning_rate=1e-2, ca_batch_size=2, lam=1.0)
    result = train_trl(cfg)
    steps = [r for r in result["history"] if r["phase"] == "grpo"]
    assert [r["step"] for r in steps] == [1, 2]
    assert all(math.isfinite(r["loss"]) and math.isfinite(r["loss_ca"]) for r in steps)
    after = AutoModelForImageTextToText.from_pretrained(tmp_path / "run" / "final").state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert any("visual" in k for k in changed), "the vision tower received gradient"
    assert any("language_model" in k or "lm_head" in k for k in changed)
