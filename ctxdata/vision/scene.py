"""Synthetic scenes: a scene graph of coloured shapes, its renderer, and exact questions about it.

A scene is plain JSON (so it travels inside a QA record and a task):

    {"size": 160, "background": [235, 232, 224],
     "shapes": [{"kind": "circle", "color": "red", "x": 40, "y": 52, "r": 16}, ...]}

Questions are asked through an `ask` spec, so any scene can be answered exactly:
    {"ask": "color", "kind": "circle"}               -> "red"      (only asked when the kind is unique)
    {"ask": "count", "kind": "square"}               -> "2"
    {"ask": "presence", "kind": "triangle", "color": "blue"} -> "yes" / "no"

The `procedural` editor edits the graph (`apply_edit`) and re-renders it, so the new answer is
`answer(new_scene, ask)`, known exactly, and the changed region is the edited shape's box.
"""

from __future__ import annotations

import copy
import random
from typing import Any

import numpy as np

from ctxdata.vision.templates import COLORS

KINDS = ("circle", "square", "triangle")
SCENE_COLORS = ("red", "green", "blue", "yellow", "purple", "orange")
BACKGROUND = (235, 232, 224)


def shape_box(shape: dict[str, Any]) -> list[float]:
    r = shape["r"]
    return [shape["x"] - r, shape["y"] - r, shape["x"] + r, shape["y"] + r]


def render(scene: dict[str, Any]):
    """The scene as an RGB PIL image (drawn at 4x and downsampled, so edges are anti-aliased)."""
    from PIL import Image, ImageDraw

    s, k = scene["size"], 4
    img = _background(scene, s * k)
    draw = ImageDraw.Draw(img)
    for x0, y0, x1, y1, *rgb in scene.get("clutter", []):  # faint background blobs, per family
        draw.ellipse([x0 * k, y0 * k, x1 * k, y1 * k], fill=tuple(rgb))
    for sh in scene["shapes"]:
        x, y, r = sh["x"] * k, sh["y"] * k, sh["r"] * k
        fill = COLORS[sh["color"]]
        if sh["kind"] == "circle":
            draw.ellipse([x - r, y - r, x + r, y + r], fill=fill, outline=(40, 40, 40), width=k)
        elif sh["kind"] == "square":
            draw.rectangle([x - r, y - r, x + r, y + r], fill=fill, outline=(40, 40, 40), width=k)
        else:
            draw.polygon([(x, y - r), (x + r, y + r), (x - r, y + r)], fill=fill, outline=(40, 40, 40), width=k)
    return img.resize((s, s), Image.LANCZOS)


def _background(scene: dict[str, Any], side: int):
    """A flat colour, or a two-colour diagonal gradient when the scene has `background2`
    (per-family backgrounds keep unrelated scenes apart in embedding space)."""
    from PIL import Image

    top = np.array(scene.get("background", BACKGROUND), dtype=np.float32)
    if "background2" not in scene:
        return Image.new("RGB", (side, side), tuple(int(v) for v in top))
    bottom = np.array(scene["background2"], dtype=np.float32)
    t = (np.add.outer(np.arange(side), np.arange(side)) / (2 * side - 2))[..., None]
    return Image.fromarray((top * (1 - t) + bottom * t).astype(np.uint8), "RGB")


def _free_spot(shapes: list[dict[str, Any]], size: int, r: int, rng: random.Random, tries: int = 200) -> tuple[int, int] | None:
    for _ in range(tries):
        x, y = rng.randint(r + 2, size - r - 2), rng.randint(r + 2, size - r - 2)
        if all((x - o["x"]) ** 2 + (y - o["y"]) ** 2 > (r + o["r"] + 4) ** 2 for o in shapes):
            return x, y
    return None


def random_scene(rng: random.Random, *, size: int = 160, n_shapes: tuple[int, int] = (3, 6)) -> dict[str, Any]:
    """A random scene of non-overlapping shapes."""
    shapes: list[dict[str, Any]] = []
    for _ in range(rng.randint(*n_shapes)):
        r = rng.randint(12, 20)
        spot = _free_spot(shapes, size, r, rng)
        if spot is not None:
            shapes.append({"kind": rng.choice(KINDS), "color": rng.choice(SCENE_COLORS), "x": spot[0], "y": spot[1], "r": r})
    background = [rng.randint(150, 250) for _ in range(3)]
    background2 = [rng.randint(60, 250) for _ in range(3)]
    clutter = []
    for _ in range(rng.randint(2, 5)):
        x0, y0 = rng.randint(-40, size - 20), rng.randint(-40, size - 20)
        w, h = rng.randint(30, 110), rng.randint(30, 110)
        clutter.append([x0, y0, x0 + w, y0 + h] + [min(255, c + rng.randint(-40, 40)) for c in background])
    return {"size": size, "background": background, "background2": background2, "clutter": clutter, "shapes": shapes}


def answer(scene: dict[str, Any], ask: dict[str, Any]) -> str:
    """The exact answer of `ask` on `scene`."""
    of_kind = [s for s in scene["shapes"] if s["kind"] == ask["kind"]]
    if ask["ask"] == "color":
        return of_kind[0]["color"] if len(of_kind) == 1 else "none"
    if ask["ask"] == "count":
        return str(len(of_kind))
    if ask["ask"] == "presence":
        return "yes" if any(s["color"] == ask["color"] for s in of_kind) else "no"
    raise ValueError(f"unknown ask {ask['ask']!r}")


def question_text(ask: dict[str, Any]) -> str:
    if ask["ask"] == "color":
        return f"What colour is the {ask['kind']}?"
    if ask["ask"] == "count":
        return f"How many {ask['kind']}s are there?"
    return f"Is there a {ask['color']} {ask['kind']}?"


def scene_questions(scene: dict[str, Any]) -> list[dict[str, Any]]:
    """QA rows (question, answer, type, region, scene) with exact answers, one per askable fact."""
    rows = []
    for kind in KINDS:
        of_kind = [s for s in scene["shapes"] if s["kind"] == kind]
        asks: list[tuple[dict[str, Any], Any]] = []
        if len(of_kind) == 1:
            asks.append(({"ask": "color", "kind": kind}, shape_box(of_kind[0])))
        if of_kind:
            asks.append(({"ask": "count", "kind": kind}, shape_box(of_kind[0])))
            asks.append(({"ask": "presence", "kind": kind, "color": of_kind[0]["color"]}, shape_box(of_kind[0])))
        for ask, region in asks:
            rows.append({"question": question_text(ask), "answer": answer(scene, ask), "type": ask["ask"], "region": region, "scene": {"graph": scene, "ask": ask}})
    return rows


def apply_edit(scene: dict[str, Any], ask: dict[str, Any], op: str, params: dict[str, Any], rng: random.Random) -> tuple[dict[str, Any], list[float]] | None:
    """Edit the graph for `op` on the shape `ask` is about; (new scene, changed box) or None."""
    new = copy.deepcopy(scene)
    targets = [s for s in new["shapes"] if s["kind"] == ask["kind"] and ("color" not in ask or ask["ask"] != "presence" or s["color"] == ask["color"])]
    if not targets:
        return None
    shape = targets[0]
    if op == "recolor":
        shape["color"] = params["target"]
        return new, shape_box(shape)
    if op == "remove":
        new["shapes"].remove(shape)
        return new, shape_box(shape)
    if op in ("duplicate", "add"):
        spot = _free_spot(new["shapes"], new["size"], shape["r"], rng)
        if spot is None:
            return None
        added = {**shape, "x": spot[0], "y": spot[1]}
        new["shapes"].append(added)
        return new, shape_box(added)
    return None
