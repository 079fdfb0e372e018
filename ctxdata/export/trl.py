"""TRL: a `datasets.save_to_disk` folder for `GRPOTrainer` and a reward function with TRL's signature.

Columns: prompt (conversational), answer (A/B), pair_id, method, domain, and images
(`Sequence(Image())`) when any row has images; the prompt content is then a list of parts with
one `{"type": "image"}` per image, and text rows use list-of-parts content too (one Arrow type).
TRL (1.16) does not truncate prompts: the model's context must hold the longest prompt plus
`max_completion_length`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ctxdata.export.common import Target, image_cells, measure_chat
from ctxdata.train.prompts import selection_messages


def make(pair: dict[str, Any], index: int, config: Any) -> dict[str, Any]:
    record = {
        "prompt": selection_messages(pair, system=config.system_prompt),
        "answer": pair["label"],
        "pair_id": pair["pair_id"],
        "method": pair["method"],
        "domain": pair["domain"],
    }
    if pair["domain"] == "vision":
        record["images"] = [cell["bytes"] for cell in image_cells(pair)]
    return record


def write(records: list[dict[str, Any]], out: Path, config: Any) -> dict[str, Path]:
    from datasets import Dataset, Image, Sequence

    structured = any("images" in r for r in records)
    if structured:  # one Arrow type for the column: every content becomes a list of parts
        for r in records:
            r["prompt"] = [
                {
                    **m,
                    "content": m["content"]
                    if isinstance(m["content"], list)
                    else [{"type": "text", "text": m["content"]}],
                }
                for m in r["prompt"]
            ]
            r.setdefault("images", [])
    ds = Dataset.from_list(records)
    if structured:
        ds = ds.cast_column("images", Sequence(Image()))
    ds.save_to_disk(str(out))
    return {"data": out}


def settings(report: dict[str, Any]) -> list[str]:
    files = report["files"]
    scorer = Path(files["scorer"]).resolve()
    return [
        f"import sys; sys.path.insert(0, {str(scorer.parent)!r}); from trl_reward import selection_reward",
        f"train_dataset = datasets.load_from_disk({str(Path(files['data']).resolve())!r})",
        "trainer = trl.GRPOTrainer(model=..., reward_funcs=[selection_reward], train_dataset=train_dataset,"
        " args=trl.GRPOConfig(...))",
        f"# the longest prompt is {report['prompt_tokens']['max']} tokens:"
        " the model's context must hold it plus max_completion_length",
    ]


TARGET = Target(
    name="trl",
    docs="https://huggingface.co/docs/trl/main/en/dataset_formats",
    out_help="a folder (datasets.save_to_disk)",
    make=make,
    measure=measure_chat,
    write=write,
    scorer="trl_reward.py",
    settings=settings,
    limit_note="GRPOTrainer does not truncate prompts; the model's context window is the limit",
)
