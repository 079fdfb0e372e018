"""The official ContextRL trainers (sijial430/ContextAwareRL): their context-awareness (CA) rows.

`--out` is a folder; two files are written, one per trainer:

    agentic.jsonl     coding pairs, for the SkyRL trainer's CA reader (`ct_dataset.py`,
                      `data.choose_trajectory_data`): prompt (the selection prompt as ONE string; the
                      reader wraps it in a user message itself), correct_answer (A/B)
    multimodal.jsonl  vision pairs, for the EasyR1 fork's choose-image rows (`data_type=choose_image`:
                      more than one image and answer A/B): problem (with one `<image>` per image, A
                      first), images (paths relative to the folder), answer (A/B)

The fork appends "\\nOutput A or B directly." to a choose-image problem itself, so `problem` ends
at the question and does not carry that instruction twice. The agentic reader appends its prefill
("The correct option is") after the chat template; prompt lengths are measured with it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ctxdata.export.common import Target, image_cells, write_images, write_jsonl
from ctxdata.train.prompts import IMAGE_TOKEN, selection_text

AGENTIC_FILE = "agentic.jsonl"
MULTIMODAL_FILE = "multimodal.jsonl"
FORK_SUFFIX = "\nOutput A or B directly."  # what the EasyR1 fork appends to a choose-image problem
PREFILL = "The correct option is"  # the SkyRL CA reader's default `choose_trajectory_prefill`
QUESTION = "Which context supports the answer?"


def make(pair: dict[str, Any], index: int, config: Any) -> dict[str, Any]:
    base = {"pair_id": pair["pair_id"], "method": pair["method"]}
    if pair["domain"] == "vision":
        text = selection_text(pair, IMAGE_TOKEN)
        problem = text[: text.rindex(QUESTION) + len(QUESTION)]  # the fork adds the output instruction
        return {**base, "problem": problem, "images": image_cells(pair), "answer": pair["label"]}
    return {**base, "prompt": selection_text(pair), "correct_answer": pair["label"]}


def measure(counter, pair: dict[str, Any], record: dict[str, Any], config: Any) -> int:
    if "problem" in record:  # the fork's choose-image message, text tokens only
        return len(counter.chat_ids([{"role": "user", "content": record["problem"] + FORK_SUFFIX}]))
    # as ct_dataset.py: template with enable_thinking=False, then the prefill, tokenised as one string
    text = counter.chat_text([{"role": "user", "content": record["prompt"]}], enable_thinking=False) + PREFILL
    return counter.count(text)


def write(records: list[dict[str, Any]], out: Path, config: Any) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    agentic = [r for r in records if "prompt" in r]
    multimodal = [r for r in records if "problem" in r]
    files: dict[str, Path] = {}
    for name, rows in ((AGENTIC_FILE, agentic), (MULTIMODAL_FILE, multimodal)):
        stale = out / name
        if not rows:
            stale.unlink(missing_ok=True)  # a file from an earlier export would otherwise look current
            continue
        if rows is multimodal:
            write_images(rows, out)
        write_jsonl(rows, out / name)
        files["agentic" if rows is agentic else "multimodal"] = out / name
    return files


def settings(report: dict[str, Any]) -> list[str]:
    files, n = report["files"], report["max_prompt_length"]
    lines = []
    if "agentic" in files:
        lines += [
            "# SkyRL CA trainer (main_mini_swe_ct): "
            f"data.choose_trajectory_data=\"['{Path(files['agentic']).resolve()}']\" "
            f"data.choose_trajectory_max_prompt_length={n}"
        ]
    if "multimodal" in files:
        folder = Path(files["multimodal"]).resolve().parent
        lines += [
            f"# EasyR1 fork: put {MULTIMODAL_FILE} beside your task rows; data.train_files=<that folder> "
            f"data.prompt_key=problem data.answer_key=answer data.image_dir={folder} data.max_prompt_length={n}"
        ]
    return lines


TARGET = Target(
    name="contextrl-paper",
    docs="https://github.com/sijial430/ContextAwareRL (ct_dataset.py; Training/EasyR1/verl/utils/dataset.py)",
    out_help="a folder (agentic.jsonl, multimodal.jsonl, images/)",
    make=make,
    measure=measure,
    write=write,
    scorer=None,  # both trainers score CA rows by the A/B logits themselves
    settings=settings,
    limit_note="both CA readers drop rows longer than their max_prompt_length",
)
