import json

import pandas as pd
import pytest

from mlops.core import raw_tables
from mlops.core.errors import MlopsError
from mlops.core.settings import SourceSettings
from mlops.stages import ingest


def source(path, **fields) -> SourceSettings:
    return SourceSettings(path=str(path), **fields)


def test_csv_with_header(tmp_path):
    path = tmp_path / "data.csv"
    pd.DataFrame({"text": ["a b", "c d"], "label": ["x", "y"]}).to_csv(path, index=False)
    frame = raw_tables.map_columns(raw_tables.read_raw(source(path)), source(path), "main")
    assert frame.to_dict("records") == [{"text": "a b", "label": "x", "subset": "main"},
                                        {"text": "c d", "label": "y", "subset": "main"}]


def test_headerless_csv_joins_text_columns_and_maps_labels(tmp_path):
    path = tmp_path / "ag.csv"
    path.write_text('"3","Wall St. Bears","Short-sellers are back."\n"4","New chip","Faster, cooler."\n')
    spec = source(path, header=False, columns=("label", "title", "description"), text=("title", "description"),
                  label_names={"3": "Business", "4": "Sci/Tech"})
    frame = raw_tables.map_columns(raw_tables.read_raw(spec), spec, "test")
    assert frame["text"].tolist() == ["Wall St. Bears Short-sellers are back.", "New chip Faster, cooler."]
    assert frame["label"].tolist() == ["Business", "Sci/Tech"]
    assert set(frame["subset"]) == {"test"}


def test_tsv_keeps_quotes_literal(tmp_path):
    path = tmp_path / "sms.tsv"
    path.write_text('ham\t"Quoted" start\nspam\tWIN now\n')
    spec = source(path, header=False, columns=("label", "text"))
    frame = raw_tables.map_columns(raw_tables.read_raw(spec), spec, "main")
    assert frame["text"].tolist() == ['"Quoted" start', "WIN now"]


def test_jsonl_and_parquet(tmp_path):
    rows = [{"body": "hello there", "y": 1}, {"body": "bye now", "y": 0}]
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text("".join(json.dumps(row) + "\n" for row in rows))
    parquet = tmp_path / "d.parquet"
    pd.DataFrame(rows).to_parquet(parquet)
    for path in (jsonl, parquet):
        spec = source(path, text=("body",), label="y")
        frame = raw_tables.map_columns(raw_tables.read_raw(spec), spec, "main")
        assert frame["text"].tolist() == ["hello there", "bye now"]
        assert frame["label"].tolist() == ["1", "0"]  # labels are class names: strings


def test_missing_file_is_named(tmp_path):
    with pytest.raises(MlopsError, match=r"data file not found: .*missing\.csv"):
        raw_tables.read_raw(source(tmp_path / "missing.csv"))


def test_missing_label_column_is_named(tmp_path):
    path = tmp_path / "data.csv"
    pd.DataFrame({"text": ["a"], "category": ["x"]}).to_csv(path, index=False)
    with pytest.raises(MlopsError, match=r"no label column 'label' among its 2 column\(s\)") as raised:
        raw_tables.map_columns(raw_tables.read_raw(source(path)), source(path), "main")
    assert "category" not in str(raised.value)  # a user-supplied file's columns are not echoed into logs


def test_unmapped_label_is_named(tmp_path):
    path = tmp_path / "data.csv"
    pd.DataFrame({"text": ["a", "b"], "label": ["1", "9"]}).to_csv(path, index=False)
    spec = source(path, label_names={"1": "one"})
    with pytest.raises(MlopsError, match=r"label\(s\) \['9'\] are not in"):
        raw_tables.map_columns(raw_tables.read_raw(spec), spec, "main")


def test_unknown_extension_needs_a_format(tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(b"\x00\x01")
    with pytest.raises(MlopsError, match="cannot tell its format"):
        raw_tables.read_raw(source(path))


def test_undecodable_file_is_named(tmp_path):
    path = tmp_path / "data.csv"
    path.write_bytes(b"text,label\n\xff\xfe broken,1\n")
    with pytest.raises(MlopsError, match=r"cannot read it as csv"):
        raw_tables.read_raw(source(path))


def test_ingest_appends_held_out_test_source(tmp_path, tiny_settings):
    main, test = tmp_path / "main.csv", tmp_path / "test.csv"
    pd.DataFrame({"text": ["a", "b"], "label": ["x", "y"]}).to_csv(main, index=False)
    pd.DataFrame({"text": ["c"], "label": ["x"]}).to_csv(test, index=False)
    data = tiny_settings.data.model_copy(update={"source": source(main), "test_source": source(test)})
    frame = ingest.ingest(tiny_settings.model_copy(update={"data": data}))
    assert frame["subset"].tolist() == ["main", "main", "test"]


def test_a_source_directory_of_batches_and_the_feedback_batches_are_read_together(tmp_path, repo_params):
    from mlops.core.batch_files import write_batch
    from mlops.core.settings import parse_settings

    exports = tmp_path / "exports"
    exports.mkdir()
    (exports / "2026-01.csv").write_text("text,label\nlate parcel,delivery\n")
    (exports / "2026-02.jsonl").write_text('{"text": "double charge", "label": "billing"}\n')
    (exports / "notes.md").write_text("not a batch")
    write_batch(pd.DataFrame({"id": ["a"], "text": ["app crash"], "label": ["technical"]}), tmp_path / "fb", "served")
    repo_params["data"]["source"]["path"] = str(exports)
    repo_params["feedback"]["batches_dir"] = str(tmp_path / "fb")
    frame = ingest.ingest(parse_settings(repo_params))
    assert frame["text"].tolist() == ["late parcel", "double charge", "app crash"]
    assert frame["subset"].tolist() == ["main", "main", "feedback"]
    assert frame["batch"].tolist()[:2] == ["2026-01.csv", "2026-02.jsonl"] and frame["batch"][2].startswith("batch-")
    (exports / "2026-01.csv").unlink()
    (exports / "2026-02.jsonl").unlink()
    with pytest.raises(MlopsError, match="no batch files"):
        ingest.ingest(parse_settings(repo_params))

