import json

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
