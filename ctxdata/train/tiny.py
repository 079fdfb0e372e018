"""Tiny randomly initialised models: the light twin of real checkpoints, built offline in seconds.

`build_tiny_llama(path)` saves a few-hundred-thousand-parameter Llama plus a byte-level BPE
tokenizer (trained on the fly on a small built-in corpus, so nothing is downloaded) with a chat
template. Tests and CI train and probe on it; `--model tiny-llama` selects it from the CLI.
"""

from __future__ import annotations

from pathlib import Path

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}{% for part in m['content'] %}"
    "{% if part['type'] == 'text' %}{{ part['text'] }}{% else %}<image>{% endif %}{% endfor %}{% endif %}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<pad>"]
_CORPUS = [
    "Which context supports the answer? Output A or B directly.",
    "Question: Answer: Context A: Context B: A B",
    "$ python -m pytest tests/ -q\n3 passed, 1 failed in 0.12s\nreturncode 0 1",
    "diff --git a/src/app.py b/src/app.py\n@@ -1,4 +1,5 @@ def main():\n-    return x\n+    return y",
    "What colour is the square? red green blue yellow. How many circles are there? 0 1 2 3 4 5 6 7 8 9",
]


def build_tokenizer(vocab_size: int = 512):
    """A byte-level BPE tokenizer trained on `_CORPUS`, wrapped as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", bos_token="<|endoftext|>", pad_token="<pad>", unk_token=None
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_tiny_llama(path: str | Path, *, hidden_size: int = 64, layers: int = 2, seed: int = 0) -> Path:
    """Save a tiny random LlamaForCausalLM + tokenizer to `path` and return it."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    path = Path(path)
    tokenizer = build_tokenizer()
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


# -- a tiny vision-language model -------------------------------------------------------------------
VLM_SPECIAL = ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
VLM_CHAT_TEMPLATE = CHAT_TEMPLATE.replace("{% else %}<image>{% endif %}", "{% elif part['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>{% endif %}")


def build_tiny_vlm(path: str | Path, *, hidden_size: int = 64, layers: int = 2, seed: int = 0) -> Path:
    """Save a tiny random Qwen2-VL (vision tower + Llama-like text model) and its processor to `path`.

    The processor is assembled offline: the tiny BPE tokenizer plus Qwen2-VL's vision special
    tokens, a Qwen2-VL image processor limited to 28x28..56x56 pixels (1-4 image tokens per image,
    so two-image prompts stay short), and a chat template that renders `{"type": "image"}` parts
    as `<|vision_start|><|image_pad|><|vision_end|>`. Load it with `AutoProcessor` and
    `AutoModelForImageTextToText`.
    """
    import torch
    from transformers import (
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
        Qwen2VLImageProcessor,
        Qwen2VLProcessor,
        Qwen2VLVideoProcessor,
    )

    path = Path(path)
    tokenizer = build_tokenizer()
    tokenizer.add_special_tokens({"additional_special_tokens": VLM_SPECIAL})
    tokenizer.chat_template = VLM_CHAT_TEMPLATE
    pixels = dict(min_pixels=28 * 28, max_pixels=56 * 56, patch_size=14, merge_size=2, temporal_patch_size=2)
    processor = Qwen2VLProcessor(
        image_processor=Qwen2VLImageProcessor(**pixels),
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(**pixels),
        chat_template=VLM_CHAT_TEMPLATE,
    )
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in VLM_SPECIAL}
    head_dim = hidden_size // 4
    quarter = head_dim // 8  # M-RoPE splits head_dim / 2 over (temporal, height, width)
    config = Qwen2VLConfig(
        text_config=dict(
            vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=hidden_size * 2, num_hidden_layers=layers,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [head_dim // 2 - 2 * quarter, quarter, quarter]},
            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        ),
        vision_config=dict(depth=1, embed_dim=32, hidden_size=hidden_size, num_heads=2, mlp_ratio=2, patch_size=14, spatial_merge_size=2, temporal_patch_size=2),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
    )
    torch.manual_seed(seed)
    model = Qwen2VLForConditionalGeneration(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path
