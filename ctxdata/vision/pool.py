"""Image pools with questions: a folder + `qa.jsonl`, a Parquet file, or a `datasets` folder.

    pool/
      qa.jsonl      {"image": "cats/1.jpg", "question": "What colour is the cat?", "answer": "black",
                     "type": "color", "region": [10, 20, 90, 120]}      # type, region optional
      cats/1.jpg

One qa line is one input. A line is kept when it parses, has its fields and its image decodes;
otherwise it becomes a reject (`invalid_json`, `missing_field`, `bad_field`, `bad_region`,
`bad_path`, `path_outside_pool`, `duplicate_row`, or an image reason from `images.IMAGE_REASONS`,
among them `pixel_budget` once the pool's decoded pixels reach `max_pool_pixels`), so
`inputs == kept + rejected`. An image's id (the pair's anchor_id / confounder_id) is its path
relative to the pool folder; several lines may share it, but not the same question and answer.
A pool from which no row could be used is an error, as a trajectory folder with none is.
"""

from __future__ import annotations

import math
import stat
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from ctxdata._json import loads
from ctxdata.errors import CtxdataError
from ctxdata.pipeline import INPUT, RunContext
from ctxdata.vision.images import (
    DEFAULT_MAX_PIXELS,
    DEFAULT_MAX_POOL_PIXELS,
    ImageRejected,
    PixelBudget,
    decode_image,
    region_mask,
)
from ctxdata.vision.templates import infer_type

STAGE = "pool"
REQUIRED_FIELDS = ("image", "question", "answer")


@dataclass
class QARecord:
    """One (image, question, answer) row of a pool."""

    image_id: str  # path relative to the pool (or a synthetic id); the pair's anchor/confounder id
    question: str
    answer: str
    qtype: str  # color | count | presence | yesno | text | other
    region: Any = None  # [x0, y0, x1, y1] pixels, a mask path, or None: where the answer is decided
    scene: dict | None = None  # the scene graph of a synthetic image (procedural editor)
    source: str = ""  # "qa.jsonl:12" - for rejects and provenance


@dataclass
class Pool:
    """Decoded images by id plus their QA records, in a deterministic order."""

    images: dict[str, Any] = field(default_factory=dict)  # id -> RGB PIL image
    records: list[QARecord] = field(default_factory=list)
    inputs: int = 0  # qa rows read (kept + rejected)
    name: str = ""

    def add(self, image_id: str, image: Any, **qa: Any) -> None:
        self.images[image_id] = image
        self.records.append(QARecord(image_id=image_id, **qa))
        self.inputs += 1


def safe_relative(root: Path, rel: str) -> Path:
    """`root / rel`, refusing absolute paths and `..` escapes (ImageRejected path_outside_pool)."""
    if not rel or PurePosixPath(rel).is_absolute() or PureWindowsPath(rel).is_absolute() or PureWindowsPath(rel).drive:
        raise ImageRejected("path_outside_pool", f"image path {rel!r} must be relative to the pool folder")
    if "\x00" in rel:
        raise ImageRejected("bad_path", f"image path {rel!r} holds a NUL byte")
    resolved = (root / rel).resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise ImageRejected("path_outside_pool", f"image path {rel!r} leaves the pool folder {root}")
    return resolved


def load_pool(
    spec: str | Path,
    ctx: RunContext,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_pool_pixels: int = DEFAULT_MAX_POOL_PIXELS,
) -> Pool:
    """Read a pool folder, Parquet file or `datasets` folder; bad rows go to `ctx` as input rejects."""
    path = Path(spec)
    budget = PixelBudget(max_pool_pixels)
    if not path.exists():
        raise CtxdataError(
            f"pool {path} does not exist (give a folder with qa.jsonl, a .parquet file or a datasets folder)"
        )
    if path.is_file() and path.suffix == ".parquet":
        pool = _load_table(_read_parquet(path), path.parent, path.name, ctx, max_pixels, budget)
    elif path.is_dir() and (path / "qa.jsonl").is_file():
        pool = _load_folder(path, ctx, max_pixels, budget)
    elif path.is_dir() and (path / "dataset_info.json").is_file():
        pool = _load_table(_read_datasets(path), path, path.name, ctx, max_pixels, budget)
    else:
        raise CtxdataError(
            f"{path} is not a pool: expected a folder with qa.jsonl, a .parquet file, "
            "or a datasets save_to_disk folder"
        )
    return pool


