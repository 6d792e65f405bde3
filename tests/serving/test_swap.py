"""The swap slot: one assignment per swap, failed loads skipped, rollback without reloading, pinned requests."""

import threading
import time

from mlops.serving.swap import ModelSlot, Pinned


def slot_with(registry: dict, loads: list, fail: set | None = None) -> ModelSlot:
    def load(tag):
        loads.append(tag)
        if tag in (fail or set()):
            raise RuntimeError(f"{tag} is broken")
        return f"model-{tag}"

    return ModelSlot("m:1", "model-m:1", load, lambda: registry.get("champion"), poll_s=0.01)


def test_sync_swaps_to_the_champion_and_back_without_reloading():
    registry, loads = {"champion": "m:1"}, []
    slot = slot_with(registry, loads)
    assert not slot.sync() and slot.active == ("m:1", "model-m:1")
    registry["champion"] = "m:2"
    assert slot.sync() and slot.active == ("m:2", "model-m:2") and loads == ["m:2"]
    registry["champion"] = "m:1"  # a rollback: the replaced model is still in memory
    assert slot.sync() and slot.active == ("m:1", "model-m:1") and loads == ["m:2"]


def test_a_champion_that_cannot_load_is_skipped_and_the_current_model_keeps_serving():
    registry, loads = {"champion": "m:bad"}, []
    slot = slot_with(registry, loads, fail={"m:bad"})
    assert not slot.sync() and not slot.sync()
    assert slot.active == ("m:1", "model-m:1") and loads == ["m:bad"]  # tried once, not on every poll


def test_following_thread_swaps_within_a_few_polls():
    registry, loads = {"champion": "m:1"}, []
    slot = slot_with(registry, loads)
    slot.follow()
    try:
        registry["champion"] = "m:3"
        deadline = time.monotonic() + 5
        while slot.active[0] != "m:3" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert slot.active == ("m:3", "model-m:3")
    finally:
        slot.stop()
        slot.thread.join(timeout=2)
    assert isinstance(slot.thread, threading.Thread) and not slot.thread.is_alive()


def test_pinned_texts_are_a_plain_list_that_carries_its_model():
    old = ("m:1", object())
    assert Pinned(["x"], old) == ["x"] and Pinned(["x"], old).active is old
