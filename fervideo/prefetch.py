"""Run a generator ahead in a background thread, so that two stages use two cores.

The analysis has a producer (decode, detect and crop: OpenCV and the detector) and a consumer
(classify and track: TensorFlow, which releases the GIL while it computes). `Prefetch` runs the
producer in its own thread, at most `depth` items ahead of the consumer: a bounded queue keeps
memory flat, items arrive in order, and an error in the producer is raised in the consumer.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

#: Seconds between the producer's checks that the consumer still wants items.
_POLL_S = 0.1


class _End:
    """The producer's last item: the generator's return value, or the exception it raised."""

    def __init__(self, value: object = None, error: BaseException | None = None) -> None:
        self.value = value
        self.error = error


class Prefetch(Iterator[T], Generic[T, R]):
    """Iterates `generator` in a background thread, up to `depth` items ahead; `value` holds
    the value it returns once it is exhausted (as `pipeline.Returning`).

    `close()` (or the end of a `with closing(...)` block) stops the thread and closes the
    generator there, so its `finally` blocks (releasing a video capture) run at once.
    """

    def __init__(self, generator: Generator[T, None, R], depth: int) -> None:
        self.value: R | None = None
        self._queue: queue.Queue[T | _End] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._done = False
        self._thread = threading.Thread(target=self._produce, args=(generator,), daemon=True, name="prefetch")
        self._thread.start()

    def _produce(self, generator: Generator[T, None, R]) -> None:
        try:
            try:
                while not self._stop.is_set():
                    self._put(next(generator))
            finally:
                generator.close()
        except StopIteration as stop:
            self._put(_End(stop.value))
        except BaseException as err:  # handed to the consumer, which raises it
            self._put(_End(error=err))

    def _put(self, item: T | _End) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=_POLL_S)
                return
            except queue.Full:
                continue

    def __iter__(self) -> Prefetch[T, R]:
        return self

    def __next__(self) -> T:
        if self._done:
            raise StopIteration
        item = self._queue.get()
        if isinstance(item, _End):
            self._done = True
            self._thread.join()
            if item.error is not None:
                raise item.error
            self.value = item.value
            raise StopIteration
        return item

    def close(self) -> None:
        """Stop the producer and wait until its generator is closed."""
        self._stop.set()
        self._thread.join()
        self._done = True
