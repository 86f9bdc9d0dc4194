"""A tiny random Stable Diffusion pipeline (~31k parameters), built and saved offline.

The recipe of ``shared/spec/offline.md``: UNet (4, 8) channels, a 2-block VAE, DDIM, a
2-layer CLIP text encoder of width 8 and a character-level CLIP tokenizer written to a
folder. Saved with ``save_pretrained`` so tests load it back through the production loader
(``diffusers:<folder>``, ``local_files_only``). The benchmark builds it the same way.
"""

from __future__ import annotations

import json
from pathlib import Path

MAX_TOKENS = 16


def write_char_tokenizer(folder: Path) -> Path:
    """A character-level CLIP tokenizer: no merges, each printable character a token."""
    folder.mkdir(parents=True, exist_ok=True)
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in map(chr, range(33, 127)):
        vocab.setdefault(c, len(vocab))
        vocab.setdefault(c + "</w>", len(vocab))
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    return folder


def build_tiny_sd(folder: Path, seed: int = 0) -> Path:
    """Build the pipeline with seeded random weights and save it to ``folder``."""
    import torch
    from diffusers import (
        AutoencoderKL,
        DDIMScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(
        write_char_tokenizer(folder.parent / f"{folder.name}-tokenizer"),
        model_max_length=MAX_TOKENS,
    )
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(4, 8), layers_per_block=1, sample_size=32, in_channels=4,
        out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=8,
        norm_num_groups=2,
    )  # fmt: skip
    vae = AutoencoderKL(
        block_out_channels=[4, 8], latent_channels=4, norm_num_groups=2,
        down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
    )  # fmt: skip
    scheduler = DDIMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
        set_alpha_to_one=False, steps_offset=1,
    )  # fmt: skip
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            hidden_size=8, intermediate_size=16, num_attention_heads=2, num_hidden_layers=2,
            vocab_size=len(tokenizer), max_position_embeddings=MAX_TOKENS, bos_token_id=0,
            eos_token_id=1, pad_token_id=1, projection_dim=8,
        )
    )  # fmt: skip
    pipe = StableDiffusionPipeline(
        unet=unet, vae=vae, scheduler=scheduler, text_encoder=text_encoder,
        tokenizer=tokenizer, safety_checker=None, feature_extractor=None,
        requires_safety_checker=False,
    )  # fmt: skip
    pipe.save_pretrained(folder)
    return folder
