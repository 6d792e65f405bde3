"""The served-traffic log: one JSON line per text, day files in numbered parts, rotation, keyed hashing, reading
a window. (tests/stages/test_monitor.py covers the log as monitoring reads it, with a trained model.)"""

import hashlib
import hmac
import json
import logging
from datetime import UTC, datetime

import pytest

from mlops.core.errors import MlopsError
from mlops.core.settings import TrafficSettings
from mlops.core.traffic_log import list_parts, read_traffic
from mlops.serving.traffic import TrafficLog


def answer(label="billing", score=0.87654321, version="text-classifier:v1"):
    return {"label": label, "score": score, "model_version": version}


def today():
    return f"{datetime.now(UTC):%Y%m%d}"


def records(directory):
    return [json.loads(line) for part in list_parts(directory) for line in part.read_text().splitlines()]


def line(text="t", timestamp="2026-11-30T10:00:00+00:00"):
    return json.dumps({"timestamp": timestamp, "text": text, "prediction": "a", "confidence": 0.5,
                       "model_version": "m", "latency_ms": 1.0}) + "\n"


# --- appending -----------------------------------------------------------------------------------------------

def test_one_line_per_text_with_prediction_and_rounded_numbers(tmp_path):
    TrafficLog(tmp_path).append(["first", "second"], [answer(), answer("delivery", 0.5)], latency_ms=12.3456)
    first, second = records(tmp_path)
    assert first == {"timestamp": first["timestamp"], "text": "first", "prediction": "billing",
                     "confidence": 0.876543, "model_version": "text-classifier:v1", "latency_ms": 12.35}
    assert (second["text"], second["prediction"], second["confidence"]) == ("second", "delivery", 0.5)
    assert first["timestamp"] == second["timestamp"]  # one request, one time
    assert datetime.fromisoformat(first["timestamp"]).tzinfo is not None


def test_embeddings_are_kept_only_when_given(tmp_path):
    log = TrafficLog(tmp_path)
    log.append(["with"], [answer()], latency_ms=1, embeddings=["AAA="])
    log.append(["without"], [answer()], latency_ms=1)
    log.append(["none"], [answer()], latency_ms=1, embeddings=[None])
    assert [r.get("embedding") for r in records(tmp_path)] == ["AAA=", None, None]


def test_texts_and_results_must_pair_up(tmp_path):
    with pytest.raises(ValueError):
        TrafficLog(tmp_path).append(["a", "b"], [answer()], latency_ms=1)
    assert list_parts(tmp_path) == []  # nothing written for a mismatched request


def test_first_file_is_todays_part_zero_in_a_new_folder(tmp_path):
    folder = tmp_path / "logs" / "traffic"
    TrafficLog(folder).append(["x"], [answer()], latency_ms=1)
    assert [p.name for p in list_parts(folder)] == [f"traffic-{today()}-0000.jsonl"]


def test_a_restart_continues_the_days_newest_part(tmp_path):
    for part in ("0000", "0003"):
        (tmp_path / f"traffic-{today()}-{part}.jsonl").write_text(line("before"))
    (tmp_path / "traffic-20200101-0009.jsonl").write_text(line("another day"))
    TrafficLog(tmp_path).append(["after"], [answer()], latency_ms=1)
    newest = tmp_path / f"traffic-{today()}-0003.jsonl"
    assert [json.loads(x)["text"] for x in newest.read_text().splitlines()] == ["before", "after"]
    assert len(list_parts(tmp_path)) == 3


def test_parts_are_listed_by_day_then_number_and_strangers_ignored(tmp_path):
    names = ["traffic-20261130-0010.jsonl", "traffic-20261129-0002.jsonl", "traffic-20261130-0002.jsonl",
             "traffic-notes.jsonl", "traffic-20261130-2.jsonl", "other-20261130-0001.jsonl",
             "traffic-20261130-0001.jsonl.tmp"]
    for name in names:
        (tmp_path / name).write_text("")
    assert [p.name for p in list_parts(tmp_path)] == ["traffic-20261129-0002.jsonl", "traffic-20261130-0002.jsonl",
                                                      "traffic-20261130-0010.jsonl"]


# --- rotation ------------------------------------------------------------------------------------------------

def test_a_part_past_the_size_limit_is_closed_and_the_next_write_starts_a_new_one(tmp_path):
    log = TrafficLog(tmp_path, TrafficSettings(max_file_mb=200 / 2**20, keep_files=10))  # 200-byte parts
    log.append(["a" * 250], [answer()], latency_ms=1)  # one line is already past the limit
    log.append(["small"], [answer()], latency_ms=1)
    names = [p.name for p in list_parts(tmp_path)]
    assert names == [f"traffic-{today()}-0000.jsonl", f"traffic-{today()}-0001.jsonl"]
    assert [r["text"] for r in records(tmp_path)] == ["a" * 250, "small"]


