"""Tiny randomly initialised diffusion pipelines: the light twins of SDXL inpainting and InstructPix2Pix.

They have the real architectures (UNet2DConditionModel, AutoencoderKL, CLIP text encoders, the real
CLIP BPE tokenizer rebuilt from open_clip's `bpe_simple_vocab_16e6.txt.gz`), just a few thousand
parameters per block, so the editors' real code path runs end to end on the CPU in seconds. The
images they produce are noise-like: they test plumbing, never quality. Configs follow the dummy
components of diffusers' own pipeline tests.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path


def write_clip_tokenizer(path: Path) -> Path:
    """vocab.json + merges.txt of the real CLIP BPE (49408 tokens), from open_clip's merges file."""
    import importlib.util

    from open_clip.tokenizer import bytes_to_unicode

    bpe = Path(importlib.util.find_spec("open_clip").submodule_search_locations[0]) / "bpe_simple_vocab_16e6.txt.gz"
    merges = gzip.open(bpe).read().decode("utf-8").split("\n")[1:49152 - 256 - 2 + 1]
    chars = list(bytes_to_unicode().values())
    vocab = chars + [c + "</w>" for c in chars] + ["".join(m.split()) for m in merges] + ["<|startoftext|>", "<|endoftext|>"]
    path.mkdir(parents=True, exist_ok=True)
    (path / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}))
    (path / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    return path


def _tokenizer(tmp: Path):
    from transformers import CLIPTokenizer

    write_clip_tokenizer(tmp)
    return CLIPTokenizer(str(tmp / "vocab.json"), str(tmp / "merges.txt"), model_max_length=77, pad_token="<|endoftext|>")


def _text_config(hidden: int = 32):
    from transformers import CLIPTextConfig

    return CLIPTextConfig(bos_token_id=49406, eos_token_id=49407, pad_token_id=49407, hidden_size=hidden, intermediate_size=37,
                          num_attention_heads=4, num_hidden_layers=2, vocab_size=49408, projection_dim=32, hidden_act="gelu")


def _vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(block_out_channels=[32, 64], in_channels=3, out_channels=3, latent_channels=4, sample_size=64,
                         down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"], up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"])


def build_tiny_sdxl_inpaint(path: str | Path, seed: int = 0) -> Path:
    """Save a tiny random StableDiffusionXLInpaintPipeline to `path`."""
    import torch
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLInpaintPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    path = Path(path)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=32, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4), use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 1), projection_class_embeddings_input_dim=6 * 8 + 32, cross_attention_dim=64, norm_num_groups=32,
    )
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, steps_offset=1, beta_schedule="scaled_linear", timestep_spacing="leading")
    tokenizer = _tokenizer(path / "_tok")
    pipe = StableDiffusionXLInpaintPipeline(
        vae=_vae(), text_encoder=CLIPTextModel(_text_config()), text_encoder_2=CLIPTextModelWithProjection(_text_config()),
        tokenizer=tokenizer, tokenizer_2=tokenizer, unet=unet, scheduler=scheduler, requires_aesthetics_score=False,
    )
    pipe.save_pretrained(path)
    return path


def build_tiny_instruct_pix2pix(path: str | Path, seed: int = 0) -> Path:
    """Save a tiny random StableDiffusionInstructPix2PixPipeline (SD 1.x layout) to `path`."""
    import torch
    from diffusers import PNDMScheduler, StableDiffusionInstructPix2PixPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel

    path = Path(path)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=32, in_channels=8, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32,
    )
    pipe = StableDiffusionInstructPix2PixPipeline(
        vae=_vae(), text_encoder=CLIPTextModel(_text_config()), tokenizer=_tokenizer(path / "_tok"), unet=unet,
        scheduler=PNDMScheduler(skip_prk_steps=True), safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipe.save_pretrained(path)
    return path
