"""Decoding pool images safely, and the small pixel tools the editors and checks share.

`load_image` turns any file PIL can read (RGB, RGBA, palette, 16-bit, CMYK, WebP, TIFF, rotated
JPEG) into an upright 8-bit RGB image, or raises `ImageRejected` with one of the reject reasons of
`IMAGE_REASONS`. Nothing here raises on bad data otherwise: the pool turns the reason into a reject.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any

import numpy as np

# Reasons a pool image is rejected (one line each in rejects.jsonl).
IMAGE_REASONS = (
    "image_missing",
    "image_empty",
    "image_corrupt",
    "image_truncated",
    "decompression_bomb",
    "pixel_budget",
    "not_regular_file",
    "path_outside_pool",
)
DEFAULT_MAX_PIXELS = 64_000_000  # ~8000 x 8000; PIL's own default warns at 89.5 MP and fails at 179 MP
# Decoded pixels a whole pool may hold (~3 GB as 8-bit RGB): many images each under max_pixels must not add up.
DEFAULT_MAX_POOL_PIXELS = 1_000_000_000


class ImageRejected(Exception):
    """A pool image (or, from the pool, a row's field or region) that cannot be used; `reason` names why."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


def to_rgb(img) -> Any:
    """Upright 8-bit RGB: EXIF rotation applied, alpha composited on white, 16-bit scaled down."""
    from PIL import Image, ImageOps

    img = ImageOps.exif_transpose(img)
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if arr.max() > 255 else 255.0
        img = Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    elif img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        span = float(arr.max() - arr.min()) or 1.0
        img = Image.fromarray(((arr - arr.min()) / span * 255.0).astype(np.uint8), "L")
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    return img.convert("RGB")


class PixelBudget:
    """Decoded pixels left for one run; an image that would overdraw it is rejected before it is decoded."""

    def __init__(self, total: int = DEFAULT_MAX_POOL_PIXELS) -> None:
        self.total, self.used = total, 0

    def take(self, width: int, height: int, name: str) -> None:
        if self.used + width * height > self.total:
            raise ImageRejected(
                "pixel_budget",
                f"{name or 'image'} ({width}x{height}) would take the pool past "
                f"max_pool_pixels={self.total} decoded pixels ({self.used} used)",
            )
        self.used += width * height


def decode_image(
    data: bytes | Path | str,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    name: str = "",
    budget: PixelBudget | None = None,
) -> Any:
    """Bytes or a file -> upright RGB PIL image, or ImageRejected with the reason; `budget` is charged for it."""
    import stat

    from PIL import Image

    if isinstance(data, (str, Path)):
        path = Path(data)
        try:
            mode = path.stat().st_mode
        except OSError:
            raise ImageRejected("image_missing", f"{path} does not exist") from None
        if not stat.S_ISREG(mode):  # a FIFO would block the read; a folder is no image
            raise ImageRejected(
                "not_regular_file" if not stat.S_ISDIR(mode) else "image_missing", f"{path} is not a regular file"
            )
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ImageRejected("image_missing", f"{path} cannot be read: {exc.strerror or exc}") from None
    if len(data) == 0:
        raise ImageRejected("image_empty", f"{name or 'image'} has zero bytes")
    old_limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = max_pixels  # PIL warns above this and raises above twice this
    charged = 0
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                if img.size[0] * img.size[1] > max_pixels:
                    raise ImageRejected(
                        "decompression_bomb", f"{img.size[0]}x{img.size[1]} exceeds max_pixels={max_pixels}"
                    )
                if budget is not None:  # from the header, before a single pixel is decoded
                    budget.take(img.size[0], img.size[1], name)
                    charged = img.size[0] * img.size[1]
                img.load()
                rgb = to_rgb(img)
                charged = 0
                return rgb
    except ImageRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRejected("decompression_bomb", str(exc)) from None
    except OSError as exc:
        reason = (
            "image_truncated"
            if "truncated" in str(exc).lower() or "end of file" in str(exc).lower()
            else "image_corrupt"
        )
        raise ImageRejected(reason, f"{type(exc).__name__}: {exc}") from None
    except Exception as exc:  # PIL raises many types (SyntaxError, ValueError, struct.error) on garbage
        raise ImageRejected("image_corrupt", f"{type(exc).__name__}: {exc}") from None
    finally:
        Image.MAX_IMAGE_PIXELS = old_limit
        if budget is not None:  # an image that failed to decode holds no pixels
            budget.used -= charged


def png_bytes(img) -> bytes:
    """Deterministic PNG bytes: same pixels -> same bytes (no timestamps or text chunks)."""
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()


def is_blank(img, *, min_std: float = 2.0) -> bool:
    """True for a (nearly) single-colour image: a failed render or an all-black diffusion output."""
    arr = np.asarray(img.convert("L"), dtype=np.float32)
    return float(arr.std()) < min_std


def region_mask(size: tuple[int, int], region: Any, *, pad: int = 0) -> np.ndarray:
    """A bool (h, w) mask of `region`: a box [x0, y0, x1, y1], a mask image, or None (whole image)."""
    from PIL import Image

    w, h = size
    if region is None:
        return np.ones((h, w), dtype=bool)
    if isinstance(region, (list, tuple)) and len(region) == 4:
        x0, y0, x1, y1 = (int(round(v)) for v in region)
        mask = np.zeros((h, w), dtype=bool)
        # Clip both ends into the image: a negative end would index from the far side in numpy.
        top, bottom = min(h, max(0, y0 - pad)), min(h, max(0, y1 + pad))
        left, right = min(w, max(0, x0 - pad)), min(w, max(0, x1 + pad))
        mask[top:bottom, left:right] = True
        return mask
    img = region if isinstance(region, Image.Image) else Image.open(region)
    mask = np.asarray(img.convert("L").resize((w, h), Image.NEAREST)) > 127
    if pad:
        from PIL import ImageFilter

        grown = Image.fromarray(mask.astype(np.uint8) * 255).filter(ImageFilter.MaxFilter(2 * pad + 1))
        mask = np.asarray(grown) > 127
    return mask


def changed_pixels(a, b, *, tol: int = 24) -> np.ndarray:
    """Bool (h, w): pixels whose largest channel difference between `a` and `b` exceeds `tol`."""
    x = np.asarray(a.convert("RGB"), dtype=np.int16)
    y = np.asarray(b.convert("RGB").resize(a.size), dtype=np.int16)
    return np.abs(x - y).max(axis=2) > tol
