"""The diffusers source on a tiny random Stable Diffusion, loaded through the production path."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from atlantis.errors import AtlantisError, ConfigError
from atlantis.generate.base import ItemSpec, derive_seed
from atlantis.generate.diffusers_source import DiffusersSource, image_problem
from atlantis.generate.registry import create_source


def items(n: int, seed0: int = 10) -> list[ItemSpec]:
    words = ["cat", "dog", "red car", "tree", "boat"]
    return [ItemSpec(id=f"i{k}", class_name=words[k % 5], description=f"a {words[k % 5]}",
                     seed=seed0 + k) for k in range(n)]  # fmt: skip


def source(folder: Path, **options: object) -> DiffusersSource:
    options = {"steps": 2, "local_files_only": True, "device": "cpu", **options}
    made = create_source(f"diffusers:{folder}", **options)
    assert isinstance(made, DiffusersSource)
    return made


def pixels(results: list) -> np.ndarray:
    return np.stack([np.asarray(r.image, dtype=np.int16) for r in results])


@pytest.fixture(scope="module")
def tiny(tiny_sd: Path) -> DiffusersSource:
    return source(tiny_sd).load()


def test_images_per_seed_do_not_depend_on_the_batch(tiny: DiffusersSource) -> None:
    batch = tiny.make(items(4))
    alone = [tiny.make([it])[0] for it in items(4)]
    assert all(r.ok and r.seed == it.seed for r, it in zip(batch, items(4), strict=True))
    # Same starting noise per item; batched float kernels may move a pixel by one grey level.
    assert np.abs(pixels(batch) - pixels(alone)).max() <= 1
    again = tiny.make(items(4))
    assert np.array_equal(pixels(batch), pixels(again))  # same batch: bit-identical
    other = tiny.make(items(4, seed0=99))
    assert np.abs(pixels(batch) - pixels(other)).max() > 10


def test_identity_and_addresses(tiny_sd: Path, tiny: DiffusersSource) -> None:
    it = items(1)[0]
    assert source(tiny_sd).address(it) == tiny.address(it)  # a fresh object agrees
    assert source(tiny_sd, steps=3).address(it) != tiny.address(it)
    assert source(tiny_sd, dtype="bfloat16").address(it) != tiny.address(it)
    changed = [ItemSpec(**{**it.__dict__, k: v}) for k, v in
               (("seed", 11), ("description", "a dog"), ("negative_prompt", "blurry"))]  # fmt: skip
    assert len({tiny.address(x) for x in [it, *changed]}) == 4
    assert "folder:" in tiny.identity and '"steps": 2' in tiny.identity
    assert tiny.params["dtype"] == "float32"


def test_presets_and_validation(tiny_sd: Path) -> None:
    turbo = DiffusersSource("some-org/sdxl-turbo")
    assert (turbo.steps, turbo.guidance) == (4, 0.0)
    assert (DiffusersSource("x/y").steps, DiffusersSource("x/y").guidance) == (30, 7.5)
    for bad in ({"width": 30}, {"strength": 0}, {"steps": 0}, {"dtype": "int8"}):
        with pytest.raises(ConfigError):
            source(tiny_sd, **bad)
    with pytest.raises(ConfigError, match="unknown option"):
        create_source(f"diffusers:{tiny_sd}", stepz=3)


def test_scheduler_is_swapped_by_class_name(tiny_sd: Path) -> None:
    swapped = source(tiny_sd, scheduler="DPMSolverMultistepScheduler").load()
    assert type(swapped._pipe.scheduler).__name__ == "DPMSolverMultistepScheduler"
    assert swapped.make(items(1))[0].ok
    with pytest.raises(ConfigError, match=r"unknown scheduler 'NoSuchScheduler'; valid: .*DDIM"):
        source(tiny_sd, scheduler="NoSuchScheduler").load()


def test_an_unreachable_model_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"model folder .*nowhere does not exist"):
        source(tmp_path / "nowhere").load()
    # A name that is not a folder is a hub id; offline and not cached, it cannot load.
    with pytest.raises(
        AtlantisError, match=r"cannot load .*'atlantis-test/absent'.*local_files_only"
    ):
        source(Path("atlantis-test/absent")).load()


def test_nan_then_good_image_is_retried_with_a_derived_seed(
    tiny: DiffusersSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_call = tiny._call
    seen: list[list[int]] = []

    def flaky(batch, seeds, references):
        seen.append(list(seeds))
        images, flags = real_call(batch, seeds, references)
        if len(seen) == 1:
            images[1] = np.nan  # second item overflows on its first try
        return images, flags

    monkeypatch.setattr(tiny, "_call", flaky)
    results = tiny.make(items(3))
    assert [r.ok for r in results] == [True, True, True]
    assert seen == [[10, 11, 12], [derive_seed(11, 1)]]
    assert (results[1].seed, results[1].attempts) == (derive_seed(11, 1), 2)


def test_always_black_images_end_as_a_recorded_failure(
    tiny: DiffusersSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []

    def black(batch, seeds, references):
        calls.append(len(batch))
        return np.zeros((len(batch), 8, 8, 3), np.float32), [False] * len(batch)

    monkeypatch.setattr(tiny, "_call", black)
    monkeypatch.setattr(tiny, "max_retries", 2)
    (result,) = tiny.make(items(1))
    assert not result.ok and result.attempts == 3 and calls == [1, 1, 1]
    assert "all-black" in result.error and "3 seeds" in result.error


def test_image_problems() -> None:
    ok = np.full((4, 4, 3), 0.5, np.float32)
    assert image_problem(ok) is None
    assert "NaN" in image_problem(np.full_like(ok, np.nan))
    assert "safety" in image_problem(ok, nsfw=True)
    assert "black" in image_problem(np.zeros_like(ok))


def test_img2img_starts_from_the_reference_image(tiny_sd: Path, tmp_path: Path) -> None:
    src = source(tiny_sd, img2img=True, strength=0.5).load()
    ref = tmp_path / "ref.png"
    Image.new("RGB", (40, 30), "red").save(ref)
    with_ref = ItemSpec(id="a", class_name="cat", description="a cat", seed=1,
                        reference_image_ids=["real-1", "real-2"])  # fmt: skip
    plain = ItemSpec(id="b", class_name="cat", description="a cat", seed=1)
    assert src.parents(with_ref) == ["real-1"] and src.parents(plain) == []
    assert src.address(with_ref) != src.address(plain)
    a, b = src.make([with_ref, plain], {"real-1": ref})
    assert a.ok and b.ok and a.parent_ids == ["real-1"] and b.parent_ids == []
    assert a.image.size == (64, 64)
    assert np.abs(pixels([a]) - pixels([b])).max() > 0


def test_img2img_reference_transparency_is_white(tiny_sd: Path, tmp_path: Path) -> None:
    # An emoji-like RGBA reference: its transparent pixels (stored black) must reach img2img
    # on white, as the embedder sees them, not as black.
    ref = tmp_path / "emoji.png"
    Image.new("RGBA", (20, 20), (0, 0, 0, 0)).save(ref)
    item = ItemSpec(id="a", class_name="cat", description="a cat", seed=1,
                    reference_image_ids=["real-1"])  # fmt: skip
    src = source(tiny_sd, img2img=True, strength=0.5)
    image = src._reference(item, {"real-1": ref}, (16, 16))
    assert image.mode == "RGB" and np.asarray(image).min() == 255


def test_pickling_drops_the_loaded_pipeline(tiny: DiffusersSource) -> None:
    copy = pickle.loads(pickle.dumps(tiny))
    assert copy._pipe is None and not copy._loaded and copy.params == tiny.params
