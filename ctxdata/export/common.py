"""What every export target shares: the target record type, images, prompt measuring, writing files."""

from __future__ import annotations

import base64
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ctxdata.export.fit import RowRejected
from ctxdata.tokens import TokenCounter
from ctxdata.train.prompts import IMAGE_TOKEN, SYSTEM, selection_text

SCORERS_DIR = Path(__file__).parent / "scorers"
SCORER_MARKER = "# {letter}"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@dataclass
class Target:
    """One consumer: how a pair becomes its row, how it measures the prompt, how the rows are written."""

    name: str
    docs: str  # the consumer's documented format
    out_help: str  # what --out is for this target
    make: Callable[[dict[str, Any], int, Any], dict[str, Any]]  # (pair, index, config) -> record
    measure: Callable[[TokenCounter, dict[str, Any], dict[str, Any], Any], int]  # prompt tokens as the consumer counts
    write: Callable[[list[dict[str, Any]], Path, Any], dict[str, Path]]  # -> {what: path} of the data written
    scorer: str | None  # template in scorers/ written next to the data
    settings: Callable[[dict[str, Any]], list[str]]  # report -> the exact settings to train on the export
    limit_note: str = ""  # what the consumer does with a prompt over its limit


def messages(content: Any, system: bool) -> list[dict[str, Any]]:
    head = [{"role": "system", "content": SYSTEM}] if system else []
    return head + [{"role": "user", "content": content}]


def chat_tokens(counter: TokenCounter, pair: dict[str, Any], config: Any) -> int:
    """The prompt as a string-content chat with `<image>` placeholders: verl's, SkyRL's and TRL's count.

    For vision rows this is the text alone; each image adds as many tokens as the VLM's processor
    makes of it, which no text tokenizer can know.
    """
    return len(counter.chat_ids(messages(selection_text(pair, IMAGE_TOKEN), config.system_prompt)))


def measure_chat(counter: TokenCounter, pair: dict[str, Any], record: dict[str, Any], config: Any) -> int:
    """`Target.measure` for the consumers that count `chat_tokens` (the record adds nothing to the prompt)."""
    return chat_tokens(counter, pair, config)


def image_cells(pair: dict[str, Any]) -> list[dict[str, Any]]:
    """The two context images (A, B) as {bytes, path} cells, checked to decode."""
    from PIL import Image

    cells = []
    for key in ("context_a_image", "context_b_image"):
        cell = pair[key]
        if not cell or not cell.get("bytes"):
            raise RowRejected("image missing", f"{key} has no bytes")
        try:
            with Image.open(io.BytesIO(cell["bytes"])) as image:
                image.verify()
        except Exception as exc:  # PIL raises many types for broken data
            raise RowRejected("image does not decode", f"{key}: {exc}") from None
        cells.append({"bytes": cell["bytes"], "path": cell.get("path")})
    return cells


def as_png(data: bytes) -> bytes:
    """Image bytes re-encoded as PNG only when they are not PNG already (the file name says .png)."""
    if data[:8] == PNG_MAGIC:
        return data
    from PIL import Image

    buf = io.BytesIO()
    Image.open(io.BytesIO(data)).save(buf, "PNG")
    return buf.getvalue()


def png_data_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(as_png(data)).decode("ascii")


def extra_info(pair: dict[str, Any], index: int, config: Any) -> dict[str, Any]:
    return {
        "split": config.split,
        "index": index,
        "pair_id": pair["pair_id"],
        "method": pair["method"],
        "domain": pair["domain"],
        "answer": pair["answer"],
        "similarity": float(pair["similarity"]),
    }


def write_jsonl(records: list[dict[str, Any]], out: Path) -> None:
    from ctxdata.io import atomic_write_text

    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, "".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in records))


def write_images(records: list[dict[str, Any]], folder: Path) -> None:
    """Each record's image cells -> PNG files under `folder/images/`, replaced by their relative paths."""
    for record in records:
        cells = record.get("images")
        if not cells:
            continue
        (folder / "images").mkdir(parents=True, exist_ok=True)
        paths = []
        for slot, cell in zip("AB", cells):
            rel = f"images/{record['pair_id']}_{slot}.png"
            (folder / rel).write_bytes(as_png(cell["bytes"]))
            paths.append(rel)
        record["images"] = paths


def scorer_source(template: str) -> str:
    """The self-contained scorer: the template with the shared letter parser pasted in."""
    parser = (SCORERS_DIR / "letter.py").read_text(encoding="utf-8").split("# --- scorer code starts here ---\n", 1)[1]
    text = (SCORERS_DIR / template).read_text(encoding="utf-8")
    if SCORER_MARKER not in text:
        raise AssertionError(f"scorer template {template} lacks the {SCORER_MARKER!r} marker")
    text = "".join(line for line in text.splitlines(keepends=True) if not line.startswith("# ruff: noqa"))
    return text.replace(SCORER_MARKER, parser.strip("\n"), 1)
