import pytest

from atlantis.data.records import (
    ImageRecord,
    Provenance,
    RecordAppender,
    read_records,
    safe_relative_path,
    write_records,
)
from atlantis.errors import DataError


def _rec(i: int, **kw) -> ImageRecord:
    return ImageRecord(id=f"r{i}", path=f"cls/{i}.png", label="cls", **kw)


def test_round_trip_with_provenance(tmp_path):
    recs = [
        _rec(0, split="train", captions=["a bird"], domains=["flying"]),
        _rec(
            1,
            source="synthetic",
            provenance=Provenance(model="sdxl", prompt="p", seed=3, parent_ids=["r0"]),
        ),
    ]
    assert write_records(tmp_path / "r.jsonl", recs) == 2
    assert read_records(tmp_path / "r.jsonl") == recs


@pytest.mark.parametrize("bad", ["../x.png", "/etc/passwd", "a/../../x.png", "C:/x.png", ""])
def test_paths_that_escape_the_root_are_rejected(bad):
    with pytest.raises(ValueError):
        safe_relative_path(bad)


def test_path_is_normalised():
    assert safe_relative_path("./a//b\\c.png") == "a/b/c.png"


def test_invalid_line_names_file_and_line(tmp_path):
    p = tmp_path / "r.jsonl"
    write_records(p, [_rec(0)])
    with open(p, "a") as fh:
        fh.write('{"id": "x", "path": "a.png", "label": "c", "source": "fake"}\n')
    with pytest.raises(DataError, match=r"r.jsonl:2: field 'source'"):
        read_records(p)
    p.write_text("{oops\n")
    with pytest.raises(DataError, match=r"r.jsonl:1: not valid JSON"):
        read_records(p)


def test_unknown_field_and_duplicate_ids(tmp_path):
    p = tmp_path / "r.jsonl"
    p.write_text('{"id": "x", "path": "a.png", "label": "c", "colour": "red"}\n')
    with pytest.raises(DataError, match="colour"):
        read_records(p)
    write_records(p, [_rec(0), _rec(0)])
    with pytest.raises(DataError, match="duplicate record id 'r0'"):
        read_records(p)


def test_appender_survives_torn_tail(tmp_path):
    p = tmp_path / "log.jsonl"
    with RecordAppender(p) as app:
        app.append(_rec(0))
        app.append(_rec(1))
    with open(p, "a") as fh:
        fh.write('{"id": "r2", "pa')  # a crash mid-line
    assert [r.id for r in read_records(p)] == ["r0", "r1"]  # torn tail ignored on read
    with RecordAppender(p) as app:  # and repaired before appending
        app.append(_rec(2))
    assert [r.id for r in read_records(p)] == ["r0", "r1", "r2"]


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_records(tmp_path / "none.jsonl")
