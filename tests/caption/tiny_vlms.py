"""Tiny random vision-language models of the real architectures, saved like hub snapshots.

Each builder writes a model (hidden sizes 16-32, 1-2 layers, images of 28-32 px) and its
processor to ``folder`` with ``save_pretrained``; the tests load them back through the
production loader offline. The tokenizers are word-level, written here: no hub, no files
from anywhere else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

WORDS = ["a", "photo", "of", "the", "cat", "dog", "on", "beach", "red", "blue", "in", "with",
         "grass", "what", "is", "shown", "question", "answer", "describe", "image", ":", "?",
         ".", "user", "assistant", *(f"w{i}" for i in range(60))]  # fmt: skip

#: A minimal chat template in the processors' format: a content list of image and text parts.
CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }} :"
    "{% for c in m['content'] %}{% if c['type'] == 'image' %} IMAGE_SLOT"
    "{% else %} {{ c['text'] }}{% endif %}{% endfor %} <eot> {% endfor %}"
    "{% if add_generation_prompt %}assistant :{% endif %}"
)


def word_tokenizer(tf: Any, specials: dict[str, str], extra: dict[str, str] | None = None) -> Any:
    """A whitespace word-level fast tokenizer over ``WORDS`` plus ``specials``' tokens."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    names = list(dict.fromkeys([*specials.values(), *(extra or {}).values(), "<eot>"]))
    vocab = {w: i for i, w in enumerate([*names, *WORDS])}
    raw = Tokenizer(models.WordLevel(vocab, unk_token=specials["unk_token"]))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = tf.PreTrainedTokenizerFast(tokenizer_object=raw, **specials,
                                     extra_special_tokens=extra or {})  # fmt: skip
    tok.add_special_tokens({"additional_special_tokens": names})
    return tok


def _seeded(model: Any, scale: float = 0.5) -> Any:
    """Wider than the default init so that different images give different text."""
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0.0, scale)
    return model


def tiny_qwen2_vl(tf: Any, folder: Path) -> Path:
    """Qwen2-VL: a decoder-only chat VLM whose processor expands one image pad per patch group."""
    specials = {"unk_token": "<unk>", "pad_token": "<pad>", "bos_token": "<s>", "eos_token": "</s>"}
    extra = {"image_token": "<|image_pad|>", "video_token": "<|video_pad|>",
             "vision_start_token": "<|vision_start|>", "vision_end_token": "<|vision_end|>"}  # fmt: skip
    tok = word_tokenizer(tf, specials, extra)
    template = CHAT_TEMPLATE.replace("IMAGE_SLOT", "<|vision_start|> <|image_pad|> <|vision_end|>")
    ids = {k: tok.convert_tokens_to_ids(v) for k, v in extra.items()}
    config = tf.Qwen2VLConfig(
        text_config={"vocab_size": len(tok), "hidden_size": 32, "intermediate_size": 64,
                     "num_hidden_layers": 1, "num_attention_heads": 4, "num_key_value_heads": 2,
                     "max_position_embeddings": 512,
                     "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0,
                                         "mrope_section": [2, 1, 1]},
                     "bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id,
                     "pad_token_id": tok.pad_token_id},
        vision_config={"depth": 1, "embed_dim": 16, "hidden_size": 32, "num_heads": 2,
                       "patch_size": 4, "spatial_merge_size": 2, "temporal_patch_size": 2},
        image_token_id=ids["image_token"], video_token_id=ids["video_token"],
        vision_start_token_id=ids["vision_start_token"],
        vision_end_token_id=ids["vision_end_token"],
    )  # fmt: skip
    _seeded(tf.Qwen2VLForConditionalGeneration(config)).save_pretrained(folder)
    images = tf.Qwen2VLImageProcessor(min_pixels=32 * 32, max_pixels=32 * 32, patch_size=4,
                                      merge_size=2, temporal_patch_size=2)  # fmt: skip
    video = tf.Qwen2VLVideoProcessor(min_pixels=32 * 32, max_pixels=32 * 32, patch_size=4,
                                     merge_size=2, temporal_patch_size=2)  # fmt: skip
    tf.Qwen2VLProcessor(image_processor=images, tokenizer=tok, video_processor=video,
                        chat_template=template).save_pretrained(folder)  # fmt: skip
    return folder


