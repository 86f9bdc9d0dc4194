"""Small builders shared by the detector tests."""

from __future__ import annotations

from atlantis.data.records import ImageRecord


def make_records(labels: list[str], prefix: str = "img") -> list[ImageRecord]:
    """One training record per label, ids ``img0, img1, ...`` in order."""
    return [
        ImageRecord(id=f"{prefix}{i}", path=f"{label}/{i}.png", label=label, split="train")
        for i, label in enumerate(labels)
    ]
