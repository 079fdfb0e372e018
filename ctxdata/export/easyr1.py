"""EasyR1: a JSONL file for its `RLHFDataset` and a batch reward-function file.

Rows: problem (the prompt string; `<image>` placeholders, A first), answer (A/B), images (paths
relative to the JSONL's folder, PNGs under `images/`; the key is absent when no row has images,
since EasyR1 takes its presence to mean multimodal), pair_id, method. EasyR1 builds one user
message from `problem`, so there is no system prompt.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ctxdata.export.common import Target, image_cells, write_images, write_jsonl
from ctxdata.train.prompts import IMAGE_TOKEN, selection_text


def make(pair: dict[str, Any], index: int, config: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "problem": selection_text(pair, IMAGE_TOKEN),
        "answer": pair["label"],
        "pair_id": pair["pair_id"],
        "method": pair["method"],
    }
    if pair["domain"] == "vision":
        record["images"] = image_cells(pair)
    return record


def measure(counter, pair: dict[str, Any], record: dict[str, Any], config: Any) -> int:
    return len(counter.chat_ids([{"role": "user", "content": record["problem"]}]))


def write(records: list[dict[str, Any]], out: Path, config: Any) -> dict[str, Path]:
    write_images(records, out.parent)
    if any("images" in r for r in records):
        for r in records:
            r.setdefault("images", [])  # EasyR1 treats an empty list as text-only data
    write_jsonl(records, out)
    return {"data": out}


def settings(report: dict[str, Any]) -> list[str]:
    files = report["files"]
    data = Path(files["data"]).resolve()
    return [
        f"data.train_files={data}",
        "data.prompt_key=problem",
        "data.answer_key=answer",
        "data.image_key=images",
        f"data.image_dir={data.parent}",
        "data.format_prompt=null",
        f"data.max_prompt_length={report['max_prompt_length']}",
        "data.filter_overlong_prompts=true",
        f"worker.reward.reward_function={Path(files['scorer']).resolve()}:compute_score",
    ]


TARGET = Target(
    name="easyr1",
    docs="https://github.com/hiyouga/EasyR1/blob/main/verl/utils/dataset.py",
    out_help="a .jsonl file (images go to images/ beside it)",
    make=make,
    measure=measure,
    write=write,
    scorer="easyr1_reward.py",
    settings=settings,
    limit_note="RLHFDataset drops longer prompts (filter_overlong_prompts) or cuts them (truncation=right)",
)
