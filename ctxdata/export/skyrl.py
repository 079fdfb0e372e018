"""SkyRL: a JSONL file for its `PromptDataset` and a registered skyrl-gym environment that scores it.

Rows: prompt (chat messages), env_class (`ctxdata_selection`, defined and registered by the
`skyrl_env.py` written beside the data), reward_spec{method, ground_truth}, data_source,
correct_answer, extra_info. Vision rows put the images in the user message as `image_url` parts
holding PNG data URIs, A then B, as SkyRL's own VLM example (Geometry-3K) does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ctxdata.export.common import (
    Target,
    extra_info,
    image_cells,
    measure_chat,
    messages,
    png_data_uri,
    write_jsonl,
)
from ctxdata.train.prompts import INSTRUCTION, selection_text


def vision_content(pair: dict[str, Any]) -> list[dict[str, Any]]:
    a, b = (png_data_uri(cell["bytes"]) for cell in image_cells(pair))
    head = f"Question:\n{pair['query']}\n\nAnswer:\n{pair['answer']}\n\nContext A:"
    return [
        {"type": "text", "text": head},
        {"type": "image_url", "image_url": {"url": a}},
        {"type": "text", "text": "Context B:"},
        {"type": "image_url", "image_url": {"url": b}},
        {"type": "text", "text": INSTRUCTION},
    ]


def make(pair: dict[str, Any], index: int, config: Any) -> dict[str, Any]:
    content = vision_content(pair) if pair["domain"] == "vision" else selection_text(pair)
    return {
        "data_source": config.data_source,
        "prompt": messages(content, config.system_prompt),
        "env_class": config.env_class,
        "reward_spec": {"method": "rule", "ground_truth": pair["label"]},
        "correct_answer": pair["label"],
        "extra_info": extra_info(pair, index, config),
    }


def write(records: list[dict[str, Any]], out: Path, config: Any) -> dict[str, Path]:
    write_jsonl(records, out)
    return {"data": out}


def settings(report: dict[str, Any]) -> list[str]:
    files = report["files"]
    lines = [
        f"python {Path(files['scorer']).resolve()}",
        f"data.train_data=\"['{Path(files['data']).resolve()}']\"",
        f"environment.env_class={report['env_class']}",
        f"trainer.max_prompt_length={report['max_prompt_length']}",
    ]
    if report["vision_rows"]:
        lines += ["generator.vision_language_generator=true", "trainer.remove_microbatch_padding=false"]
    return lines


TARGET = Target(
    name="skyrl",
    docs="https://skyrl.readthedocs.io/en/latest/datasets/dataset-preparation.html",
    out_help="a .jsonl file",
    make=make,
    measure=measure_chat,
    write=write,
    scorer="skyrl_env.py",
    settings=settings,
    limit_note="PromptDataset drops prompts longer than trainer.max_prompt_length",
)
