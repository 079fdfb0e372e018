"""Training data: pair folders -> selection examples, a seeded per-step pair sampler, task rows.

- `load_selection_examples(dirs)` turns every pair row into a `SelectionExample`: the selection
  prompt (`prompts.selection_messages`), the correct and wrong letters, and, for vision pairs, the
  two context images (A first) as encoded cells, decoded to PIL only when a batch is built.
- `PairSampler(examples, batch_size, seed).batch(step)` draws the batch for optimizer step `step`
  from its own generator seeded with (seed, step): a fresh batch every step, and a resumed run
  draws exactly the batches the uninterrupted run would have drawn. With `both_orders`, it draws
  batch_size / 2 pairs and shows each one as stored and with contexts A and B swapped, so the
  batch's correct letters are half A and half B and a letter preference cancels in the gradient.
- `load_task_data(path)` reads JSONL or Parquet task rows: `prompt` (a string or chat messages),
  `answer`, optional `images`; other columns pass through to the reward functions (TRL's convention).
- `sft_examples` / `selection_rl_rows` recast pairs for the `da-sft` and `da-rl` baselines.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ctxdata._json import loads
from ctxdata.errors import CtxdataError
from ctxdata.train.prompts import selection_messages, wrong_label


@dataclass(frozen=True)
class SelectionExample:
    """One pair as a teacher-forced selection prompt."""

    pair_id: str
    messages: list[dict[str, Any]]  # chat messages of the selection prompt (no answer turn)
    correct: str  # the anchor's letter, "A" or "B"
    wrong: str  # the confounder's letter
    images: list[Any] = field(default_factory=list)  # vision: [context A cell, context B cell]
    query: str = ""
    answer: str = ""
    anchor_context: Any = None  # the anchor context's text (coding) or image cell (vision)
    swapped: "SelectionExample | None" = None  # the same pair with contexts A and B exchanged


def swap_contexts(row: dict[str, Any]) -> dict[str, Any]:
    """The pair with contexts A and B exchanged: the anchor moves to the other slot, the label follows it."""
    out = dict(row, label=wrong_label(row["label"]))
    for kind in ("text", "image"):
        out[f"context_a_{kind}"], out[f"context_b_{kind}"] = row.get(f"context_b_{kind}"), row.get(f"context_a_{kind}")
    return out


def example_from_row(row: dict[str, Any], with_swapped: bool = True) -> SelectionExample:
    images = [row["context_a_image"], row["context_b_image"]] if row["domain"] == "vision" else []
    anchor = row["context_a_" + ("image" if images else "text")] if row["label"] == "A" else row["context_b_" + ("image" if images else "text")]
    return SelectionExample(
        pair_id=row["pair_id"],
        messages=selection_messages(row),
        correct=row["label"],
        wrong=wrong_label(row["label"]),
        images=images,
        query=row["query"],
        answer=row["answer"],
        anchor_context=anchor,
        swapped=example_from_row(swap_contexts(row), with_swapped=False) if with_swapped else None,
    )


def load_selection_examples(dirs: Sequence[str | Path]) -> list[SelectionExample]:
    """Every pair of every folder, in folder then shard order; an empty result is an error."""
    from ctxdata.io import iter_rows
    from ctxdata.schema import validate_row

    examples: list[SelectionExample] = []
    for folder in dirs:
        for index, row in enumerate(iter_rows(folder)):
            problems = validate_row(row)
            if problems:
                raise CtxdataError(f"{folder}: pair row {index} is invalid: {'; '.join(problems)}")
            examples.append(example_from_row(row))
    if not examples:
        raise CtxdataError(f"no pairs found in {', '.join(str(d) for d in dirs)}; build some with `ctxdata build-coding`")
    return examples


class PairSampler:
    """Draws `batch_size` examples for each optimizer step (distinct pairs within a step when there are enough)."""

    def __init__(self, examples: Sequence[SelectionExample], batch_size: int, seed: int = 0, both_orders: bool = False) -> None:
        if not examples:
            raise CtxdataError("PairSampler needs at least one pair")
        if batch_size < 1 or (both_orders and batch_size % 2):
            raise CtxdataError(f"ca_batch_size must be >= 1 (and even with both orders), got {batch_size}")
        if both_orders and any(ex.swapped is None for ex in examples):
            raise CtxdataError("both_orders needs examples built by example_from_row (they carry their swapped twin)")
        self.examples = list(examples)
        self.batch_size = batch_size
        self.seed = seed
        self.both_orders = both_orders

    def batch(self, step: int) -> list[SelectionExample]:
        """The batch of step `step`: a pure function of (seed, step), so resuming reproduces it."""
        rng = random.Random(f"ctxdata-pairs-{self.seed}-{step}")
        n, k = len(self.examples), self.batch_size // 2 if self.both_orders else self.batch_size
        picked = rng.sample(range(n), k) if k <= n else [rng.randrange(n) for _ in range(k)]
        if not self.both_orders:
            return [self.examples[i] for i in picked]
        return [ex for i in picked for ex in (self.examples[i], self.examples[i].swapped)]  # type: ignore[misc]


def decode_image(cell: Any):
    """A PIL image from an Image-feature cell ({bytes, path}), a path, or a PIL image."""
    from PIL import Image
    import io

    if hasattr(cell, "convert"):
        return cell.convert("RGB")
    if isinstance(cell, dict) and cell.get("bytes"):
        return Image.open(io.BytesIO(cell["bytes"])).convert("RGB")
    path = cell.get("path") if isinstance(cell, dict) else cell
    if not path:
        raise CtxdataError("image cell has neither bytes nor a path")
    return Image.open(path).convert("RGB")


# -- task data -------------------------------------------------------------------------------
def _check_task_row(row: Any, where: str) -> dict[str, Any]:
    if not isinstance(row, dict):
        raise CtxdataError(f"{where}: a task row must be a JSON object, got {type(row).__name__}")
    prompt = row.get("prompt")
    if isinstance(prompt, str):
        ok = bool(prompt.strip())
    else:
        ok = isinstance(prompt, list) and bool(prompt) and all(isinstance(m, dict) and "role" in m and "content" in m for m in prompt)
    if not ok:
        raise CtxdataError(f"{where}: `prompt` must be a non-empty string or a list of {{role, content}} messages")
    if row.get("answer") is None:
        raise CtxdataError(f"{where}: missing `answer` (the reward functions compare completions with it)")
    images = row.get("images")
    if images is not None and not isinstance(images, list):
        raise CtxdataError(f"{where}: `images` must be a list (of paths or image cells)")
    return row


def load_task_data(path: str | Path) -> list[dict[str, Any]]:
    """Task rows from a .jsonl/.json-lines or .parquet file; a bad row raises naming file and line."""
    path = Path(path)
    if not path.exists():
        raise CtxdataError(f"task data {path} does not exist")
    rows: list[dict[str, Any]] = []
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        for index, row in enumerate(pq.read_table(path).to_pylist()):
            rows.append(_check_task_row(row, f"{path} row {index}"))
    else:
        with open(path, "rb") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    row = loads(line.decode("utf-8"))
                except UnicodeDecodeError as exc:
                    raise CtxdataError(f"{path}:{lineno}: not UTF-8 (byte 0x{exc.object[exc.start]:02x} at {exc.start})") from None
                except ValueError as exc:  # invalid JSON, or nested too deep
                    raise CtxdataError(f"{path}:{lineno}: not valid JSON ({getattr(exc, 'msg', None) or exc})") from None
                rows.append(_check_task_row(row, f"{path}:{lineno}"))
    if not rows:
        raise CtxdataError(f"task data {path} has no rows")
    return rows


# -- baselines ---------------------------------------------------------------------------------
def sft_examples(examples: Sequence[SelectionExample]) -> list[dict[str, Any]]:
    """da-sft: each pair as (prompt = query + anchor context, target = answer); vision keeps the image."""
    out = []
    for ex in examples:
        if ex.images:
            content: Any = [{"type": "text", "text": f"Question:\n{ex.query}\n\nContext:"}, {"type": "image"}]
            out.append({"prompt": [{"role": "user", "content": content}], "target": ex.answer, "images": [ex.anchor_context]})
        else:
            text = f"Question:\n{ex.query}\n\nContext:\n{ex.anchor_context}"
            out.append({"prompt": [{"role": "user", "content": text}], "target": ex.answer, "images": []})
    return out


def selection_rl_rows(examples: Sequence[SelectionExample]) -> list[dict[str, Any]]:
    """da-rl: each pair as an RL prompt whose `answer` is the correct letter, scored by `reward_fn="multiple_choice"`."""
    rows = []
    for ex in examples:
        row: dict[str, Any] = {"prompt": ex.messages, "answer": ex.correct, "reward_fn": "multiple_choice"}
        if ex.images:
            row["images"] = list(ex.images)
        rows.append(row)
    return rows
