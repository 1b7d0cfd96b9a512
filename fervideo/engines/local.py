"""The local multi-process engine: `analyze_many`'s videos on worker processes of this machine.

Each worker is a spawned process that loads one `Analyzer` (model and detector) when it starts
and then runs whole videos through `pipeline.analyze_one`, one at a time, so frame order, the
per-video lock, the one-line failures and the tables are those of a run in one process. The
driver gives each idle worker the next video and knows which video every worker holds: a
worker that dies (killed, out of memory, a crash in native code) fails only that video, and a
new worker takes its place while videos remain.

Workers report (path, frames done, frames in the video) progress events and their results on
one queue, which the driver drains into the caller's `on_progress` and `on_result`, in its own
thread. Each worker sizes its OpenCV and classifier thread pools to its share of the cores (the
detector runs one thread), so that the workers do not oversubscribe them.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from fervideo.config import AnalyzeConfig
from fervideo.errors import FervideoError

if TYPE_CHECKING:
    from fervideo.pipeline import VideoResult

#: A worker sends at most one progress event per this many seconds (and always its last one).
_PROGRESS_EVERY_S = 0.2
#: The driver checks that its workers are alive at least this often.
_POLL_S = 0.1


@dataclass(frozen=True)
class _Task:
    path: Path
    wait: bool


def analyze_in_workers(
    paths: list[Path],
    out_dir: str | Path,
    config: AnalyzeConfig,
    workers: int,
    *,
    overwrite: bool = False,
    on_progress: Callable[[Path, int, int], None] | None = None,
    on_result: Callable[[VideoResult], None] | None = None,
    make_analyzer: Callable[[AnalyzeConfig], object] | None = None,
) -> list[VideoResult]:
    """Analyse files on `workers` processes; `analyze_many` calls this for several inputs.

    A video that another process is analysing into `out_dir` is put off to the end, then waited
    for, as in one process.

    `make_analyzer(config)` builds each worker's analyzer (default: `pipeline.Analyzer`); it
    must be importable in the workers.

    Returns:
        One `VideoResult` per path, in the order of `paths`.

    Raises:
        FervideoError: a worker cannot load the model or the detector (before any video is
            analysed).
    """
    from fervideo.pipeline import VideoResult  # the pipeline imports this module when it needs it

    context = multiprocessing.get_context("spawn")  # TensorFlow's threads do not survive a fork
    events = context.Queue()
    threads = max(1, (os.cpu_count() or 1) // workers)
    todo = deque(_Task(path, wait=False) for path in paths)
    pool = _Pool(context, events, (config, str(out_dir), overwrite, threads, make_analyzer))
    results: dict[Path, VideoResult] = {}
    try:
        for _ in range(min(workers, len(paths))):
            pool.start()
        while len(results) < len(paths):
            pool.give(todo)
            try:
                event = events.get(timeout=_POLL_S)
            except queue.Empty:
                for path, code in pool.reap():  # a dead worker fails only its video
                    if path is not None:
                        message = f"{path}: the worker process analysing it died (exit code {code})."
                        results[path] = VideoResult(path, "failed", message=message)
                        if on_result:
                            on_result(results[path])
                    if todo:
                        pool.start()
                continue
            kind, pid, *payload = event
            if kind == "error":
                raise FervideoError(payload[0])
            if kind == "ready":
                pool.ready(pid)
                continue
            if kind == "progress":
                if on_progress:
                    on_progress(*payload)
                continue
            pool.idle(pid)  # kind == "result"
            result = payload[0]
            if result.status == "busy":
                todo.append(_Task(result.path, wait=True))
                continue
            results[result.path] = result
            if on_result:
                on_result(result)
    finally:
        pool.stop()
    return [results[path] for path in paths]


class _Pool:
    """The worker processes and the video each one holds."""

    def __init__(self, context, events, settings: tuple) -> None:
        self._context = context
        self._events = events
        self._settings = settings
        self._workers: dict[int, tuple] = {}  # pid: (process, its task queue, its path or None)
        self._ready: set[int] = set()

    def start(self) -> None:
        tasks = self._context.SimpleQueue()
        process = self._context.Process(
            target=_work, args=(tasks, self._events, *self._settings), daemon=True, name="fervideo-worker"
        )
        process.start()
        self._workers[process.pid] = (process, tasks, None)

    def ready(self, pid: int) -> None:
        self._ready.add(pid)

    def give(self, todo: deque) -> None:
        """Hand the next tasks to idle workers."""
        for pid, (process, tasks, path) in list(self._workers.items()):
            if path is None and todo and pid in self._ready:
                task = todo.popleft()
                tasks.put(task)
                self._workers[pid] = (process, tasks, task.path)

    def idle(self, pid: int) -> None:
        process, tasks, _ = self._workers[pid]
        self._workers[pid] = (process, tasks, None)

    def reap(self) -> list[tuple[Path | None, int | None]]:
        """Forget the workers that died: (the path each held or None, its exit code)."""
        dead = [(pid, w) for pid, w in self._workers.items() if not w[0].is_alive()]
        for pid, (process, _, _) in dead:
            if pid not in self._ready:  # else a crash at start-up would restart it for ever
                raise FervideoError(
                    f"a worker process died while it loaded the model (exit code {process.exitcode})."
                )
            del self._workers[pid]
        return [(path, process.exitcode) for _, (process, _, path) in dead]

    def stop(self) -> None:
        for process, tasks, _ in self._workers.values():
            if process.is_alive():
                tasks.put(None)
        deadline = time.monotonic() + 5
        for process, _, _ in self._workers.values():
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join()


def _work(
    tasks, events, config: AnalyzeConfig, out_dir: str, overwrite: bool, threads: int, make_analyzer
) -> None:
    """A worker's life: load an analyzer, then run the videos it is given until it gets None."""
    pid = os.getpid()
    _exit_with_the_driver()
    try:
        analyzer = _worker_analyzer(config, threads, make_analyzer)
    except FervideoError as err:
        events.put(("error", pid, str(err)))
        return
    events.put(("ready", pid))
    from fervideo.pipeline import analyze_one

    while (task := tasks.get()) is not None:
        sent = 0.0

        def progress(done: int, total: int, path: Path = task.path) -> None:
            nonlocal sent
            now = time.monotonic()
            if done >= total or now - sent >= _PROGRESS_EVERY_S:
                events.put(("progress", pid, path, done, total))
                sent = now

        result = analyze_one(analyzer, task.path, out_dir, overwrite, progress, task.wait)
        events.put(("result", pid, result))


def _exit_with_the_driver() -> None:
    """End this worker as soon as the driver process ends, however it ends. A driver killed
    outright (SIGKILL, the out-of-memory killer) cannot stop its workers, and each would wait
    for its next task for ever, holding its model in memory. A video it was writing stays
    unfinished in the staging folder, as the driver's own would; the next run redoes it."""
    driver = multiprocessing.parent_process()
    if driver is None:
        return

    def watch() -> None:
        multiprocessing.connection.wait([driver.sentinel])
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="fervideo-driver-watch").start()


def _worker_analyzer(config: AnalyzeConfig, threads: int, make_analyzer):
    import cv2

    from fervideo.pipeline import Analyzer
    from fervideo.quiet import native_stderr_silenced, quiet_native_logs

    cv2.setNumThreads(threads)
    quiet_native_logs()
    with native_stderr_silenced():  # TensorFlow's start-up lines, where it is loaded
        return (make_analyzer or Analyzer)(replace(config, classify_threads=threads))
