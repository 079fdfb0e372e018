"""Export a pair folder as the selection task in the dataset format of an RL trainer.

Every exported row is the selection prompt (`prompts.selection_text` / `selection_messages`) with
ground truth = the anchor's letter ("A"/"B"). Vision pairs carry their two context images, A first,
and the text has one `<image>` placeholder per image, in the same order.

    verl    Parquet: data_source, prompt (chat messages), ability, reward_model{style, ground_truth},
            extra_info{split, index, pair_id, ...}, images (list of {bytes, path}; vision rows only)
    easyr1  JSONL: problem (with <image>), answer, images (paths relative to the JSONL's folder;
            set `data.image_dir` to that folder), written next to `images/`
    skyrl   JSONL: prompt (chat messages), correct_answer, plus SkyRL's documented data_source,
            env_class, reward_spec{method, ground_truth}, extra_info. Text only (vision rows skipped)
    trl     a `datasets.save_to_disk` folder: prompt (conversational), answer, images (when any)

A row that cannot be exported (a vision pair for a text-only target, a broken image) is skipped
and counted under a reason; `inputs = exported + skipped`.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from ctxdata.errors import ConfigError, CtxdataError
from ctxdata.train.prompts import IMAGE_TOKEN, SYSTEM, selection_messages, selection_text

DOCS = {
    "verl": "https://verl.readthedocs.io/en/latest/preparation/prepare_data.html",
    "easyr1": "https://github.com/hiyouga/EasyR1/blob/main/verl/utils/dataset.py",
    "skyrl": "https://skyrl.readthedocs.io/en/latest/datasets/dataset-preparation.html",
    "trl": "https://huggingface.co/docs/trl/main/en/dataset_formats",
}
ABILITY = "context_selection"


@dataclass
class ExportConfig:
    """How pairs become trainer rows."""

    target: str  # verl | easyr1 | skyrl | trl
    split: str = "train"  # written into extra_info.split (verl, skyrl)
    data_source: str = "ctxdata/contrastive-context"  # verl/skyrl `data_source`
    env_class: str = "ctxdata_selection"  # skyrl `env_class` (a single-turn env that scores the letter)
    system_prompt: bool = False  # prepend prompts.SYSTEM as a system message
    limit: int | None = None  # export only the first N pairs

    def __post_init__(self) -> None:
        if self.target not in EXPORTERS:
            raise ConfigError(f"unknown export target {self.target!r}; choose one of: {', '.join(EXPORTERS)}")
        if self.limit is not None and self.limit < 1:
            raise ConfigError("limit must be >= 1 (or unset)")


def _messages(text_or_parts: Any, system: bool) -> list[dict[str, Any]]:
    head = [{"role": "system", "content": SYSTEM}] if system else []
    return head + [{"role": "user", "content": text_or_parts}]


def _image_cells(row: dict[str, Any]) -> list[dict[str, Any]]:
    """The two context images (A, B) as {bytes, path} cells, checked to decode."""
    from PIL import Image

    cells = []
    for key in ("context_a_image", "context_b_image"):
        cell = row[key]
        if not cell or not cell.get("bytes"):
            raise ValueError(f"{key} has no bytes")
        Image.open(io.BytesIO(cell["bytes"])).verify()
        cells.append({"bytes": cell["bytes"], "path": cell.get("path")})
    return cells


def _extra_info(row: dict[str, Any], index: int, config: ExportConfig) -> dict[str, Any]:
    return {"split": config.split, "index": index, "pair_id": row["pair_id"], "method": row["method"], "domain": row["domain"],
            "answer": row["answer"], "similarity": float(row["similarity"])}


# -- one row per target ---------------------------------------------------------------------------
def verl_row(row: dict[str, Any], index: int, config: ExportConfig) -> dict[str, Any]:
    out = {
        "data_source": config.data_source,
        "prompt": _messages(selection_text(row, IMAGE_TOKEN), config.system_prompt),
        "ability": ABILITY,
        "reward_model": {"style": "rule", "ground_truth": row["label"]},
        "extra_info": _extra_info(row, index, config),
    }
    if row["domain"] == "vision":
        out["images"] = _image_cells(row)
    return out


def easyr1_row(row: dict[str, Any], index: int, config: ExportConfig, image_dir: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"problem": selection_text(row, IMAGE_TOKEN), "answer": row["label"], "pair_id": row["pair_id"], "method": row["method"]}
    if row["domain"] == "vision":
        paths = []
        for slot, cell in zip("AB", _image_cells(row)):
            rel = f"images/{row['pair_id']}_{slot}.png"
            (image_dir / rel).write_bytes(_as_png(cell["bytes"]))
            paths.append(rel)
        out["images"] = paths
    return out


def skyrl_row(row: dict[str, Any], index: int, config: ExportConfig) -> dict[str, Any]:
    if row["domain"] == "vision":
        raise ValueError("skyrl export is text-only (the agentic trainer has no image inputs)")
    return {
        "data_source": config.data_source,
        "prompt": _messages(selection_text(row), config.system_prompt),
        "env_class": config.env_class,
        "reward_spec": {"method": "rule", "ground_truth": row["label"]},
        "correct_answer": row["label"],
        "extra_info": _extra_info(row, index, config),
    }


def trl_row(row: dict[str, Any], index: int, config: ExportConfig, structured: bool) -> dict[str, Any]:
    messages = selection_messages(row, system=config.system_prompt)
    if structured:  # one Arrow type for the column: every content becomes a list of parts
        messages = [{**m, "content": m["content"] if isinstance(m["content"], list) else [{"type": "text", "text": m["content"]}]} for m in messages]
    out = {"prompt": messages, "answer": row["label"], "pair_id": row["pair_id"], "method": row["method"], "domain": row["domain"]}
    if structured:
        out["images"] = [c["bytes"] for c in _image_cells(row)] if row["domain"] == "vision" else []
    return out


def _as_png(data: bytes) -> bytes:
    """Image bytes re-encoded as PNG only when they are not PNG already (the file name says .png)."""
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return data
    from PIL import Image

    buf = io.BytesIO()
    Image.open(io.BytesIO(data)).save(buf, "PNG")
    return buf.getvalue()


# -- writers ------------------------------------------------------------------------------------------
def _convert(rows: Iterable[dict[str, Any]], make: Callable[[dict[str, Any], int], dict[str, Any]], skipped: dict[str, int]) -> list[dict[str, Any]]:
    out = []
    for index, row in enumerate(rows):
        try:
            out.append(make(row, index))
        except (ValueError, OSError) as exc:  # PIL raises OSError subclasses for broken images
            reason = str(exc).split(":")[0] if isinstance(exc, ValueError) else "image does not decode"
            skipped[reason] = skipped.get(reason, 0) + 1
    return out


def export_verl(rows: list[dict[str, Any]], out: Path, config: ExportConfig, skipped: dict[str, int]) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    records = _convert(rows, lambda r, i: verl_row(r, i, config), skipped)
    if any("images" in r for r in records):
        for r in records:
            r.setdefault("images", None)  # text rows: null (verl skips the image path for them)
    out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(records), out)
    return len(records)


def export_easyr1(rows: list[dict[str, Any]], out: Path, config: ExportConfig, skipped: dict[str, int]) -> int:
    from ctxdata.io import atomic_write_text

    out.parent.mkdir(parents=True, exist_ok=True)
    if any(r["domain"] == "vision" for r in rows):
        (out.parent / "images").mkdir(exist_ok=True)
    records = _convert(rows, lambda r, i: easyr1_row(r, i, config, out.parent), skipped)
    if any("images" in r for r in records):
        for r in records:
            r.setdefault("images", [])  # EasyR1 treats an empty list as text-only data
    atomic_write_text(out, "".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
    return len(records)


def export_skyrl(rows: list[dict[str, Any]], out: Path, config: ExportConfig, skipped: dict[str, int]) -> int:
    from ctxdata.io import atomic_write_text

    out.parent.mkdir(parents=True, exist_ok=True)
    records = _convert(rows, lambda r, i: skyrl_row(r, i, config), skipped)
    atomic_write_text(out, "".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
    return len(records)


def export_trl(rows: list[dict[str, Any]], out: Path, config: ExportConfig, skipped: dict[str, int]) -> int:
    from datasets import Dataset, Image, Sequence

    structured = any(r["domain"] == "vision" for r in rows)
    records = _convert(rows, lambda r, i: trl_row(r, i, config, structured), skipped)
    if not records:
        raise CtxdataError("nothing to export: every pair was skipped")
    ds = Dataset.from_list(records)
    if structured:
        ds = ds.cast_column("images", Sequence(Image()))
    ds.save_to_disk(str(out))
    return len(records)


EXPORTERS: dict[str, Callable[[list[dict[str, Any]], Path, ExportConfig, dict[str, int]], int]] = {
    "verl": export_verl,
    "easyr1": export_easyr1,
    "skyrl": export_skyrl,
    "trl": export_trl,
}


def export_pairs(pairs_dir: str | Path, out: str | Path, config: ExportConfig) -> dict[str, Any]:
    """Export one pair folder; returns {target, inputs, exported, skipped, out, docs}."""
    from ctxdata.train.probe import load_pairs

    rows = load_pairs([pairs_dir], config.limit)
    if not rows:
        raise CtxdataError(f"{pairs_dir} holds no pairs")
    skipped: dict[str, int] = {}
    exported = EXPORTERS[config.target](rows, Path(out), config, skipped)
    assert exported + sum(skipped.values()) == len(rows), "every input is exported or skipped with a reason"
    return {"target": config.target, "inputs": len(rows), "exported": exported, "skipped": skipped, "out": str(out), "docs": DOCS[config.target]}
