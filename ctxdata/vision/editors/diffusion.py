"""Diffusion editors: SDXL inpainting (masked by the decisive region) and InstructPix2Pix.

Weights come from `--edit-model-path` (a diffusers folder with model_index.json) or the local HF
cache (`local_files_only=True`); nothing is downloaded at run time. When neither has them the
editor fails AT CONSTRUCTION with a `ModelNotFoundError` naming the repo to download. The
pipeline itself is loaded on the first `edit` call.

After the model runs, pixels outside the (slightly dilated) region are copied back from the
original: a VAE round trip changes every pixel a little, and the pair must differ only where the
answer is decided (the `edit_locality` check measures exactly that).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ctxdata._deps import check
from ctxdata.errors import ModelNotFoundError
from ctxdata.vision.edit import Editor, EditFailed, EditResult
from ctxdata.vision.images import region_mask
from ctxdata.vision.templates import EditPlan

SDXL_INPAINT_REPO = "diffusers/stable-diffusion-xl-1.0-inpainting-0.1"
PIX2PIX_REPO = "timbrooks/instruct-pix2pix"


def locate_weights(model_path: str | None, repo_id: str, what: str) -> Path:
    """A local diffusers folder: the given path, or the repo's snapshot in the local HF cache."""
    hint = (f"Download it once with `huggingface-cli download {repo_id} --local-dir ./{repo_id.split('/')[-1]}` "
            f"and pass --edit-model-path ./{repo_id.split('/')[-1]}")
    if model_path:
        path = Path(model_path)
        if not (path / "model_index.json").is_file():
            raise ModelNotFoundError(f"{what}: {path} is not a diffusers pipeline folder (no model_index.json). {hint}")
        return path
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:  # LocalEntryNotFoundError, offline errors, no hub at all
        raise ModelNotFoundError(f"{what}: no --edit-model-path given and {repo_id} is not in the local HF cache. {hint}") from None


def inpaint_prompt(plan: EditPlan) -> str:
    """What the masked area should show after the edit (inpainting prompts describe content)."""
    subject = plan.params.get("subject", "object")
    if plan.op == "recolor":
        return f"a {plan.params['target']} {subject}, photorealistic, same lighting"
    if plan.op == "remove":
        return "empty background, nothing there, seamless, photorealistic"
    if plan.op in ("duplicate", "add"):
        return f"a {subject}, photorealistic"
    if plan.op == "text":
        return f'the text "{plan.params.get("text", plan.new_answer)}", clear lettering'
    return plan.instruction


class DiffusionEditor(Editor):
    repo_id = ""
    default_steps = 30

    def __init__(self, *, model_path: str | None = None, steps: int | None = None, device: str = "cpu"):
        check("torch", "diffusers", "transformers")
        self.path = locate_weights(model_path, self.repo_id, f"--edit-model {self.name}")
        self.steps, self.device = steps or self.default_steps, device
        self._pipe: Any = None

    def pipeline(self):
        if self._pipe is None:
            import diffusers
            import transformers

            diffusers.utils.logging.set_verbosity_error()  # no per-component load bars in our progress output
            diffusers.utils.logging.disable_progress_bar()
            transformers.utils.logging.set_verbosity_error()
            pipe = self._load()
            self._pipe = pipe if self.device == "cpu" else pipe.to(self.device)
            self._pipe.set_progress_bar_config(disable=True)
        return self._pipe

    def _load(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def _generator(self, seed: int):
        import torch

        return torch.Generator("cpu").manual_seed(int(seed))

    @staticmethod
    def _work_size(size: tuple[int, int], multiple: int = 8) -> tuple[int, int]:
        return max(multiple, size[0] // multiple * multiple), max(multiple, size[1] // multiple * multiple)

    @staticmethod
    def _paste_back(original, edited, region) -> Any:
        """The edited pixels inside the (6 px dilated) region, the original everywhere else."""
        from PIL import Image

        edited = edited.convert("RGB").resize(original.size, Image.LANCZOS)
        if region is None:
            return edited
        mask = Image.fromarray(region_mask(original.size, region, pad=6).astype(np.uint8) * 255, "L")
        return Image.composite(edited, original, mask)


class SDXLInpaintEditor(DiffusionEditor):
    name, method, repo_id = "sdxl", "edit:sdxl", SDXL_INPAINT_REPO

    def _load(self):
        from diffusers import StableDiffusionXLInpaintPipeline

        return StableDiffusionXLInpaintPipeline.from_pretrained(str(self.path), local_files_only=True)

    def edit(self, image, plan: EditPlan, *, record, seed: int) -> EditResult:
        from PIL import Image

        if record.region is None:
            raise EditFailed("no_region", "sdxl inpainting needs the row's decisive region as its mask")
        size = self._work_size(image.size)
        mask = Image.fromarray(region_mask(image.size, record.region, pad=4).astype(np.uint8) * 255, "L")
        out = self.pipeline()(
            prompt=inpaint_prompt(plan), image=image.resize(size), mask_image=mask.resize(size), width=size[0], height=size[1],
            num_inference_steps=self.steps, strength=0.99, generator=self._generator(seed), output_type="pil",
        ).images[0]
        return EditResult(self._paste_back(image, out, record.region), record.region, plan.new_answer)


class InstructPix2PixEditor(DiffusionEditor):
    """Driven by the instruction alone; the SDXL variant is used when the folder holds one."""

    name, method, repo_id, default_steps = "instruct-pix2pix", "edit:instruct-pix2pix", PIX2PIX_REPO, 20

    def _load(self):
        import diffusers

        class_name = json.loads((self.path / "model_index.json").read_text()).get("_class_name", "")
        if "XL" in class_name and hasattr(diffusers, "StableDiffusionXLInstructPix2PixPipeline"):
            return diffusers.StableDiffusionXLInstructPix2PixPipeline.from_pretrained(str(self.path), local_files_only=True)
        return diffusers.StableDiffusionInstructPix2PixPipeline.from_pretrained(
            str(self.path), local_files_only=True, safety_checker=None, requires_safety_checker=False)

    def edit(self, image, plan: EditPlan, *, record, seed: int) -> EditResult:
        size = self._work_size(image.size)
        out = self.pipeline()(
            prompt=plan.instruction, image=image.resize(size), num_inference_steps=self.steps, image_guidance_scale=1.5,
            guidance_scale=7.5, generator=self._generator(seed), output_type="pil",
        ).images[0]
        return EditResult(self._paste_back(image, out, record.region), record.region, plan.new_answer)