def tiny_llava(tf: Any, folder: Path) -> Path:
    """LLaVA: CLIP vision tower + projector + Llama; ``<image>`` expands to one token per patch."""
    specials = {"unk_token": "<unk>", "pad_token": "<pad>", "bos_token": "<s>", "eos_token": "</s>"}
    tok = word_tokenizer(tf, specials, {"image_token": "<image>"})
    config = tf.LlavaConfig(
        vision_config=tf.CLIPVisionConfig(hidden_size=16, intermediate_size=32,
                                          num_hidden_layers=2, num_attention_heads=2,
                                          image_size=28, patch_size=14, projection_dim=16),
        text_config=tf.LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                                   num_hidden_layers=1, num_attention_heads=4,
                                   num_key_value_heads=2, bos_token_id=tok.bos_token_id,
                                   eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id),
        image_token_id=tok.convert_tokens_to_ids("<image>"), vision_feature_layer=-1,
        vision_feature_select_strategy="default", projector_hidden_act="gelu",
    )  # fmt: skip
    _seeded(tf.LlavaForConditionalGeneration(config)).save_pretrained(folder)
    images = tf.CLIPImageProcessor(size={"shortest_edge": 28},
                                   crop_size={"height": 28, "width": 28})  # fmt: skip
    tf.LlavaProcessor(image_processor=images, tokenizer=tok, patch_size=14,
                      vision_feature_select_strategy="default", num_additional_image_tokens=1,
                      chat_template=CHAT_TEMPLATE.replace("IMAGE_SLOT", "<image>"),
                      ).save_pretrained(folder)  # fmt: skip
    return folder


def tiny_blip2(tf: Any, folder: Path) -> Path:
    """BLIP-2: ViT + Q-Former + OPT; the processor prepends one image token per query."""
    specials = {
        "unk_token": "<unk>",
        "pad_token": "<pad>",
        "bos_token": "</s>",
        "eos_token": "</s>",
    }
    tok = word_tokenizer(tf, specials)  # the processor adds "<image>" as the last token
    image_id = len(tok)
    config = tf.Blip2Config(
        vision_config={"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
                       "num_attention_heads": 2, "image_size": 28, "patch_size": 14},
        qformer_config={"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
                        "num_attention_heads": 2, "encoder_hidden_size": 16, "vocab_size": 30},
        text_config={"model_type": "opt", "vocab_size": image_id + 1, "hidden_size": 32,
                     "ffn_dim": 64, "num_hidden_layers": 1, "num_attention_heads": 4,
                     "word_embed_proj_dim": 32, "max_position_embeddings": 128,
                     "bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id,
                     "pad_token_id": tok.pad_token_id},
        num_query_tokens=2, image_token_index=image_id,
    )  # fmt: skip
    _seeded(tf.Blip2ForConditionalGeneration(config)).save_pretrained(folder)
    images = tf.BlipImageProcessor(size={"height": 28, "width": 28})
    processor = tf.Blip2Processor(images, tok, num_query_tokens=2)
    assert tok.convert_tokens_to_ids("<image>") == image_id
    processor.save_pretrained(folder)
    return folder


def tiny_florence2(tf: Any, folder: Path) -> Path:
    """Florence-2 (native class): DaViT vision tower + BART; task tokens become prompts."""
    specials = {"unk_token": "<unk>", "pad_token": "<pad>", "bos_token": "<s>", "eos_token": "</s>"}
    tok = word_tokenizer(tf, specials, {"image_token": "<image>"})
    config = tf.Florence2Config(
        vision_config={"depths": [1, 1], "patch_size": [7, 3], "patch_stride": [4, 2],
                       "patch_padding": [3, 1], "patch_prenorm": [False, True],
                       "embed_dim": [16, 32], "num_heads": [2, 2], "num_groups": [2, 2],
                       "window_size": 2, "projection_dim": 32, "drop_path_rate": 0.0},
        text_config={"vocab_size": len(tok), "d_model": 32, "encoder_layers": 1,
                     "decoder_layers": 1, "encoder_attention_heads": 4,
                     "decoder_attention_heads": 4, "encoder_ffn_dim": 64, "decoder_ffn_dim": 64,
                     "max_position_embeddings": 128, "bos_token_id": tok.bos_token_id,
                     "eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id,
                     "decoder_start_token_id": tok.eos_token_id,
                     "forced_eos_token_id": None},
        image_token_id=tok.convert_tokens_to_ids("<image>"),
    )  # fmt: skip
    _seeded(tf.Florence2ForConditionalGeneration(config)).save_pretrained(folder)
    images = tf.CLIPImageProcessor(size={"height": 32, "width": 32}, do_center_crop=False,
                                   image_seq_length=17)  # fmt: skip
    tf.Florence2Processor(image_processor=images, tokenizer=tok).save_pretrained(folder)
    return folder