def test_under_the_limit_everything_goes_to_one_part(tmp_path):
    log = TrafficLog(tmp_path)
    for index in range(20):
        log.append([f"t{index}"], [answer()], latency_ms=1)
    assert len(list_parts(tmp_path)) == 1 and len(records(tmp_path)) == 20


def test_rotation_keeps_the_newest_parts_within_keep_files(tmp_path):
    """On closing a part, the oldest closed ones go so that they and the part to come fit in `keep_files`."""
    log = TrafficLog(tmp_path, TrafficSettings(max_file_mb=1 / 2**20, keep_files=3))  # every write closes a part
    counts = []
    for index in range(6):
        log.append([f"t{index}"], [answer()], latency_ms=1)
        counts.append(len(list_parts(tmp_path)))
    assert counts == [1, 2, 2, 2, 2, 2]
    assert [r["text"] for r in records(tmp_path)] == ["t4", "t5"]
    assert [p.name for p in list_parts(tmp_path)] == [f"traffic-{today()}-0004.jsonl", f"traffic-{today()}-0005.jsonl"]


# --- hashing -------------------------------------------------------------------------------------------------

HASHED = TrafficSettings(hash_texts=True, salt_env="TEST_TRAFFIC_SALT")


def test_hashing_without_the_secret_is_refused_naming_the_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("TEST_TRAFFIC_SALT", raising=False)
    with pytest.raises(MlopsError, match=r"hash_texts is on but \$TEST_TRAFFIC_SALT is not set"):
        TrafficLog(tmp_path, HASHED)
    monkeypatch.setenv("TEST_TRAFFIC_SALT", "")
    with pytest.raises(MlopsError, match=r"\$TEST_TRAFFIC_SALT is not set"):
        TrafficLog(tmp_path, HASHED)


