"""Embedders on real photos (scikit-image's bundled images): shape, unit norm, determinism, semantics."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

pytest.importorskip("torch")
skdata = pytest.importorskip("skimage.data")

from PIL import Image  # noqa: E402

from ctxdata.errors import ConfigError, ModelNotFoundError  # noqa: E402
from ctxdata.vision.embed import EMBEDDERS, make_embedder  # noqa: E402


def photos() -> list[Image.Image]:
    """Four different real photos plus a slightly shifted crop of the first (index 4)."""
    cat = skdata.chelsea()
    return [
        Image.fromarray(cat),
        Image.fromarray(skdata.coffee()),
        Image.fromarray(skdata.astronaut()),
        Image.fromarray(skdata.rocket()),
        Image.fromarray(cat[12:, 16:]),
    ]


def assert_unit_rows(v: np.ndarray, n: int, dim: int) -> None:
    assert v.shape == (n, dim) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)


def test_registry_and_unknown_spec():
    assert set(EMBEDDERS) == {"efficientnet-lite0", "open_clip", "hf"}
    with pytest.raises(ConfigError, match="valid: efficientnet-lite0"):
        make_embedder("resnet-9000")


def test_efficientnet_lite0_real_weights_features():
    emb = make_embedder("efficientnet-lite0", batch_size=2)
    assert emb._model is None and emb.dim == 1280  # cheap: nothing built yet
    pickle.loads(pickle.dumps(emb))
    imgs = photos()
    v = emb.embed(imgs, progress=False)
    assert_unit_rows(v, 5, 1280)
    sims = v @ v.T
    # The shifted crop of the cat is closer to the cat than any two different photos are to each other.
    different = sims[:4, :4][~np.eye(4, dtype=bool)]
    assert sims[0, 4] > 0.9 > different.max(), sims.round(3)
    # Deterministic, independent of batching, and picklable after use (the model is dropped).
    again = make_embedder("efficientnet-lite0", batch_size=4).embed(imgs, progress=False)
    np.testing.assert_allclose(v, again, atol=1e-5)
    assert pickle.loads(pickle.dumps(emb))._model is None


def test_data_parallel_cpu_path_matches_the_pipelined_path_and_restores_threads():
    import torch

    imgs = photos() * 2  # 10 images, batches of 2: five batches over the worker threads
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        parallel = make_embedder("efficientnet-lite0", batch_size=2).embed(imgs, progress=False)
        assert torch.get_num_threads() == 2  # embed ran its workers single-threaded, then restored the pool
        torch.set_num_threads(1)  # one thread: the pipelined path with its prefetch thread
        pipelined = make_embedder("efficientnet-lite0", batch_size=2).embed(imgs, progress=False)
    finally:
        torch.set_num_threads(before)
    assert_unit_rows(parallel, 10, 1280)
    np.testing.assert_allclose(parallel, pipelined, atol=1e-5)
    np.testing.assert_allclose(parallel[:5], parallel[5:], atol=1e-6)  # input order kept across workers


def test_efficientnet_weights_classify_the_cat_and_the_espresso():
    """Real ImageNet weights, correctly preprocessed: tabby/tiger/Egyptian cat and espresso win."""
    import torch

    emb = make_embedder("efficientnet-lite0")
    batch = emb.preprocess(photos()[:2])
    with torch.inference_mode():
        top1 = emb._model(batch).argmax(dim=1).tolist()
    assert top1[0] in (281, 282, 285) and top1[1] == 967, top1


def test_embed_accepts_paths_and_grayscale(tmp_path):
    emb = make_embedder("efficientnet-lite0")
    path = tmp_path / "camera.png"
    Image.fromarray(skdata.camera()).save(path)  # a grayscale photo on disk
    v = emb.embed([path, Image.fromarray(skdata.camera())], progress=True)
    assert_unit_rows(v, 2, 1280)
    assert float(v[0] @ v[1]) > 0.999
    assert emb.embed([], progress=False).shape == (0, 1280)


def test_open_clip_random_weights_are_seeded():
    pytest.importorskip("open_clip")
    a = make_embedder("open_clip:ViT-S-32", batch_size=3)
    assert a.dim == 384 and a._model is None
    imgs = photos()[:4]
    va = a.embed(imgs, progress=False)
    assert_unit_rows(va, 4, 384)
    vb = make_embedder("open_clip:ViT-S-32").embed(imgs, progress=False)
    np.testing.assert_allclose(va, vb, atol=1e-5)  # random init is seeded: same weights every build
    assert_unit_rows(a.embed_texts(["a cat", "a cup of coffee"]), 2, 384)


def test_open_clip_errors(tmp_path):
    pytest.importorskip("open_clip")
    with pytest.raises(ConfigError, match="unknown open_clip architecture"):
        make_embedder("open_clip:NotAViT")
    with pytest.raises(ModelNotFoundError, match="pass open_clip:ViT-B-32:<path"):
        make_embedder(f"open_clip:ViT-B-32:{tmp_path / 'missing.bin'}")
    with pytest.raises(ConfigError, match="no text tower"):
        make_embedder("efficientnet-lite0").embed_texts(["x"])


def build_tiny_clip(path, with_tokenizer: bool = True):
    """A tiny random CLIPModel + processor saved to `path` (byte-level vocab, no merges)."""
    import torch
    from open_clip.tokenizer import bytes_to_unicode
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    chars = list(bytes_to_unicode().values())
    vocab = {t: i for i, t in enumerate(chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"])}
    (path / "vocab.json").write_text(json.dumps(vocab))
    (path / "merges.txt").write_text("#version: 0.2\n")
    torch.manual_seed(0)
    tiny = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)
    config = CLIPConfig(
        text_config=dict(vocab_size=len(vocab), max_position_embeddings=16, **tiny),
        vision_config=dict(image_size=32, patch_size=8, **tiny),
        projection_dim=16,
    )
    model_dir = path / "tiny-clip"
    CLIPModel(config).save_pretrained(model_dir)
    images = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    if with_tokenizer:
        tokenizer = CLIPTokenizer(str(path / "vocab.json"), str(path / "merges.txt"))
        CLIPProcessor(image_processor=images, tokenizer=tokenizer).save_pretrained(model_dir)
    else:
        images.save_pretrained(model_dir)
    return model_dir


def test_hf_tiny_clip(tmp_path):
    pytest.importorskip("transformers")
    model_dir = build_tiny_clip(tmp_path)
    emb = make_embedder(f"hf:{model_dir}", batch_size=2)
    assert emb.dim == 16 and emb._model is None  # dim comes from config.json alone
    imgs = photos()
    v = emb.embed(imgs, progress=False)
    assert_unit_rows(v, 5, 16)
    np.testing.assert_allclose(v, emb.embed(imgs, progress=False), atol=1e-6)
    assert_unit_rows(emb.embed_texts(["a cat", "an espresso"]), 2, 16)
    assert pickle.loads(pickle.dumps(emb))._model is None


def test_hf_image_processor_only_and_missing_model(tmp_path):
    pytest.importorskip("transformers")
    emb = make_embedder(f"hf:{build_tiny_clip(tmp_path, with_tokenizer=False)}")
    assert_unit_rows(emb.embed(photos()[:2], progress=False), 2, 16)
    with pytest.raises(ModelNotFoundError, match="hf download"):
        make_embedder(f"hf:{tmp_path / 'no-such-model'}").embed(photos()[:1])
