"""The one interface every image source implements: plan items in, one image (or a reason) out.

A source is anything that turns the planner's descriptions into training images: a
text-to-image model (``diffusers_source``) or a pool of real images picked by text
(``retrieve_source``). Sources only say how to make one batch. Batching, CUDA-OOM fallback,
workers, the resume log and the files live in ``executor`` and ``outputs``, once.

Every output is *content-addressed by its request*: ``address(item)`` is the sha256 of the
source's ``identity`` (model, weights and every parameter that changes pixels) with the
item's description, negative prompt, seed and reference images. The image file is named
after it, so a re-run, a resume or another executor never makes the same image twice, and
two requests that could give different pixels never share a file.

Construction must stay cheap: ``--help`` and config validation build sources, so models
load on first use (``load``) and heavy libraries are imported inside the backends.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol

from PIL import Image

from atlantis.data.records import ImageRecord, Source
from atlantis.embed.base import resolve_device

#: Bump when the address recipe changes (it would otherwise silently reuse other images).
ADDRESS_VERSION = 1


class PlanItem(Protocol):
    """What a source reads of one ``atlantis.plan.schema.PlanItem``."""

    id: str
    class_name: str
    domain: str | None
    description: str
    negative_prompt: str | None
    seed: int
    reference_image_ids: list[str]


@dataclass(frozen=True)
class ItemSpec:
    """A plain, picklable copy of the fields above, for shipping items to remote workers."""

    id: str
    class_name: str
    description: str
    seed: int
    domain: str | None = None
    negative_prompt: str | None = None
    reference_image_ids: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, item: PlanItem) -> ItemSpec:
        return cls(
            id=item.id, class_name=item.class_name, description=item.description,
            seed=int(item.seed), domain=item.domain, negative_prompt=item.negative_prompt,
            reference_image_ids=list(item.reference_image_ids or []),
        )  # fmt: skip


@dataclass
class SourceResult:
    """One item's outcome: an image and how it was made, or the reason there is none."""

    image: Image.Image | None = None
    error: str | None = None
    seed: int | None = None  # the seed actually used (differs from the plan's after a retry)
    attempts: int = 1
    parent_ids: list[str] = field(default_factory=list)  # real images it was made from
    params: dict[str, Any] = field(default_factory=dict)  # per-image provenance (score, pool file)
    caption: str | None = None  # what the image shows, when the source knows (retrieval)

    @property
    def ok(self) -> bool:
        return self.image is not None and self.error is None


@dataclass(frozen=True)
class PoolView:
    """The real images a retrieval source picks from: the stage checks them against the
    run's dataset before any is picked (``pool_leak``)."""

    folder: Path
    files: list[str]  # usable files, relative to ``folder``
    on_leak: Literal["drop", "refuse"] = "drop"


class ImageSource(ABC):
    """Plan items -> images. Subclasses register in ``generate.registry``."""

    #: The records' ``source`` field for this source's images.
    kind: ClassVar[Source] = "synthetic"
    #: False when items depend on each other (retrieval never uses a pool image twice), so
    #: the source cannot be split across parallel workers.
    parallel_safe: ClassVar[bool] = True
    #: Attributes holding loaded models, dropped when the source is pickled to a worker.
    model_attrs: ClassVar[tuple[str, ...]] = ()

    def __init__(self, *, device: str = "auto", cache_dir: Path | str | None = None) -> None:
        self.requested_device = device
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.show_progress = False  # the stage turns it on for sources with slow loading
        self._device: str | None = None
        self._loaded = False

    # ------------------------------------------------------------ backend contract

    @property
    @abstractmethod
    def identity(self) -> str:
        """Model, weights and every parameter that changes pixels: part of each address.

        Device and batch size must not appear (they change speed, not the request).
        """

    @property
    @abstractmethod
    def model_name(self) -> str:
        """Short human name for the records' ``provenance.model``."""

    @abstractmethod
    def make(
        self, items: Sequence[PlanItem], references: Mapping[str, Path] | None = None
    ) -> list[SourceResult]:
        """One result per item, in order. ``references``: real image id -> file.

        Failures of one item (a black image after every retry, an exhausted pool) come back
        as results with ``error``; exceptions are for problems that sink the whole stage.
        CUDA out-of-memory errors must propagate: the executor halves the batch.
        """

    def _load(self) -> None:  # noqa: B027 - optional hook: sources without a model skip it
        """Load models onto ``self.device``; called once, before the first batch."""

    @property
    def params(self) -> dict[str, Any]:
        """Parameters recorded in every record's ``provenance.params``."""
        return {}

    @property
    def uses_references(self) -> bool:
        """True when ``make`` reads real reference images (the stage then resolves them)."""
        return False

    def parents(self, item: PlanItem) -> list[str]:
        """The reference image ids this source would start ``item`` from (part of its address)."""
        return []

    @property
    def capacity(self) -> int | None:
        """How many distinct images one arm can get (a pool's usable images); None: no limit.

        The stage refuses a plan that asks for more, before sourcing anything.
        """
        return None

    def pool_view(self) -> PoolView | None:
        """The pool of real images this source picks from; None for generators."""
        return None

    def exclude(self, files: Mapping[str, str]) -> None:
        """Never pick these pool ``files`` (file -> why); called before loading."""
        raise NotImplementedError(f"{type(self).__name__} has no pool to exclude files from")

    def restore(self, done: Sequence[ImageRecord]) -> None:  # noqa: B027 - optional hook
        """Learn what earlier (or resumed) runs already made; stateful sources override."""

    def prepare(self, items: Sequence[PlanItem]) -> None:  # noqa: B027 - optional hook
        """See the arm's whole plan (every item, made or not) before any ``make``: a source
        that scores one item against the others' classes (retrieval's class contrast)
        overrides it; ``make`` is then called on chunks of it."""

    # ------------------------------------------------------------ shared behaviour

    @property
    def device(self) -> str:
        if self._device is None:
            self._device = resolve_device(self.requested_device)
        return self._device

    def load(self) -> ImageSource:
        """Load the model now (otherwise it happens on the first batch)."""
        if not self._loaded:
            self._load()
            self._loaded = True
        return self

    def __getstate__(self) -> dict[str, Any]:
        # A worker gets the configuration, not this process's models or resolved device.
        state = dict(self.__dict__)
        state.update({"_device": None, "_loaded": False}, **dict.fromkeys(self.model_attrs))
        return state

    def address(self, item: PlanItem) -> str:
        """The sha256 naming ``item``'s output file (see the module docstring)."""
        request = {
            "v": ADDRESS_VERSION,
            "identity": self.identity,
            "description": item.description,
            "negative_prompt": item.negative_prompt or "",
            "seed": int(item.seed),
            "parents": self.parents(item),
        }
        blob = json.dumps(request, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.model_name!r}, device={self.requested_device!r})"


def derive_seed(seed: int, attempt: int) -> int:
    """The seed of retry ``attempt`` (0 is the plan's own): deterministic, 63-bit."""
    if attempt == 0:
        return int(seed)
    digest = hashlib.sha256(f"atlantis-retry:{seed}:{attempt}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1