def test_hashed_log_keeps_a_keyed_hash_and_descriptors_not_the_text(tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_TRAFFIC_SALT", "pepper")
    TrafficLog(tmp_path, HASHED).append(["Refund me 2x!"], [answer()], latency_ms=1)
    raw = list_parts(tmp_path)[0].read_text()
    assert "Refund" not in raw and "pepper" not in raw
    (record,) = records(tmp_path)
    assert "text" not in record
    assert record["text_hmac"] == hmac.new(b"pepper", b"Refund me 2x!", hashlib.sha256).hexdigest()
    assert (record["text_length"], record["word_count"], record["non_letter_share"]) == (13, 3, 0.1538)


def test_the_hash_depends_on_the_key(tmp_path, monkeypatch):
    """Same text, same key: same hash (monitoring can count repeats); another key: another hash."""
    monkeypatch.setenv("TEST_TRAFFIC_SALT", "one")
    TrafficLog(tmp_path / "a", HASHED).append(["hello", "hello"], [answer(), answer()], latency_ms=1)
    monkeypatch.setenv("TEST_TRAFFIC_SALT", "two")
    TrafficLog(tmp_path / "b", HASHED).append(["hello"], [answer()], latency_ms=1)
    first, again = records(tmp_path / "a")
    (other,) = records(tmp_path / "b")
    assert first["text_hmac"] == again["text_hmac"] != other["text_hmac"]
    assert first["text_hmac"] != hashlib.sha256(b"hello").hexdigest()  # not an unkeyed, guessable hash


# --- reading -------------------------------------------------------------------------------------------------

def test_read_a_single_file(tmp_path):
    path = tmp_path / "traffic.jsonl"
    path.write_text(line("a") + line("b") + line("c"))
    assert read_traffic(path, window_rows=2)["text"].tolist() == ["b", "c"]


def test_window_spans_parts_oldest_first(tmp_path):
    (tmp_path / "traffic-20261129-0000.jsonl").write_text(line("1") + line("2"))
    (tmp_path / "traffic-20261130-0000.jsonl").write_text(line("3"))
    (tmp_path / "traffic-20261130-0001.jsonl").write_text(line("4") + line("5"))
    window = read_traffic(tmp_path, window_rows=4)
    assert window["text"].tolist() == ["2", "3", "4", "5"]
    assert window.index.tolist() == [0, 1, 2, 3]


def test_texts_that_look_like_numbers_stay_text(tmp_path):
    (tmp_path / "traffic-20261130-0000.jsonl").write_text(line("007") + line("1e3"))
    assert read_traffic(tmp_path, 10)["text"].tolist() == ["007", "1e3"]


def test_empty_parts_are_skipped(tmp_path):
    (tmp_path / "traffic-20261129-0000.jsonl").write_text(line("old"))
    (tmp_path / "traffic-20261130-0000.jsonl").write_text("")
    assert read_traffic(tmp_path, 10)["text"].tolist() == ["old"]


@pytest.mark.parametrize("setup", ["missing", "empty_folder"])
def test_no_log_is_named(tmp_path, setup):
    folder = tmp_path / "traffic"
    if setup == "empty_folder":
        folder.mkdir()
    with pytest.raises(MlopsError, match=r"no traffic log at .*traffic"):
        read_traffic(folder, 10)


def test_only_empty_parts_is_named(tmp_path):
    (tmp_path / "traffic-20261130-0000.jsonl").write_text("")
    with pytest.raises(MlopsError, match="is empty"):
        read_traffic(tmp_path, 10)


def test_a_part_that_is_not_json_lines_is_named(tmp_path):
    bad = tmp_path / "traffic-20261130-0000.jsonl"
    bad.write_text("this is not json\n")
    with pytest.raises(MlopsError, match=r"traffic-20261130-0000\.jsonl: not JSON lines"):
        read_traffic(tmp_path, 10)


def test_torn_lines_are_skipped_counted_and_reported(tmp_path, caplog):
    """Given a part whose middle line is torn (a crash mid-append, the next write after it) and whose last line is
    cut inside a UTF-8 character, the window holds every whole record and says how many lines were skipped."""
    part = tmp_path / "traffic-20261130-0000.jsonl"
    part.write_bytes((line("a") + line("b")[:40] + "\n" + line("c")).encode() + line("café").encode()[:-12])
    with caplog.at_level(logging.WARNING, logger="mlops.serving.traffic"):
        window = read_traffic(tmp_path, 10)
    assert window["text"].tolist() == ["a", "c"]
    assert window.attrs["torn_lines"] == 2
    assert caplog.messages == [f"2 torn lines skipped in {part}"]
    assert read_traffic(tmp_path / "traffic-20261130-0000.jsonl", 1)["text"].tolist() == ["c"]


def test_a_writer_after_a_torn_line_starts_a_new_one(tmp_path):
    """A process appending to a part another one left torn does not glue its record onto the torn half."""
    part = tmp_path / f"traffic-{today()}-0000.jsonl"
    part.write_text(line("whole") + line("torn")[:30])
    TrafficLog(tmp_path).append(["next"], [answer()], latency_ms=1)
    TrafficLog(tmp_path).append(["after"], [answer()], latency_ms=1)  # the file now ends whole: no blank line
    window = read_traffic(tmp_path, 10)
    assert window["text"].tolist() == ["whole", "next", "after"] and window.attrs["torn_lines"] == 1
    assert "\n\n" not in part.read_text()


def test_window_in_hours_needs_timestamps(tmp_path):
    path = tmp_path / "traffic.jsonl"
    path.write_text(json.dumps({"text": "no time"}) + "\n")
    with pytest.raises(MlopsError, match="has no timestamp column; a window in hours needs one"):
        read_traffic(path, 10, window_hours=1)


# --- the background writer -------------------------------------------------------------------------------------

def test_writer_writes_every_queued_record_by_close(tmp_path):
    """Nothing lost on a graceful shutdown: close() writes all that was queued, in order, embeddings encoded."""
    import numpy as np

    from mlops.ml.model import decode_embedding
    from mlops.serving.traffic import TrafficWriter

    writer = TrafficWriter(TrafficLog(tmp_path), max_queued=10_000)
    vector = np.linspace(-1, 1, 8).astype(np.float32)
    for index in range(300):
        assert writer.submit([f"text {index}", "second"], [answer(), answer("delivery")], 1.0,
                             np.stack([vector, vector]))
    writer.close()
    written = records(tmp_path)
    assert [r["text"] for r in written[::2]] == [f"text {i}" for i in range(300)] and len(written) == 600
    assert np.allclose(decode_embedding(written[0]["embedding"]), vector, atol=1e-3)
    assert writer.dropped == 0 and not writer.thread.is_alive()
    assert not writer.submit(["late"], [answer()], 1.0)  # after close: refused and counted, never blocking
    assert writer.dropped == 1


def test_a_full_queue_drops_and_counts_without_blocking_the_request(tmp_path):
    import threading

    from mlops.serving.traffic import TrafficWriter

    release, writing = threading.Event(), threading.Event()

    class SlowDisk(TrafficLog):
        def write(self, lines):
            writing.set()
            release.wait(30)  # the disk hangs: the queue fills up behind it
            super().write(lines)

    counted: list[int] = []
    writer = TrafficWriter(SlowDisk(tmp_path), max_queued=3, on_drop=counted.append)
    writer.submit(["first"], [answer()], 1.0)
    assert writing.wait(30)  # the thread holds "first" and is stuck writing it
    accepted = [writer.submit([f"t{i}"], [answer()], 1.0) for i in range(3)]
    refused = writer.submit(["a", "b"], [answer(), answer()], 1.0)  # the queue holds 3: returns at once
    assert accepted == [True, True, True] and refused is False
    assert writer.dropped == 2 and counted == [2]
    release.set()
    writer.close()
    assert [r["text"] for r in records(tmp_path)] == ["first", "t0", "t1", "t2"]
