"""Tiny random diffusers pipelines (SD ~31k parameters; SDXL, FLUX.1, SD3), built offline.

The recipe of ``shared/spec/offline.md``: UNet (4, 8) channels, a 2-block VAE, DDIM, a
2-layer CLIP text encoder of width 8 and a character-level CLIP tokenizer written to a
folder. SDXL adds its text-time UNet and second (projecting) CLIP encoder; FLUX.1 and SD3
their flow transformers, FlowMatch scheduler and a T5 encoder with a character-level T5
tokenizer (the layouts of diffusers' own fast tests, with no hub file). Saved with ``save_pretrained`` so tests load it back through the production loader
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


def sd_vae() -> object:
    """The tiny 2-block VAE of the SD and SDXL layouts (4 latent channels)."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        block_out_channels=[4, 8], latent_channels=4, norm_num_groups=2,
        down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
    )  # fmt: skip


def build_tiny_sd(folder: Path, seed: int = 0) -> Path:
    """Build the pipeline with seeded random weights and save it to ``folder``."""
    import torch
    from diffusers import (
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
    vae = sd_vae()
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


def write_char_t5_tokenizer(folder: Path) -> Path:
    """A character-level T5 tokenizer (Unigram, one piece per printable character)."""
    from transformers import T5TokenizerFast

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -1.0)]
    pieces += [(c, -1.0) for c in map(chr, range(33, 127))]
    T5TokenizerFast(vocab=pieces, extra_ids=0).save_pretrained(folder)
    return folder


def _clip_tokenizer(folder: Path) -> object:
    from transformers import CLIPTokenizer

    return CLIPTokenizer.from_pretrained(
        write_char_tokenizer(folder.parent / f"{folder.name}-tokenizer"),
        model_max_length=MAX_TOKENS,
    )


def _clip_config(tokenizer: object, width: int = 32) -> object:
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        hidden_size=width, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
        vocab_size=len(tokenizer), max_position_embeddings=MAX_TOKENS, bos_token_id=0,
        eos_token_id=1, pad_token_id=1, projection_dim=width, hidden_act="gelu",
    )  # fmt: skip


def _t5(folder: Path, width: int = 32) -> tuple[object, object]:
    from transformers import T5Config, T5EncoderModel, T5TokenizerFast

    tokenizer = T5TokenizerFast.from_pretrained(
        write_char_t5_tokenizer(folder.parent / f"{folder.name}-t5-tokenizer")
    )
    config = T5Config(d_model=width, d_kv=8, num_heads=4, num_layers=2, d_ff=37,
                      vocab_size=len(tokenizer), pad_token_id=0, eos_token_id=1)  # fmt: skip
    encoder = T5EncoderModel(config)
    return tokenizer, encoder


def _flow_vae(latent_channels: int) -> object:
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        sample_size=32, in_channels=3, out_channels=3, block_out_channels=(4,),
        layers_per_block=1, latent_channels=latent_channels, norm_num_groups=1,
        use_quant_conv=False, use_post_quant_conv=False, shift_factor=0.0609,
        scaling_factor=1.5035,
    )  # fmt: skip


def build_tiny_sdxl(folder: Path, seed: int = 0) -> Path:
    """SDXL's layout: a text-time conditioned UNet and its two CLIP text encoders."""
    import torch
    from diffusers import (
        EulerDiscreteScheduler,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    tokenizer = _clip_tokenizer(folder)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(4, 8), layers_per_block=1, sample_size=32, in_channels=4,
        out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), attention_head_dim=(2, 4),
        use_linear_projection=True, addition_embed_type="text_time",
        addition_time_embed_dim=8, transformer_layers_per_block=(1, 2),
        projection_class_embeddings_input_dim=6 * 8 + 32, cross_attention_dim=64,
        norm_num_groups=2,
    )  # fmt: skip
    vae = sd_vae()
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1,
        timestep_spacing="leading",
    )  # fmt: skip
    config = _clip_config(tokenizer)
    pipe = StableDiffusionXLPipeline(
        unet=unet, vae=vae, scheduler=scheduler, text_encoder=CLIPTextModel(config),
        tokenizer=tokenizer, text_encoder_2=CLIPTextModelWithProjection(config),
        tokenizer_2=tokenizer,
    )  # fmt: skip
    pipe.save_pretrained(folder)
    return folder


def build_tiny_flux(folder: Path, seed: int = 0, guidance_embeds: bool = False) -> Path:
    """FLUX.1's layout: a flow transformer, CLIP + T5 text encoders, a 16-channel-style VAE.

    ``guidance_embeds=False`` is schnell's transformer, True dev's (guidance-distilled).
    """
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import CLIPTextModel

    tokenizer = _clip_tokenizer(folder)
    torch.manual_seed(seed)
    tokenizer_2, text_encoder_2 = _t5(folder)
    transformer = FluxTransformer2DModel(
        patch_size=1, in_channels=4, num_layers=1, num_single_layers=1, attention_head_dim=16,
        num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32,
        axes_dims_rope=[4, 4, 8], guidance_embeds=guidance_embeds,
    )  # fmt: skip
    pipe = FluxPipeline(
        transformer=transformer, vae=_flow_vae(1), scheduler=FlowMatchEulerDiscreteScheduler(),
        text_encoder=CLIPTextModel(_clip_config(tokenizer)), tokenizer=tokenizer,
        text_encoder_2=text_encoder_2, tokenizer_2=tokenizer_2,
    )  # fmt: skip
    pipe.save_pretrained(folder)
    return folder


def build_tiny_sd3(folder: Path, seed: int = 0) -> Path:
    """SD3's layout: an MMDiT transformer, two CLIP text encoders with projection and T5."""
    import torch
    from diffusers import (
        FlowMatchEulerDiscreteScheduler,
        SD3Transformer2DModel,
        StableDiffusion3Pipeline,
    )
    from transformers import CLIPTextModelWithProjection

    tokenizer = _clip_tokenizer(folder)
    torch.manual_seed(seed)
    tokenizer_3, text_encoder_3 = _t5(folder)
    transformer = SD3Transformer2DModel(
        sample_size=32, patch_size=1, in_channels=4, num_layers=1, attention_head_dim=8,
        num_attention_heads=4, caption_projection_dim=32, joint_attention_dim=32,
        pooled_projection_dim=64, out_channels=4,
    )  # fmt: skip
    config = _clip_config(tokenizer)
    pipe = StableDiffusion3Pipeline(
        transformer=transformer, vae=_flow_vae(4), scheduler=FlowMatchEulerDiscreteScheduler(),
        text_encoder=CLIPTextModelWithProjection(config), tokenizer=tokenizer,
        text_encoder_2=CLIPTextModelWithProjection(config), tokenizer_2=tokenizer,
        text_encoder_3=text_encoder_3, tokenizer_3=tokenizer_3,
    )  # fmt: skip
    pipe.save_pretrained(folder)
    return folder
