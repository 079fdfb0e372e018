"""Heavy dependencies: declared by extra, checked at construction, imported at use."""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from ctxdata.errors import MissingDependencyError

# module name -> (pip distribution, ctxdata extra that installs it)
KNOWN = {
    "torch": ("torch", "train"),
    "torchvision": ("torchvision", "vision"),
    "transformers": ("transformers", "train"),
    "trl": ("trl", "train"),
    "accelerate": ("accelerate", "train"),
    "gguf": ("gguf", "train"),
    "sentence_transformers": ("sentence-transformers", "train"),
    "faiss": ("faiss-cpu", "vision"),
    "open_clip": ("open_clip_torch", "vision"),
    "diffusers": ("diffusers", "vision"),
    "cv2": ("opencv-python-headless", "vision"),
    "skimage": ("scikit-image", "vision"),
    "efficientnet_lite_pytorch": ("efficientnet-lite-pytorch", "vision"),
    "huggingface_hub": ("huggingface_hub", "hub"),
    "playwright": ("playwright", "test"),
    "ray": ("ray[data]", "ray"),
}


def is_available(module: str) -> bool:
    """True when `module` can be imported, without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def require(module: str, extra: str | None = None) -> ModuleType:
    """Import `module` or raise MissingDependencyError naming the install command."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        dist, default_extra = KNOWN.get(module.split(".")[0], (module, None))
        extra = extra or default_extra
        hint = f"pip install 'ctxdata[{extra}]'" if extra else f"pip install {dist}"
        raise MissingDependencyError(f"{module} is needed here but is not installed ({exc}). Install it with: {hint}") from exc


def check(*modules: str, extra: str | None = None) -> None:
    """Fail early (at construction) when any of `modules` is missing, without importing them."""
    for module in modules:
        if not is_available(module):
            require(module, extra)
