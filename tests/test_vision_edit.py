"""Editors: templates, scene edits with exact answers, classical ops, and tiny real diffusion pipelines."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from ctxdata.errors import ConfigError, ModelNotFoundError
from ctxdata.vision.checks import edit_change_stats
from ctxdata.vision import scene as sc
from ctxdata.vision.edit import EDITORS, EditFailed, EditorChoice, make_editor
from ctxdata.vision.pool import QARecord
from ctxdata.vision.templates import EditPlan, infer_type, load_instructions, normalize_answer, plan_from_template


def scene_record(ask_type="color", seed=3):
    rng = random.Random(seed)
    while True:
        graph = sc.random_scene(rng)
        rows = [r for r in sc.scene_questions(graph) if r["type"] == ask_type]
        if rows:
            r = rows[0]
            return sc.render(graph), QARecord("s.png", r["question"], r["answer"], r["type"], r["region"], r["scene"])


def test_templates_per_type_give_instruction_and_new_answer():
    rng = random.Random(0)
    color = plan_from_template("color", "What colour is the car?", "Red", rng)
    assert color.op == "recolor" and color.new_answer != "red" and color.new_answer in color.instruction
    count = plan_from_template("count", "How many coins are there?", "three", rng)
    assert count.new_answer in ("2", "4")
    assert plan_from_template("presence", "Is there a cup?", "yes", rng).new_answer == "no"
    assert plan_from_template("presence", "Is there a cup?", "no", rng) is None
    text = plan_from_template("text", "What number is written on the sign?", "7", rng)
    assert text.op == "text" and text.new_answer.isdigit() and text.new_answer != "7"
    assert plan_from_template("other", "Why?", "because", rng) is None
    assert infer_type("What color is the bus?", "grey") == "color" and normalize_answer("Four.") == "4"


def test_instructions_file_overrides(tmp_path):
    path = tmp_path / "ins.jsonl"
    path.write_text(json.dumps({"image": "a.png", "question": "What colour is it?", "instruction": "paint it green", "new_answer": "green",
                                "op": "recolor", "params": {"target": "green"}}) + "\n")
    plans = load_instructions(path)
    assert plans[("a.png", "what colour is it")] == EditPlan("recolor", "paint it green", "green", {"target": "green"})


@pytest.mark.parametrize("ask_type,op", [("color", "recolor"), ("count", "duplicate"), ("count", "remove"), ("presence", "remove")])
def test_procedural_edit_answer_is_exact(ask_type, op):
    image, rec = scene_record(ask_type)
    params = {"target": next(c for c in sc.SCENE_COLORS if c != rec.answer)} if op == "recolor" else {}
    result = EDITORS["procedural"]().edit(image, EditPlan(op, "x", "?", params), record=rec, seed=0)
    assert result.new_answer == sc.answer(sc.apply_edit(rec.scene["graph"], rec.scene["ask"], op, params, random.Random(0))[0], rec.scene["ask"])
    assert result.new_answer != rec.answer or op == "remove"
    inside, outside = edit_change_stats(image, result.image, result.region)
    assert inside > 0.05 and outside < 0.01


def test_procedural_refuses_photos():
    with pytest.raises(EditFailed) as exc:
        EDITORS["procedural"]().edit(None, EditPlan("recolor", "", "", {}), record=QARecord("a", "q", "a", "color"), seed=0)
    assert exc.value.reason == "not_a_scene"


@pytest.mark.parametrize("op", ["recolor", "remove", "duplicate", "text"])
def test_classical_ops_change_only_the_region(op):
    image, rec = scene_record("color")
    params = {"recolor": {"target": "cyan"}, "text": {"text": "42"}}.get(op, {})
    result = make_editor("classical").edit(image, EditPlan(op, "x", "new", params), record=rec, seed=0)
    assert result.image.size == image.size and result.new_answer == "new"
    inside, outside = edit_change_stats(image, result.image, result.region)
    assert inside > 0.05, op
    assert outside < 0.01, op
    # not one pixel moves outside the region, not even by one level: no whole-image fingerprint of the edit
    from ctxdata.vision.images import changed_pixels, region_mask

    assert not changed_pixels(image, result.image, tol=0)[~region_mask(image.size, result.region)].any(), op


def test_classical_recolor_reaches_the_target_hue():
    image, rec = scene_record("color")
    result = make_editor("classical").edit(image, EditPlan("recolor", "x", "blue", {"target": "blue"}), record=rec, seed=0)
    x0, y0, x1, y1 = (int(v) for v in rec.region)
    cx, cy = (x0 + x1) // 2, (y0 + y1) // 2 + 3
    r, g, b = result.image.getpixel((cx, cy))
    assert b > r and b > g, (r, g, b)


def test_classical_needs_a_region_and_registry_errors():
    with pytest.raises(EditFailed):
        make_editor("classical").edit(sc.render(sc.random_scene(random.Random(0))), EditPlan("recolor", "", "", {"target": "red"}),
                                      record=QARecord("a", "q", "a", "color"), seed=0)
    with pytest.raises(ConfigError, match="valid: auto, procedural, classical, sdxl, instruct-pix2pix"):
        make_editor("dalle")
    image, rec = scene_record()
    assert EditorChoice("auto").for_record(rec).name == "procedural"
    assert EditorChoice("classical").for_record(rec).name == "classical"


def test_missing_diffusion_weights_fail_at_construction(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(ModelNotFoundError, match="huggingface-cli download diffusers/stable-diffusion-xl-1.0-inpainting-0.1"):
        make_editor("sdxl")
    with pytest.raises(ModelNotFoundError, match="no model_index.json"):
        make_editor("instruct-pix2pix", model_path=str(tmp_path))


@pytest.fixture(scope="module")
def tiny_pipelines(tmp_path_factory):
    from ctxdata.vision.editors.tiny import build_tiny_instruct_pix2pix, build_tiny_sdxl_inpaint

    root = tmp_path_factory.mktemp("tiny-diffusion")
    return {"sdxl": build_tiny_sdxl_inpaint(root / "sdxl"), "instruct-pix2pix": build_tiny_instruct_pix2pix(root / "p2p")}


def test_clip_tokenizer_from_open_clip_bpe_matches_open_clip(tmp_path):
    from open_clip.tokenizer import SimpleTokenizer
    from transformers import CLIPTokenizer

    from ctxdata.vision.editors.tiny import write_clip_tokenizer

    write_clip_tokenizer(tmp_path)
    hf = CLIPTokenizer(str(tmp_path / "vocab.json"), str(tmp_path / "merges.txt"))
    text = "change the colour of the motorcycle to blue"
    assert hf(text)["input_ids"][1:-1] == SimpleTokenizer().encode(text)
    assert len(hf) == 49408


@pytest.mark.slow
@pytest.mark.parametrize("name", ["sdxl", "instruct-pix2pix"])
def test_tiny_diffusion_editors_end_to_end(tiny_pipelines, name):
    image = sc.render(sc.random_scene(random.Random(1), size=64))
    rec = QARecord("s.png", "What colour is the circle?", "red", "color", region=[8, 8, 40, 40])
    plan = plan_from_template("color", rec.question, rec.answer, random.Random(0))
    editor = make_editor(name, model_path=str(tiny_pipelines[name]), steps=2)
    first = editor.edit(image, plan, record=rec, seed=7)
    again = editor.edit(image, plan, record=rec, seed=7)
    assert first.image.size == image.size and first.new_answer == plan.new_answer
    assert np.array_equal(np.asarray(first.image), np.asarray(again.image)), "same seed -> same pixels"
    inside, outside = edit_change_stats(image, first.image, rec.region)
    assert inside > 0.2 and outside == 0.0  # random weights repaint the region; paste-back keeps the rest
