"""Images for the offline viewer: inline data URLs and a difference heat map, computed with numpy/PIL."""

from __future__ import annotations

import base64
import io
from typing import Any

MAX_SIDE = 640  # viewer images are downscaled so a page of a few hundred pairs stays openable
INLINE_PNG_LIMIT = 48_000  # bytes: above this, re-encode for the page as JPEG (quality 85)
CHANGED_THRESHOLD = 0.1  # a pixel counts as changed when its mean channel difference exceeds 10%


def _open(cell: dict[str, Any]):
    from PIL import Image

    image = Image.open(io.BytesIO(cell["bytes"]))
    image.load()
    return image


def _fit(image):
    if max(image.size) > MAX_SIDE:
        image = image.copy()
        image.thumbnail((MAX_SIDE, MAX_SIDE))
    return image


def _encoded_url(image) -> str:
    """PNG when small (keeps edges crisp), JPEG when a PNG would bloat the page (photos, noise)."""
    buf = io.BytesIO()
    image.save(buf, "PNG", compress_level=1)  # fast trial: most of the cost on photos
    if buf.tell() > INLINE_PNG_LIMIT:
        buf = io.BytesIO()
        image.convert("RGB").save(buf, "JPEG", quality=85)
        return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def image_data_url(cell: dict[str, Any] | None) -> tuple[str, tuple[int, int]] | None:
    """An Image-feature cell -> (data URL, original size); small encoded bytes are inlined as they are."""
    if not cell or not cell.get("bytes"):
        return None
    image = _open(cell)
    mime = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/gif"}.get(image.format or "")
    if mime and max(image.size) <= MAX_SIDE and len(cell["bytes"]) <= INLINE_PNG_LIMIT:
        return "data:" + mime + ";base64," + base64.b64encode(cell["bytes"]).decode("ascii"), image.size
    return _encoded_url(_fit(image.convert("RGB"))), image.size


def _heat_colours(v):
    """Map [0, 1] to a black -> red -> yellow -> white ramp (shape (..., 3), uint8)."""
    import numpy as np

    stops = np.array([[0, 0, 0], [180, 20, 20], [255, 200, 0], [255, 255, 255]], dtype=np.float32)
    x = np.clip(v, 0, 1) * (len(stops) - 1)
    lo = np.floor(x).astype(int).clip(0, len(stops) - 2)
    t = (x - lo)[..., None]
    return (stops[lo] * (1 - t) + stops[lo + 1] * t).astype(np.uint8)


def difference_heatmap(cell_a: dict[str, Any], cell_b: dict[str, Any]) -> tuple[str, float]:
    """(PNG data URL of |A - B| as a heat map over a dimmed A, fraction of changed pixels)."""
    import numpy as np
    from PIL import Image

    a = _fit(_open(cell_a).convert("RGB"))
    b = _open(cell_b).convert("RGB").resize(a.size)
    xa, xb = np.asarray(a, dtype=np.float32) / 255.0, np.asarray(b, dtype=np.float32) / 255.0
    diff = np.abs(xa - xb).mean(axis=2)  # (H, W) in [0, 1]
    # scale so the largest change is fully hot, but do not blow up pure noise below 5%
    v = diff / max(float(diff.max()), 0.05)
    base = (xa.mean(axis=2, keepdims=True) * 0.5 * 255).repeat(3, axis=2)
    heat = _heat_colours(v).astype(np.float32)
    alpha = np.clip(v * 1.5, 0, 1)[..., None]
    overlay = (base * (1 - alpha) + heat * alpha).astype(np.uint8)
    return _encoded_url(Image.fromarray(overlay)), float((diff > CHANGED_THRESHOLD).mean())
