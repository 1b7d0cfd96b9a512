"""The prefetch thread: items in order and bounded, the return value kept, errors raised in the
consumer, and the generator closed at once when the consumer stops."""

from __future__ import annotations

import threading
import time
from contextlib import closing

import pytest

from fervideo.prefetch import Prefetch


def numbers(n: int, log: list[str]):
    try:
        for i in range(n):
            log.append(f"made {i}")
            yield i
        return "end"
    finally:
        log.append("closed")


def test_items_come_in_order_and_the_return_value_is_kept():
    log: list[str] = []
    items = Prefetch(numbers(100, log), depth=4)
    assert list(items) == list(range(100))
    assert items.value == "end" and log[-1] == "closed"
    with pytest.raises(StopIteration):
        next(items)


def test_the_producer_runs_at_most_depth_items_ahead():
    log: list[str] = []
    items = Prefetch(numbers(100, log), depth=3)
    with closing(items):
        assert next(items) == 0
        time.sleep(0.3)
        # one item taken, three queued, and one made that waits for room
        assert len([line for line in log if line.startswith("made")]) <= 5
    assert log[-1] == "closed"


def test_an_error_in_the_producer_is_raised_in_the_consumer_after_the_items_before_it():
    def failing():
        yield 1
        raise ValueError("broken frame")

    items = Prefetch(failing(), depth=2)
    assert next(items) == 1
    with pytest.raises(ValueError, match="broken frame"):
        next(items)


def test_closing_stops_the_thread_and_closes_the_generator():
    log: list[str] = []
    items = Prefetch(numbers(10**6, log), depth=2)
    next(items)
    items.close()
    assert log[-1] == "closed"
    assert not any(t.name == "prefetch" and t.is_alive() for t in threading.enumerate())
