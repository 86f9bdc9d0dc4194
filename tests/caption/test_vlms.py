"""Each transformers architecture family, on a tiny random model loaded back offline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from atlantis.caption import transformers_backend as tb
from atlantis.caption.config import CaptionConfig
from atlantis.caption.registry import create_captioner
from atlantis.caption.stage import caption, load_captioned
from atlantis.config import DataConfig
from atlantis.data.ingest import ingest
from atlantis.errors import ConfigError
from atlantis.store.run import Run

from .conftest import noise_images, write_images


class Recorder:
    """Wraps a processor and records every call's keyword arguments."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.calls = inner, []

    def __call__(self, **kwargs: Any) -> Any:
        self.calls.append(kwargs)
        return self.inner(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def loaded(folder: Path, **options: Any) -> tb.TransformersCaptioner:
    cap = create_captioner(f"transformers:{folder}", local_files_only=True, max_new_tokens=4,
                           **options)  # fmt: skip
    assert isinstance(cap, tb.TransformersCaptioner)
    cap.load()
    cap._processor = Recorder(cap._processor)
    return cap


def test_strip_prompt_ignores_case_and_spacing() -> None:
    q = "Question: what is shown? Answer:"
    assert tb.strip_prompt("question : what is shown ? answer : a dog", q) == "a dog"
    assert tb.strip_prompt("a dog on grass", q) == "a dog on grass"
    assert tb.strip_prompt("question: what", q) == "question: what"  # a partial echo stays
    assert tb.is_prefix("a photo of") and not tb.is_prefix(q)


def test_blip2_question_prompt_never_reaches_the_caption(tiny_vlm: Any, offline: None) -> None:
    q = "Question: what is shown? Answer:"
    cap = loaded(tiny_vlm("blip2"), prompt=q)
    texts = cap.caption_images(noise_images(3), progress=False)
    assert cap.style == "plain" and cap._processor.calls[0]["text"] == [q] * 3
    assert all(t and not t.lower().startswith("question") for t in texts)
    assert all(len(t.split()) <= 4 for t in texts)  # new tokens only, no echo
    prefix = loaded(tiny_vlm("blip2"), prompt="a photo of")
    assert all(t.startswith("a photo of ") for t in prefix.caption_images(noise_images(2), False))
    kept = loaded(tiny_vlm("blip2"), prompt=q, keep_prompt=True)
    assert all(t.startswith(q) for t in kept.caption_images(noise_images(2), False))


@pytest.mark.parametrize("arch", ["qwen2_vl", "llava"])
def test_chat_vlm_template_left_padding_new_tokens(arch: str, tiny_vlm: Any, offline: None) -> None:
    cap = loaded(tiny_vlm(arch), batch_size=3, prompt="describe the image .")
    images = noise_images(3)
    batched = cap.caption_images(images, progress=False)
    assert cap.style == "chat" and cap._processor.tokenizer.padding_side == "left"
    [call] = cap._processor.calls
    text = call["text"][0]
    assert text.startswith("user :") and text.rstrip().endswith("assistant :")  # the template
    assert "describe the image ." in text and ("<image>" in text or "<|image_pad|>" in text)
    assert [len(im) for im in call["images"]] == [1, 1, 1]
    assert all(0 < len(t.split()) <= 4 for t in batched)  # only the new tokens are decoded
    # Left padding: a batch gives what one image at a time gives.
    single = loaded(tiny_vlm(arch), batch_size=1, prompt="describe the image .")
    assert single.caption_images(images, progress=False) == batched


def test_chat_vlms_through_the_stage(tiny_vlm: Any, offline: None, tmp_path: Path) -> None:
    root = tmp_path / "data"
    paths = write_images(root, noise_images(4, seed=5))
    (root / "manifest.jsonl").write_text("".join(
        f'{{"path": "{p.name}", "label": "c{i % 2}"}}\n' for i, p in enumerate(paths)))  # fmt: skip
    run = Run(tmp_path / "run")
    ingest(run, DataConfig(format="manifest", root=str(root), val_fraction=0.0))
    for arch in ("qwen2_vl", "llava"):
        opts = {"local_files_only": True, "max_new_tokens": 3}
        cfg = CaptionConfig(captioner=f"transformers:{tiny_vlm(arch)}", options=opts,
                            batch_size=2, splits=["all"])  # fmt: skip
        m = caption(run, cfg, progress=False)
        assert (m.counts["images"], m.counts["empty"], m.counts["computed"]) == (4, 0, 4)
        assert m.info["is_model"] is True and '"dtype": "float32"' in m.info["captioner_key"]
        assert all(0 < len(r.captions[0].split()) <= 3 for r in load_captioned(run))


def test_florence2_native_class_and_task_token(tiny_vlm: Any, offline: None) -> None:
    cap = loaded(tiny_vlm("florence2"), batch_size=2)
    texts = cap.caption_images(noise_images(2), progress=False)
    assert cap.style == "florence" and type(cap._model).__name__.startswith("Florence2")
    assert cap._processor.calls[0]["text"] == ["<MORE_DETAILED_CAPTION>"] * 2
    assert all(0 < len(t.split()) <= 4 for t in texts)
    other = loaded(tiny_vlm("florence2"), task="<CAPTION>")
    other.caption_images(noise_images(1), progress=False)
    assert other._processor.calls[0]["text"] == ["<CAPTION>"] and other.key != cap.key
    with pytest.raises(ConfigError, match="task token"):
        create_captioner("transformers:x", task="caption")


def test_florence2_without_the_native_class_says_so(
    tiny_vlm: Any, offline: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tb, "native_class", lambda tf, name: None)
    cap = create_captioner(f"transformers:{tiny_vlm('florence2')}", local_files_only=True)
    with pytest.raises(ConfigError, match="no Florence2ForConditionalGeneration"):
        cap.load()


def test_dtype_defaults_to_half_on_gpu_fp32_on_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    assert tb.choose_dtype(None, "cpu") == "float32"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert tb.choose_dtype(None, "cuda:0") == "bfloat16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert tb.choose_dtype(None, "cuda") == "float16"
    assert tb.choose_dtype("float32", "cuda") == "float32"  # asked for: kept
    cap = create_captioner("transformers:x")
    assert '"dtype": "float32"' in cap.key  # on the CPU
