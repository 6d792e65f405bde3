"""Ids on answers and `POST /feedback`'s logic, without a server: parsing, the label set, unknown ids,
replacement, durability of the log against a torn line."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from mlops.serving.feedback import FEEDBACK_FILE, FeedbackError, read_feedback, record_feedback
from mlops.serving.traffic import TrafficLog, id_time, new_ids, read_traffic

LABELS = ["billing", "delivery", "technical"]


def served(directory, texts):
    """Texts logged as the service logs them, with fresh ids; their ids."""
    ids = new_ids(len(texts))
    results = [{"id": i, "label": "billing", "score": 0.5, "model_version": "m:1"} for i in ids]
    TrafficLog(directory).append(texts, results, 3.0)
    return ids


def test_ids_are_unique_sortable_and_carry_their_time():
    ids = new_ids(2000) + new_ids(2000)
    assert len(set(ids)) == 4000 and all(len(i) == 26 for i in ids)
    made = id_time(ids[0])
    assert made is not None and abs((datetime.now(UTC) - made).total_seconds()) < 5
    assert id_time("not-an-id") is None and id_time("Z" * 26) is None


def test_traffic_log_records_the_answer_id(tmp_path):
    ids = served(tmp_path, ["one text", "another"])
    window = read_traffic(tmp_path, 10)
    assert window["id"].tolist() == ids


def test_feedback_is_recorded_with_its_text_and_a_second_label_replaces_the_first(tmp_path):
    ids = served(tmp_path / "traffic", ["parcel lost", "charged twice"])
    body = json.dumps({"id": ids[0], "label": "delivery"}).encode()
    first = record_feedback(body, LABELS, 10, tmp_path / "traffic", tmp_path / "fb")
    assert first == {"id": ids[0], "label": "delivery", "status": "recorded"}
    again = record_feedback(json.dumps([{"id": ids[0], "label": "billing"}, {"id": ids[1], "label": "billing"}]
                                       ).encode(), LABELS, 10, tmp_path / "traffic", tmp_path / "fb")
    assert again[0] == {"id": ids[0], "label": "billing", "status": "replaced", "previous_label": "delivery"}
    assert again[1]["status"] == "recorded"
    latest = read_feedback(tmp_path / "fb" / FEEDBACK_FILE)
    assert [(r["id"], r["label"], r["text"]) for r in latest] == [(ids[0], "billing", "parcel lost"),
                                                                  (ids[1], "billing", "charged twice")]


@pytest.mark.parametrize(("body", "status", "fragment"), [
    (b"{not json", 400, "not JSON"),
    (b"\xff\xfe", 400, "not UTF-8"),
    (b"[]", 400, "empty list"),
    (b'"text"', 400, "not a JSON str"),
    (b'{"id": 5, "label": "billing"}', 400, "'id' must be a string"),
    (b'{"id": "x", "label": ["billing"]}', 400, "'label' must be a string"),
    (b'{"id": "x"}', 400, "missing field 'label'"),
    (b'{"id": "x", "label": "billing", "extra": 1}', 400, "unknown field 'extra'"),
    (b'{"id": "", "label": "billing"}', 400, "1 to 64 characters"),
    (b'[{"id": "x", "label": "billing"}, 3]', 400, "item 1: expected an object"),
    (b'{"id": "x", "label": "refund"}', 422, "'refund' (id x) is not one of the model's labels: billing, delivery"),
    (b'{"id": "01JD0000000000000000000000", "label": "billing"}', 404, "unknown id: 01JD0000000000000000000000"),
    (b'{"id": "nonsense", "label": "billing"}', 404, "unknown id: nonsense"),
])
def test_bad_feedback_gets_its_status_and_writes_nothing(tmp_path, body, status, fragment):
    served(tmp_path / "traffic", ["some text"])
    with pytest.raises(FeedbackError) as caught:
        record_feedback(body, LABELS, 10, tmp_path / "traffic", tmp_path / "fb")
    assert caught.value.status == status and fragment in caught.value.message
    if status == 422:
        assert caught.value.details["allowed_labels"] == LABELS
    assert not (tmp_path / "fb" / FEEDBACK_FILE).exists()


def test_one_unknown_id_refuses_the_whole_request_and_too_many_items_are_refused(tmp_path):
    ids = served(tmp_path / "traffic", ["a text"])
    never_served = "01ARZ3NDEKTSV4RRFFQ69G5FAV"  # an id of 2016: past its in-flight grace, refused at once
    body = json.dumps([{"id": ids[0], "label": "billing"}, {"id": never_served, "label": "billing"}]).encode()
    with pytest.raises(FeedbackError, match="unknown id") as caught:
        record_feedback(body, LABELS, 10, tmp_path / "traffic", tmp_path / "fb")
    assert caught.value.status == 404 and not (tmp_path / "fb").exists()
    with pytest.raises(FeedbackError, match="exceed the limit of 1"):
        record_feedback(body, LABELS, 1, tmp_path / "traffic", tmp_path / "fb")


def test_a_torn_last_line_is_skipped_and_never_glued_to_the_next_label(tmp_path):
    ids = served(tmp_path / "traffic", ["first", "second"])
    record_feedback(json.dumps({"id": ids[0], "label": "billing"}).encode(), LABELS, 10, tmp_path / "traffic",
                    tmp_path / "fb")
    log = tmp_path / "fb" / FEEDBACK_FILE
    with open(log, "ab") as handle:
        handle.write(b'{"id": "torn-by-a-cra')  # a crash mid-write
    record_feedback(json.dumps({"id": ids[1], "label": "delivery"}).encode(), LABELS, 10, tmp_path / "traffic",
                    tmp_path / "fb")
    assert [(r["id"], r["label"]) for r in read_feedback(log)] == [(ids[0], "billing"), (ids[1], "delivery")]


def test_an_id_answered_a_moment_ago_is_waited_for_until_the_log_writer_has_it(tmp_path):
    # given an id the service answered with whose log line is still queued (the log is written off the request)
    import threading

    from mlops.serving.feedback import find_served

    ids = new_ids(1)
    results = [{"id": ids[0], "label": "billing", "score": 0.5, "model_version": "m:1"}]
    writer = threading.Timer(0.3, lambda: TrafficLog(tmp_path).append(["late line"], results, 3.0))
    writer.start()
    # when feedback looks it up at once, then it finds it once written
    assert find_served(ids, tmp_path)[ids[0]]["text"] == "late line"
    writer.join()
    # and a fresh id that never reaches the log is unknown once its grace is over
    with pytest.raises(FeedbackError, match="unknown id"):
        find_served(new_ids(1), tmp_path, in_flight_s=0.2)
    # while an unknown id past its grace is refused at once
    old = new_ids(1)[0]
    with pytest.raises(FeedbackError, match="unknown id"):
        find_served([old], tmp_path, in_flight_s=0.0)