def nothing_read_error(pool: Pool, spec: str | Path, ctx: RunContext, rejects_file: str | Path) -> CtxdataError | None:
    """The error for a pool with no usable row (inputs found or not), else None."""
    if pool.records:
        return None
    reasons = ", ".join(f"{reason}: {n}" for reason, n in ctx.stage(STAGE).dropped.most_common(4))
    return CtxdataError(
        f"no usable row in pool {spec} ({pool.inputs} rows{'; ' + reasons if reasons else ''}); "
        f"reasons in {rejects_file}"
    )


def _row_key(image_id: str, fields: dict[str, Any]) -> tuple:
    """What makes two rows the same question: a repeated one would pair with itself, in both orders."""
    return image_id, " ".join(fields["question"].lower().split()), " ".join(fields["answer"].lower().split())


def _reject(ctx: RunContext, source: str, reason: str, detail: str) -> None:
    ctx.reject(source, reason, detail, stage=STAGE, kind=INPUT)


def _qa_fields(row: dict[str, Any]) -> dict[str, Any]:
    """The QA fields of a row; a field of the wrong type raises ImageRejected(`bad_field`)."""
    for key in ("question", "answer"):  # an answer may be a number ("3" objects)
        if isinstance(row[key], bool) or not isinstance(row[key], (str, int, float)):
            raise ImageRejected("bad_field", f"`{key}` is a {type(row[key]).__name__}, expected text")
    question, answer = str(row["question"]).strip(), str(row["answer"]).strip()
    qtype = str(row.get("type") or infer_type(question, answer))
    return {
        "question": question,
        "answer": answer,
        "qtype": qtype,
        "region": _region(row.get("region")),
        "scene": row.get("scene"),
    }


def _region(region: Any) -> Any:
    """None, a mask path, or a pixel box [x0, y0, x1, y1] of finite numbers with x0 < x1 and y0 < y1."""
    if region in (None, "", []):
        return None
    if isinstance(region, str):
        return region
    if (
        isinstance(region, (list, tuple))
        and len(region) == 4
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in region)
    ):
        box = [float(v) for v in region]
        if all(math.isfinite(v) for v in box) and box[0] < box[2] and box[1] < box[3]:
            return box
    raise ImageRejected(
        "bad_region", f"region {region!r:.80} is neither a mask path nor a box [x0, y0, x1, y1] with x0 < x1, y0 < y1"
    )


def _checked_region(root: Path, region: Any, image: Any, max_pixels: int, masks: dict[str, Any]) -> Any:
    """The region with a mask name resolved inside the pool; ImageRejected when it is unusable for `image`.

    A mask must stay in the pool and decode (checked once per name, cached in `masks`); any region
    must mark at least one pixel of the image.
    """
    if isinstance(region, str):
        if region not in masks:
            try:
                path = safe_relative(root, region)
                decode_image(path, max_pixels=max_pixels, name=region)
                masks[region] = str(path)
            except ImageRejected as exc:
                masks[region] = ImageRejected(exc.reason, f"region mask: {exc.detail}")
        if isinstance(masks[region], ImageRejected):
            raise masks[region]
        region = masks[region]
    if region is not None and not region_mask(image.size, region).any():
        raise ImageRejected(
            "bad_region", f"region {region!r:.80} covers no pixel of the {image.width}x{image.height} image"
        )
    return region


def _load_folder(root: Path, ctx: RunContext, max_pixels: int, budget: PixelBudget) -> Pool:
    pool, decoded, failed, masks, seen = Pool(name=root.name), {}, {}, {}, {}  # masks: path or ImageRejected, by name
    stats = ctx.stage(STAGE)
    for lineno, line in enumerate(_read_qa_lines(root / "qa.jsonl"), 1):
        if not line.strip():
            continue
        source = f"{root.name}/qa.jsonl:{lineno}"
        pool.inputs += 1
        stats.n_in += 1
        try:
            row = loads(line)  # orjson, or the stdlib with lone surrogates replaced
        except ValueError as exc:  # JSONDecodeError, or nested too deep
            _reject(ctx, source, "invalid_json", str(exc))
            continue
        missing = [k for k in REQUIRED_FIELDS if not isinstance(row, dict) or row.get(k) in (None, "")]
        if missing:
            _reject(ctx, source, "missing_field", f"missing {', '.join(missing)}")
            continue
        rel = row["image"]
        if not isinstance(rel, str):
            _reject(ctx, source, "bad_field", f"`image` is a {type(rel).__name__}, expected a path")
            continue
        try:
            if rel in failed:
                raise failed[rel]
            if rel not in decoded:
                decoded[rel] = decode_image(safe_relative(root, rel), max_pixels=max_pixels, name=rel, budget=budget)
        except ImageRejected as exc:
            failed[rel] = exc
            _reject(ctx, f"{source} ({rel})", exc.reason, exc.detail)
            continue
        try:
            fields = _qa_fields(row)
        except ImageRejected as exc:
            _reject(ctx, source, exc.reason, exc.detail)
            continue
        try:
            fields["region"] = _checked_region(root, fields["region"], decoded[rel], max_pixels, masks)
        except ImageRejected as exc:
            _reject(ctx, source, exc.reason, exc.detail)
            continue
        key = _row_key(rel, fields)
        if key in seen:
            _reject(ctx, source, "duplicate_row", f"same image, question and answer as {seen[key]}")
            continue
        seen[key] = source
        pool.images[rel] = decoded[rel]
        pool.records.append(QARecord(image_id=rel, source=source, **fields))
        stats.n_out += 1
    return pool


