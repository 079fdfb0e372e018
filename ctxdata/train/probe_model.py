"""A model as the probe sees it: selection prompts in, answer-position logits or completions out.

Text models are loaded with `models.load_causal_lm`; a folder whose config has a
`vision_config` (Qwen2-VL, Idefics3, ...) is loaded with `AutoModelForImageTextToText` and its
`AutoProcessor`, and vision pairs pass their two context images to the processor in A, B order.
"""

from __future__ import annotations

import io
import json
from typing import Any, Sequence

from ctxdata.errors import CtxdataError
from ctxdata.train.prompts import selection_messages, selection_text


def prompt_text(tokenizer_or_processor: Any, row: dict[str, Any], system: bool = False, prefill: str = "") -> str:
    """The selection prompt through the chat template (plain text + "Answer:" when there is none) + `prefill`."""
    if getattr(tokenizer_or_processor, "chat_template", None):
        messages = selection_messages(row, system=system)
        return tokenizer_or_processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False) + prefill
    return selection_text(row) + "\nAnswer:" + prefill


def row_images(row: dict[str, Any]) -> list[Any]:
    """Context A and B of a vision row as RGB PIL images."""
    from PIL import Image

    images = []
    for cell in (row["context_a_image"], row["context_b_image"]):
        if not cell or not cell.get("bytes"):
            raise CtxdataError(f"vision pair {row['pair_id']} has a context image without bytes")
        images.append(Image.open(io.BytesIO(cell["bytes"])).convert("RGB"))
    return images


class ProbeModel:
    """A loaded causal LM or VLM plus what the probe needs: letter ids, batching, padding side."""

    def __init__(self, model: Any, tokenizer: Any, processor: Any = None, name: str = "") -> None:
        from ctxdata.train.losses import letter_token_ids

        self.model = model.eval()
        self.tokenizer = tokenizer
        self.processor = processor
        self.name = name
        self.is_vision = processor is not None
        # Left padding puts every prompt's last token at position -1: the answer position.
        self.tokenizer.padding_side = "left"
        self.letter_ids = letter_token_ids(tokenizer)

    def cannot_read(self, row: dict[str, Any], config: Any) -> str | None:
        """Why this model cannot be probed on `row` (a skip reason), or None."""
        if row["domain"] == "vision" and not self.is_vision:
            return "vision pair on a text-only model"
        n_tokens = len(self.tokenizer.encode(prompt_text(self._templater, row, config.system_prompt, config.prefill), add_special_tokens=False))
        if n_tokens > config.max_prompt_tokens:
            return "prompt longer than max_prompt_tokens"
        return None

    @property
    def _templater(self) -> Any:
        return self.processor if self.is_vision else self.tokenizer

    def inputs(self, rows: Sequence[dict[str, Any]], config: Any) -> dict[str, Any]:
        """Left-padded model inputs for one batch (all rows of one domain)."""
        texts = [prompt_text(self._templater, r, config.system_prompt, config.prefill) for r in rows]
        if self.is_vision and rows[0]["domain"] == "vision":
            self.processor.tokenizer.padding_side = "left"
            return dict(self.processor(text=texts, images=[row_images(r) for r in rows], padding=True, return_tensors="pt"))
        return dict(self.tokenizer(texts, padding=True, add_special_tokens=False, return_tensors="pt"))

    def answer_logits(self, rows: Sequence[dict[str, Any]], config: Any):
        """[B, V] float logits at the answer position (the token after the prompt)."""
        import torch

        inputs = self.inputs(rows, config)
        if not self.is_vision:
            # Explicit positions: a left-padded prompt gets the same positions as when alone.
            mask = inputs["attention_mask"]
            inputs["position_ids"] = (mask.cumsum(-1) - 1).clamp(min=0)
        with torch.inference_mode():
            logits = self.model(**inputs, logits_to_keep=1).logits  # [B, 1, V]: only the answer position
        return logits[:, -1, :].float()

    def generate(self, rows: Sequence[dict[str, Any]], config: Any) -> list[str]:
        """Greedy completions (special tokens stripped), one per row."""
        import torch

        inputs = self.inputs(rows, config)
        pad = self.tokenizer.pad_token_id
        with torch.inference_mode():
            out = self.model.generate(**inputs, max_new_tokens=config.max_new_tokens, do_sample=False, pad_token_id=pad)
        new = out[:, inputs["input_ids"].shape[1] :]  # [B, <= max_new_tokens]
        return self.tokenizer.batch_decode(new, skip_special_tokens=True)


def is_vision_folder(path) -> bool:
    config = json.loads((path / "config.json").read_text())
    return "vision_config" in config


def load_probe_model(spec: str) -> ProbeModel:
    """Resolve `spec` offline (alias, folder, cached hub id) and load it for probing."""
    from ctxdata._deps import require
    from ctxdata.models import load_causal_lm, resolve_model

    path = resolve_model(spec)
    if not is_vision_folder(path):
        model, tokenizer = load_causal_lm(spec)
        return ProbeModel(model, tokenizer, name=spec)
    torch = require("torch")
    transformers = require("transformers")
    processor = transformers.AutoProcessor.from_pretrained(path)
    model = transformers.AutoModelForImageTextToText.from_pretrained(path, dtype=torch.float32)
    tokenizer = processor.tokenizer
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return ProbeModel(model, tokenizer, processor=processor, name=spec)
