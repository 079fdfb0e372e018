"""verl: a Parquet file for `RLHFDataset` and a `compute_score` module for `custom_reward_function`.

Columns: data_source, prompt (chat messages; vision text carries one `<image>` per image, A first),
ability, reward_model{style, ground_truth}, extra_info{split, index, pair_id, ...}, and images
(list of {bytes, path}) when any row has images (null for text rows in a mixed file).
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
)
from ctxdata.train.prompts import IMAGE_TOKEN, selection_text

ABILITY = "context_selection"


def make(pair: dict[str, Any], index: int, config: Any) -> dict[str, Any]:
    record = {
        "data_source": config.data_source,
        "prompt": messages(selection_text(pair, IMAGE_TOKEN), config.system_prompt),
        "ability": ABILITY,
        "reward_model": {"style": "rule", "ground_truth": pair["label"]},
        "extra_info": extra_info(pair, index, config),
    }
    if pair["domain"] == "vision":
        record["images"] = image_cells(pair)
    return record


def write(records: list[dict[str, Any]], out: Path, config: Any) -> dict[str, Path]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if any("images" in r for r in records):
        for r in records:
            r.setdefault("images", None)  # text rows: null (verl skips the image path for them)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    pq.write_table(pa.Table.from_pylist(records), tmp)
    tmp.replace(out)
    return {"data": out}


def settings(report: dict[str, Any]) -> list[str]:
    files = report["files"]
    lines = [
        f"data.train_files={Path(files['data']).resolve()}",
        "data.prompt_key=prompt",
        f"data.max_prompt_length={report['max_prompt_length']}",
        "data.filter_overlong_prompts=true",
        "data.truncation=error",
        f"reward.custom_reward_function.path={Path(files['scorer']).resolve()}",
        "reward.custom_reward_function.name=compute_score",
    ]
    if report["vision_rows"]:
        lines.insert(2, "data.image_key=images")
    return lines


TARGET = Target(
    name="verl",
    docs="https://verl.readthedocs.io/en/latest/preparation/prepare_data.html",
    out_help="a .parquet file",
    make=make,
    measure=measure_chat,
    write=write,
    scorer="verl_reward.py",
    settings=settings,
    limit_note="RLHFDataset drops longer prompts (filter_overlong_prompts) or raises (truncation=error)",
)