def _read_qa_lines(path: Path) -> list[str]:
    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):
            raise CtxdataError(f"{path} is not a regular file")
        # utf-8-sig: a byte-order mark (Windows editors) is allowed, as the trajectory readers allow it
        return path.read_text(encoding="utf-8-sig", errors="replace").splitlines()
    except OSError as exc:
        raise CtxdataError(f"{path} cannot be read: {exc.strerror or exc}") from None


def _read_parquet(path: Path) -> list[dict[str, Any]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path).to_pylist()
    except (OSError, ValueError, pa.ArrowException) as exc:  # the whole pool is this one file: nothing to keep
        raise CtxdataError(f"pool {path} is not a readable Parquet file ({type(exc).__name__}: {exc})") from None


def _read_datasets(path: Path) -> list[dict[str, Any]]:
    from ctxdata._deps import require

    datasets = require("datasets")
    try:
        ds = datasets.load_from_disk(str(path))
        if "image" in ds.column_names and isinstance(ds.features["image"], datasets.Image):
            ds = ds.cast_column("image", datasets.Image(decode=False))  # keep the bytes: we decode safely
        return ds.to_list()
    except MemoryError:
        raise
    except Exception as exc:  # `datasets` raises many types on a damaged folder; the pool is that folder
        raise CtxdataError(f"pool {path} is not a readable datasets folder ({type(exc).__name__}: {exc})") from None


def _load_table(
    rows: list[dict[str, Any]], root: Path, name: str, ctx: RunContext, max_pixels: int, budget: PixelBudget
) -> Pool:
    """Rows with image (bytes/path cell or a path string), question, answer[, type, region]."""
    pool, masks, seen = Pool(name=name), {}, {}
    stats = ctx.stage(STAGE)
    for i, row in enumerate(rows):
        source = f"{name}:{i}"
        pool.inputs += 1
        stats.n_in += 1
        missing = [k for k in REQUIRED_FIELDS if not isinstance(row, dict) or row.get(k) in (None, "")]
        if missing:
            _reject(ctx, source, "missing_field", f"missing {', '.join(missing)}")
            continue
        cell = row["image"]
        try:
            if isinstance(cell, dict) and cell.get("bytes") is not None:
                image_id = str(cell.get("path") or f"row-{i:06d}")
                image = pool.images.get(image_id) or decode_image(
                    _image_bytes(cell["bytes"]), max_pixels=max_pixels, name=image_id, budget=budget
                )
            else:
                image_id = str(cell.get("path") if isinstance(cell, dict) else cell)
                image = pool.images.get(image_id) or decode_image(
                    safe_relative(root, image_id), max_pixels=max_pixels, name=image_id, budget=budget
                )
            fields = _qa_fields(row)
        except ImageRejected as exc:
            _reject(ctx, source, exc.reason, exc.detail)
            continue
        try:
            fields["region"] = _checked_region(root, fields["region"], image, max_pixels, masks)
        except ImageRejected as exc:
            _reject(ctx, source, exc.reason, exc.detail)
            continue
        key = _row_key(image_id, fields)
        if key in seen:
            _reject(ctx, source, "duplicate_row", f"same image, question and answer as {seen[key]}")
            continue
        seen[key] = source
        pool.images[image_id] = image
        pool.records.append(QARecord(image_id=image_id, source=source, **fields))
        stats.n_out += 1
    return pool


def _image_bytes(value: Any) -> bytes:
    if not isinstance(value, (bytes, bytearray)):
        raise ImageRejected("bad_field", f"`image.bytes` is a {type(value).__name__}, expected bytes")
    return bytes(value)
