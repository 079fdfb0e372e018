"""Editors: make the confounder image by changing the decisive region so the answer changes.

`EDITORS` is a plain registry, keyed by `--edit-model`:

    procedural        edits a synthetic scene's graph and re-renders it (answer known exactly)
    classical         OpenCV/PIL edits inside the region: recolor, remove (cv2.inpaint), duplicate, text
    sdxl              diffusers StableDiffusionXLInpaintPipeline, masked by the region
    instruct-pix2pix  diffusers StableDiffusionInstructPix2PixPipeline (or its SDXL variant)

`auto` (the default) uses `procedural` for scene records and `classical` for photos. Every
editor is cheap to construct (dependencies checked, weights located) and loads its model on the
first `edit` call. `edit` returns an `EditResult`, or raises `EditFailed(reason)` for a row it
cannot edit (the build turns that into a candidate reject).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from ctxdata.errors import ConfigError
from ctxdata.vision.templates import EditPlan


@dataclass
class EditResult:
    """The edited image, where it changed, and what it now answers."""

    image: Any  # RGB PIL image, same size as the original
    region: Any  # [x0, y0, x1, y1] or mask: where the change is expected (the locality check uses it)
    new_answer: str


class EditFailed(Exception):
    """This row cannot be edited by this editor; `reason` becomes the candidate's reject reason."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


class Editor:
    """Base class: `edit(image, plan, *, record, seed) -> EditResult`."""

    name = "editor"
    method = "edit:editor"

    def edit(self, image, plan: EditPlan, *, record, seed: int) -> EditResult:  # pragma: no cover - abstract
        raise NotImplementedError

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_pipe"] = None  # models are rebuilt lazily wherever the editor lands
        return state


class ProceduralEditor(Editor):
    """Scene-graph edits for the synthetic generator: the new answer is recomputed, not guessed."""

    name, method = "procedural", "edit:procedural"

    def edit(self, image, plan: EditPlan, *, record, seed: int) -> EditResult:
        from ctxdata.vision import scene as sc

        if not record.scene:
            raise EditFailed("not_a_scene", "the procedural editor only edits synthetic scenes")
        graph, ask = record.scene["graph"], record.scene["ask"]
        edited = sc.apply_edit(graph, ask, plan.op, plan.params, random.Random(seed))
        if edited is None:
            raise EditFailed("edit_not_applicable", f"{plan.op} does not apply to {ask}")
        new_graph, box = edited
        return EditResult(sc.render(new_graph), box, sc.answer(new_graph, ask))


def _classical(**kw: Any) -> Editor:
    from ctxdata.vision.editors.classical import ClassicalEditor

    return ClassicalEditor(**kw)


def _sdxl(**kw: Any) -> Editor:
    from ctxdata.vision.editors.diffusion import SDXLInpaintEditor

    return SDXLInpaintEditor(**kw)


def _pix2pix(**kw: Any) -> Editor:
    from ctxdata.vision.editors.diffusion import InstructPix2PixEditor

    return InstructPix2PixEditor(**kw)


EDITORS = {
    "procedural": lambda **kw: ProceduralEditor(),
    "classical": _classical,
    "sdxl": _sdxl,
    "instruct-pix2pix": _pix2pix,
}


def make_editor(name: str, *, model_path: str | None = None, steps: int | None = None, device: str = "cpu") -> Editor:
    """The editor `name` from EDITORS (diffusion editors locate their weights here, load later)."""
    if name not in EDITORS:
        raise ConfigError(f"unknown --edit-model {name!r}; valid: auto, {', '.join(EDITORS)}")
    if name in ("sdxl", "instruct-pix2pix"):
        return EDITORS[name](model_path=model_path, steps=steps, device=device)
    return EDITORS[name]()


class EditorChoice:
    """`auto`: procedural for scene records, classical for photos; a named editor: that one for all rows."""

    def __init__(self, name: str = "auto", **kw: Any):
        if name != "auto" and name not in EDITORS:
            raise ConfigError(f"unknown --edit-model {name!r}; valid: auto, {', '.join(EDITORS)}")
        self.name = name
        self.procedural = ProceduralEditor()
        self.photo = make_editor("classical" if name == "auto" else name, **kw)

    def for_record(self, record) -> Editor:
        if self.name == "auto" and record.scene:
            return self.procedural
        return self.photo
