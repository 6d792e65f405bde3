"""The atomic writers and readers every stage uses: a failed write leaves nothing behind, and the old file stays."""

import hashlib
import json
import stat

import pandas as pd
import pytest

from mlops.core.errors import MlopsError
from mlops.core.io import atomic_path, file_digest, read_json, read_table, write_json, write_table


def leftovers(directory):
    """Files in `directory` other than the ones a test expects: temporary siblings that a write left."""
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


def test_atomic_path_moves_the_file_into_place_on_success(tmp_path):
    target = tmp_path / "out.txt"
    with atomic_path(target) as tmp:
        tmp.write_text("done")
        assert not target.exists()  # nothing at the target while the write is under way
    assert target.read_text() == "done"
    assert leftovers(tmp_path) == []


def test_atomic_path_keeps_the_old_file_and_no_temporary_on_error(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="killed"), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed half-way")
    assert target.read_text() == "old"
    assert leftovers(tmp_path) == []


def test_atomic_path_creates_missing_folders(tmp_path):
    target = tmp_path / "a" / "b" / "out.txt"
    with atomic_path(target) as tmp:
        tmp.write_text("x")
    assert target.read_text() == "x"


def test_written_files_are_readable_by_others(tmp_path):
    """mkstemp makes 0600 files; reports are for people to read."""
    write_json({"a": 1}, tmp_path / "m.json")
    assert stat.S_IMODE((tmp_path / "m.json").stat().st_mode) == 0o644


def test_json_round_trip_keeps_order_and_ends_with_newline(tmp_path):
    data = {"zeta": 1, "alpha": [1.5, None, "x"], "nested": {"b": True}}
    write_json(data, tmp_path / "m.json")
    text = (tmp_path / "m.json").read_text()
    assert text.endswith("}\n")
    assert list(json.loads(text)) == ["zeta", "alpha", "nested"]  # not sorted
    assert read_json(tmp_path / "m.json") == data


def test_write_json_writes_values_json_lacks_as_text(tmp_path):
    write_json({"path": tmp_path / "x"}, tmp_path / "m.json")
    assert read_json(tmp_path / "m.json") == {"path": str(tmp_path / "x")}


def test_read_json_of_a_missing_file_names_it(tmp_path):
    with pytest.raises(MlopsError, match=r"missing input .*nope\.json: run the stage that writes it first"):
        read_json(tmp_path / "nope.json")


@pytest.mark.parametrize("content", [b'{"accuracy": 0.9', b"\xff\xfe not text", b""])
def test_read_json_of_a_damaged_file_names_it(tmp_path, content):
    path = tmp_path / "metrics.json"
    path.write_bytes(content)
    with pytest.raises(MlopsError, match=r"metrics\.json: not valid JSON: "):
        read_json(path)


def test_table_round_trip(tmp_path):
    frame = pd.DataFrame({"text": ["a", "b c"], "label": ["x", "y"], "score": [0.25, 1.0]})
    write_table(frame, tmp_path / "t.parquet")
    pd.testing.assert_frame_equal(read_table(tmp_path / "t.parquet"), frame)


def test_table_index_is_not_written(tmp_path):
    frame = pd.DataFrame({"v": [1, 2, 3]}, index=[10, 20, 30])
    write_table(frame, tmp_path / "t.parquet")
    back = read_table(tmp_path / "t.parquet")
    assert list(back.columns) == ["v"] and back.index.tolist() == [0, 1, 2]


def test_failed_table_write_keeps_the_old_table(tmp_path):
    path = tmp_path / "t.parquet"
    write_table(pd.DataFrame({"v": [1]}), path)
    before = path.read_bytes()
    unwritable = pd.DataFrame({"v": [object()]})  # parquet cannot store an arbitrary object
    with pytest.raises(ValueError, match="object"):  # pyarrow's ArrowInvalid
        write_table(unwritable, path)
    assert path.read_bytes() == before
    assert leftovers(tmp_path) == []


def test_read_table_of_a_missing_file_names_it(tmp_path):
    with pytest.raises(MlopsError, match=r"missing input .*split\.parquet"):
        read_table(tmp_path / "split.parquet")


@pytest.mark.parametrize(("content", "algorithm", "expected"), [
    (b"", "md5", "d41d8cd98f00b204e9800998ecf8427e"),
    (b"abc", "md5", "900150983cd24fb0d6963f7d28e17f72"),
    (b"abc", "sha256", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
])
def test_file_digest_of_known_contents(tmp_path, content, algorithm, expected):
    (tmp_path / "f").write_bytes(content)
    assert file_digest(tmp_path / "f", algorithm) == expected


def test_file_digest_over_several_blocks_equals_the_whole_file_digest(tmp_path):
    content = bytes(range(256)) * (5 * 4096 + 7)  # ~5 MiB: several 1 MiB blocks and a partial one
    (tmp_path / "f").write_bytes(content)
    assert file_digest(tmp_path / "f", "md5") == hashlib.md5(content).hexdigest()
