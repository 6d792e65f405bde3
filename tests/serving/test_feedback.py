"""Ids on answers and `POST /feedback`'s logic, without a server: parsing, the label set, unknown ids,
replacement, durability of the log against a torn line."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from mlops.core.traffic_log import id_time, read_traffic
from mlops.serving.feedback import FEEDBACK_FILE, FeedbackError, read_feedback, record_feedback
from mlops.serving.traffic import TrafficLog, new_ids

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


def id_made_at(when: datetime) -> str:
    """An id as `new_ids` makes them, dated `when`."""
    from mlops.core.traffic_log import CROCKFORD

    value = (int(when.timestamp() * 1000) << 80) | 12345
    return "".join(CROCKFORD[(value >> shift) & 31] for shift in range(125, -5, -5))


def test_an_id_dated_ahead_of_the_clock_is_refused_at_once_not_waited_for(tmp_path):
    # given an id that claims to be made an hour from now (no service made it)
    import time
    from datetime import timedelta

    from mlops.serving.feedback import find_served

    future = id_made_at(datetime.now(UTC) + timedelta(hours=1))
    assert id_time(future) > datetime.now(UTC)
    # when feedback names it, then it is unknown at once, not after an hour
    started = time.perf_counter()
    with pytest.raises(FeedbackError, match="unknown id"):
        find_served([future], tmp_path)
    assert time.perf_counter() - started < 1.0


def test_a_wait_reads_only_what_the_log_gained_since_its_last_look(tmp_path):
    # given a traffic file already holding lines, scanned once
    from mlops.serving.feedback import ServedScan

    ids = served(tmp_path, ["first", "second"])
    scan = ServedScan(tmp_path)
    assert set(scan(ids)) == set(ids)
    part = next(tmp_path.glob("traffic-*.jsonl"))
    read_so_far = scan.offsets[part]
    assert read_so_far == part.stat().st_size
    # when a line is half written, then it is not read yet; once complete, it is found, reading only the new bytes
    late = new_ids(1)[0]
    line = json.dumps({"id": late, "text": "late line", "prediction": "billing"}).encode() + b"\n"
    with open(part, "ab") as handle:
        handle.write(line[:20])
    assert scan([late]) == {} and scan.offsets[part] == read_so_far
    with open(part, "ab") as handle:
        handle.write(line[20:])
    assert scan([late])[late]["text"] == "late line"
    assert scan.offsets[part] == read_so_far + len(line) == part.stat().st_size


def test_waiting_requests_hold_no_thread_and_past_the_cap_get_a_503(tmp_path):
    # given more fresh, unlogged ids than there are waiting slots
    import asyncio

    from mlops.serving.feedback import await_served

    async def scenario():
        slots = asyncio.Semaphore(2)
        waits = [asyncio.create_task(await_served(new_ids(1), tmp_path, in_flight_s=0.5, slots=slots))
                 for _ in range(2)]
        await asyncio.sleep(0.2)  # both are waiting now
        with pytest.raises(FeedbackError) as refused:
            await await_served(new_ids(1), tmp_path, in_flight_s=0.5, slots=slots)
        assert refused.value.status == 503 and refused.value.details == {"retry_after_s": 1}
        # the waiting ones end as unknown once their grace is over, and free their slots
        for wait in waits:
            with pytest.raises(FeedbackError, match="unknown id"):
                await wait
        assert not slots.locked()

    asyncio.run(scenario())
