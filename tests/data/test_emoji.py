import json
from collections import Counter

from atlantis.data.emoji import MIN_PER_CLASS, select_emoji, write_manifest


def _entry(name, sub, cat="Animals & Nature", order=0, **kw):
    return {
        "name": name.upper(),
        "short_name": name,
        "image": f"{name}.png",
        "subcategory": sub,
        "category": cat,
        "sort_order": order,
        "has_img_google": True,
        "has_img_twitter": True,
        **kw,
    }


def test_select_emoji_keeps_object_classes_with_enough_members():
    entries = [_entry(f"m{i}", "animal-mammal", order=i) for i in range(MIN_PER_CLASS)]
    entries += [_entry("b0", "animal-bird")]  # too few
    entries += [_entry(f"f{i}", "country-flag", cat="Flags") for i in range(10)]
    entries += [_entry(f"k{i}", "keycap", cat="Symbols") for i in range(10)]
    entries += [_entry("x", "animal-mammal", has_img_twitter=False)]
    chosen = select_emoji(entries)
    assert {e["subcategory"] for e in chosen} == {"animal-mammal"}
    assert [e["short_name"] for e in chosen] == [f"m{i}" for i in range(MIN_PER_CLASS)]


def test_write_manifest_one_row_per_vendor_image(tmp_path):
    entries = [_entry(f"m{i}", "animal-mammal", order=i) for i in range(MIN_PER_CLASS)]
    for vendor in ("google", "twitter"):
        (tmp_path / "images" / vendor).mkdir(parents=True)
        for e in entries[:-1] if vendor == "twitter" else entries:
            (tmp_path / "images" / vendor / e["image"]).write_bytes(b"png")
    n = write_manifest(entries, tmp_path)
    rows = [json.loads(line) for line in (tmp_path / "manifest.jsonl").read_text().splitlines()]
    assert n == len(rows) == 2 * MIN_PER_CLASS - 1
    assert rows[0] == {
        "id": "google/m0",
        "path": "images/google/m0.png",
        "label": "animal-mammal",
        "caption": "m0 emoji",
        "domain": "google",
    }
    assert {r["domain"] for r in rows} == {"google", "twitter"}


def test_split_pool_moves_a_seeded_share_of_every_class():
    from atlantis.data.emoji import MIN_IN_DATASET, split_pool

    entries = [_entry(f"m{i}", "animal-mammal", order=i) for i in range(20)]
    entries += [_entry(f"b{i}", "animal-bird", order=100 + i) for i in range(MIN_PER_CLASS)]
    dataset, pool = split_pool(entries, 0.3, seed=0)
    moved = Counter(e["subcategory"] for e in pool)
    assert moved == {"animal-mammal": 6, "animal-bird": 2}  # round(0.3 x n), every class
    kept = Counter(e["subcategory"] for e in dataset)
    assert min(kept.values()) >= MIN_IN_DATASET
    assert {e["short_name"] for e in dataset}.isdisjoint(e["short_name"] for e in pool)
    # reproducible and independent of the entries' order; another seed moves others
    again = split_pool(list(reversed(entries)), 0.3, seed=0)[1]
    assert {e["short_name"] for e in again} == {e["short_name"] for e in pool}
    other = split_pool(entries, 0.3, seed=1)[1]
    assert {e["short_name"] for e in other} != {e["short_name"] for e in pool}
    assert split_pool(entries, 0.0, seed=0)[1] == []


def test_pool_holds_moved_emoji_and_distractors_never_dataset_variants(tmp_path):
    from atlantis.data.emoji import split_pool, write_pool

    tones = {"1F3FB": {"image": "{}-1f3fb.png"}}
    entries = [_entry(f"m{i}", "people", order=i,
                      skin_variations={k: {"image": v["image"].format(f"m{i}")}
                                       for k, v in tones.items()})
               for i in range(10)]  # fmt: skip
    entries += [_entry("flag", "country-flag", cat="Flags", order=50)]
    for vendor in ("google", "twitter"):
        folder = tmp_path / "images" / vendor
        folder.mkdir(parents=True)
        for e in entries:
            (folder / e["image"]).write_bytes(b"png")
            for v in (e.get("skin_variations") or {}).values():
                (folder / v["image"]).write_bytes(b"png")
    dataset, pooled = split_pool(select_emoji(entries), 0.3, seed=0)
    n = write_pool(entries, tmp_path, dataset=dataset, pooled=pooled)
    rows = [json.loads(x) for x in (tmp_path / "pool.jsonl").read_text().splitlines()]
    assert n == len(rows) == 2 * (2 * len(pooled) + 1)  # each moved emoji + its tone, + flag
    files = {r["file"].split("/")[1] for r in rows}
    for e in dataset:  # neither a dataset emoji nor its skin-tone variant (a near copy)
        assert e["image"] not in files and f"{e['short_name']}-1f3fb.png" not in files
    assert {r["file"].split("/")[0] for r in rows} == {"google", "twitter"}


def test_vendors_are_checked():
    import pytest

    from atlantis.data.emoji import check_vendors, default_emoji_root
    from atlantis.errors import AtlantisError

    assert check_vendors(["Apple", "facebook"]) == ("apple", "facebook")
    for bad in (["google"], ["google", "google"], ["google", "msn"]):
        with pytest.raises(AtlantisError, match="two or more different ones of"):
            check_vendors(bad)
    assert default_emoji_root(["apple", "facebook"]).name == "emoji-16.0.0-apple-facebook"
