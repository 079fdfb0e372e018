"""Meaning-blind statistics of one image alone: tone, colour, edges, file format and size, local noise.

Each image is decoded from the bytes stored in its row (never from its `path`, which may name the
edit). Large images are measured on a 512-pixel thumbnail, except the file-level statistics and the
JPEG blockiness, which need the stored bytes and the full grid.
"""

from __future__ import annotations

import io
import json
from functools import lru_cache
from typing import Any

import numpy as np

THUMB = 512
BLOCK = 16  # side of the blocks whose local noise is compared (the "was this region edited" cue)


def _gray(rgb: np.ndarray) -> np.ndarray:
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


def _blockiness(gray: np.ndarray) -> float:
    """Mean jump across 8-pixel grid lines over the mean jump elsewhere (about 1 unless JPEG-compressed)."""
    if gray.shape[1] < 17:
        return 1.0
    jumps = np.abs(np.diff(gray, axis=1))
    on_grid = jumps[:, 7::8].mean()
    mask = np.ones(jumps.shape[1], bool)
    mask[7::8] = False
    off_grid = jumps[:, mask].mean()
    return float((on_grid + 1e-3) / (off_grid + 1e-3))


def _noise_inconsistency(gray: np.ndarray) -> float:
    """Spread of the local high-pass energy across blocks (coefficient of variation, textureless blocks ignored).

    A pasted or repainted region tends to carry different noise than the rest of the photo.
    """
    h, w = gray.shape
    if h < 3 * BLOCK or w < 3 * BLOCK:
        return 0.0
    residual = gray[1:-1, 1:-1] * 4 - gray[:-2, 1:-1] - gray[2:, 1:-1] - gray[1:-1, :-2] - gray[1:-1, 2:]
    hb, wb = residual.shape[0] // BLOCK, residual.shape[1] // BLOCK
    blocks = np.abs(residual[: hb * BLOCK, : wb * BLOCK]).reshape(hb, BLOCK, wb, BLOCK).mean(axis=(1, 3)).ravel()
    blocks = blocks[blocks > 0.5]
    if len(blocks) < 4:
        return 0.0
    return float(blocks.std() / blocks.mean())


@lru_cache(maxsize=2048)
def image_stats(data: bytes) -> dict[str, float]:
    """Statistics of one encoded image; an undecodable image gives all zeros (and `decodes` 0)."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            fmt = (im.format or "").upper()
            width, height = im.size
            rgb_full = np.asarray(im.convert("RGB"), dtype=np.float32)
    except Exception:  # a broken image is a statistic too (it never survives a build's checks)
        return {"decodes": 0.0}
    gray_full = _gray(rgb_full)
    if max(width, height) > THUMB:
        thumb = Image.fromarray(rgb_full.astype(np.uint8))
        thumb.thumbnail((THUMB, THUMB))
        rgb = np.asarray(thumb, dtype=np.float32)
    else:
        rgb = rgb_full
    gray = _gray(rgb)
    top, bottom = rgb.max(axis=2), rgb.min(axis=2)
    saturation = np.where(top > 0, (top - bottom) / np.maximum(top, 1e-6), 0.0)
    gy, gx = np.abs(np.diff(gray, axis=0))[:, :-1], np.abs(np.diff(gray, axis=1))[:-1, :]
    pixels = float(width * height)
    small = rgb[::4, ::4].astype(np.uint8).reshape(-1, 3)
    return {
        "decodes": 1.0,
        "brightness": float(gray.mean()),
        "contrast": float(gray.std()),
        "saturation": float(saturation.mean()),
        "edge_density": float(((gx + gy) > 32).mean()) if gx.size else 0.0,
        "colours": float(np.log1p(len(np.unique(small, axis=0)))),
        "file_bytes": float(len(data)),
        "bytes_per_pixel": float(len(data) / max(pixels, 1.0)),
        "pixels": pixels,
        "aspect": float(width / max(height, 1)),
        "is_jpeg": 1.0 if fmt == "JPEG" else 0.0,
        "is_png": 1.0 if fmt == "PNG" else 0.0,
        "blockiness": _blockiness(gray_full),
        "noise_inconsistency": _noise_inconsistency(gray),
    }


STAT_NAMES = (
    "brightness",
    "contrast",
    "saturation",
    "edge_density",
    "colours",
    "file_bytes",
    "bytes_per_pixel",
    "pixels",
    "aspect",
    "is_jpeg",
    "is_png",
    "blockiness",
    "noise_inconsistency",
)


def row_image_stats(row: dict[str, Any]) -> tuple[dict[str, float], dict[str, float]]:
    """(stats of context A, stats of context B) of a vision row."""

    def stats(cell: Any) -> dict[str, float]:
        data = (cell or {}).get("bytes") if isinstance(cell, dict) else None
        return image_stats(bytes(data)) if data else {"decodes": 0.0}

    return stats(row.get("context_a_image")), stats(row.get("context_b_image"))


def edited_slot(row: dict[str, Any]) -> str | None:
    """Which slot ("A"/"B") holds the edited image of an edit pair; None for other pairs.

    `meta["edited"]` (the role the edited image took, `anchor` or `confounder`) when the build
    records it, as build-vision does; otherwise the context whose id carries the editor's `#edit:`
    suffix; otherwise the confounder (what every edit pair was before roles were randomised).
    """
    if not str(row.get("method", "")).startswith("edit:"):
        return None
    meta = row.get("meta")
    meta = json.loads(meta) if isinstance(meta, str) and meta else (meta or {})
    other = "B" if row["label"] == "A" else "A"
    if meta.get("edited") in ("anchor", "confounder"):
        return row["label"] if meta["edited"] == "anchor" else other
    if "#edit:" in str(row.get("anchor_id", "")):
        return row["label"]
    return other
