"""The Ray engine: `analyze_many`'s videos on a Ray cluster, one whole video per actor task.

Layout (sized by `RayConfig` to the cluster's free resources):

- video actors (`VideoWorker`, `actor_cpus` each): an `Analyzer` loaded once per actor runs
  whole videos through `pipeline.analyze_one`, so frame order within a video, the per-video
  lock, the one-line failures and the tables are the local engine's. Results go through the
  same store into the output folder, which every node must see at the same path.
- classifier actors (`ClassifyWorker`, `classify_gpus` each), where the cluster has GPUs or
  `classify_actors` asks for them: the video actors send them face crops (48x48 grayscale,
  never frames), `classify_chunk_frames` frames' worth per request, through a
  `RemoteClassifier`, which has `ExpressionClassifier`'s interface, so `Analyzer` runs
  unchanged. Without them each video actor classifies its own crops.
- a `ray.util.queue.Queue` of (path, frames done, frames in the video) progress events, which
  the driver drains into the caller's `on_progress`; `on_result` gets each video's result as
  it finishes, and the results come back in input order.

Faults: an actor whose process dies (killed, out of memory) is restarted by Ray, which reruns
its constructor, and the driver sends the video to the next free actor, up to `retries` times,
then fails that video alone. The dead writer's lock dies with its process and its staging
folder is deleted by the next writer of that video, so a retried video's tables are those of
an uninterrupted run.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import time
from collections import Counter, deque
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from fervideo.catalog import resolve_model
from fervideo.classify import ExpressionClassifier
from fervideo.config import AnalyzeConfig, RayConfig
from fervideo.core import EMOTIONS
from fervideo.errors import FervideoError
from fervideo.pipeline import Analyzer, VideoResult, analyze_one
from fervideo.quiet import import_tensorflow, native_stderr_silenced, quiet_native_logs
from fervideo.store import ResultStore

log = logging.getLogger(__name__)

#: Builds a video actor's analyzer as `Analyzer(config, classifier=...)` does (the default).
AnalyzerFactory = Callable[..., Analyzer]
#: A video sends at most one progress event per this many seconds (and always its last one).
_PROGRESS_EVERY_S = 0.2
#: The driver drains progress events at least this often while it waits for results.
_POLL_S = 0.1
#: Seconds to wait for a Ray cluster's address to answer before giving up.
_CONNECT_TIMEOUT_S = 10.0
#: Driver environment variables that the actors get too, wherever they run (model folders).
_FORWARDED_PREFIX = "FERVIDEO_"
_MISSING_EXTRA = "the Ray engine needs Ray: pip install 'fervideo[ray]'."


def require_ray() -> ModuleType:
    """The `ray` module.

    Raises:
        FervideoError: Ray is not installed (the message says how to install it).
    """
    try:
        import ray
    except ImportError:
        raise FervideoError(_MISSING_EXTRA) from None
    return ray


def analyze_on_ray(
    paths: list[Path],
    out_dir: str | Path,
    config: AnalyzeConfig | None = None,
    *,
    overwrite: bool = False,
    on_progress: Callable[[Path, int, int], None] | None = None,
    on_result: Callable[[VideoResult], None] | None = None,
    address: str | None = None,
    make_analyzer: AnalyzerFactory = Analyzer,
) -> list[VideoResult]:
    """Analyse files on a Ray cluster; `analyze_many(..., engine="ray")` calls this.

    Args:
        paths: video or image files (`pipeline.expand_inputs`' list), readable by every node
            at the same path.
        out_dir: output folder, seen by every node at the same path.
        config: the run's settings; `config.ray` lays the actors out.
        overwrite: redo videos already finished in `out_dir`.
        on_progress: called with (path, frames decoded, frames in the video).
        on_result: called with each input's result as soon as it is known.
        address: the cluster, as `ray.init` takes it ("HEAD:6379", "ray://HEAD:10001");
            None: Ray's own lookup ($RAY_ADDRESS, as under `ray job submit`, or a cluster
            started on this machine by `ray start`), else a local Ray instance for this run.
            Ignored when this process is already connected to Ray.
        make_analyzer: builds each video actor's analyzer, called as
            `make_analyzer(config, classifier=...)`; it must be importable on the workers.

    Returns:
        One result per path, in the order of `paths`.

    Raises:
        FervideoError: Ray is missing, the cluster cannot be reached, or the model or the
            detector cannot be loaded (before any input is analysed).
    """
    paths = [Path(p) for p in paths]
    if not paths:
        return []
    config = _portable(config or AnalyzeConfig())
    ray = require_ray()
    started = _connect(ray, address)
    try:
        pool = _Pool(ray, config, len(paths), make_analyzer, progress=on_progress is not None)
        try:
            pool.check_started()
            results = _Dispatch(pool, paths, Path(out_dir), overwrite, on_progress, on_result).run()
        finally:
            pool.close()
    finally:
        if started:
            ray.shutdown()
    with suppress(FervideoError):
        ResultStore(out_dir).sweep()  # what killed runs left in staging
    return results


def _connect(ray: ModuleType, address: str | None) -> bool:
    """Connect this process to Ray; True if this call did (and so must disconnect)."""
    if ray.is_initialized():
        return False
    if given := address or os.environ.get("RAY_ADDRESS"):
        check_reachable(given)
    try:
        # Actors' logs stay in the cluster's log files: the driver reports every outcome itself.
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    except (ConnectionError, RuntimeError, ValueError) as err:
        where = f"at {address}" if address else "(from $RAY_ADDRESS or `ray start`)"
        raise FervideoError(f"cannot connect to the Ray cluster {where}: {_first_line(err)}") from None
    return True


def check_reachable(address: str) -> None:
    """Fail at once when nothing answers at a "HOST:PORT" address (Ray itself would retry for
    minutes); other forms ("auto", "local") are left to Ray.

    Raises:
        FervideoError: the connection is refused or times out.
    """
    host, colon, port = address.split("://", 1)[-1].rpartition(":")
    if not colon or not port.isdigit():
        return
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=_CONNECT_TIMEOUT_S):
            pass
    except OSError as err:
        reason = os.strerror(err.errno) if err.errno else "no answer"
        raise FervideoError(
            f"cannot connect to the Ray cluster at {address}: {reason}; is `ray start --head` running there?"
        ) from None


def _portable(config: AnalyzeConfig) -> AnalyzeConfig:
    """`config` with a relative model or weights file made absolute: actors run elsewhere."""
    changes: dict[str, Any] = {}
    if Path(config.model).exists():
        changes["model"] = Path(config.model).absolute()
    if config.retinaface_weights is not None:
        changes["retinaface_weights"] = config.retinaface_weights.absolute()
    return replace(config, **changes)


def pool_sizes(free: dict[str, float], layout: RayConfig, inputs: int) -> tuple[int, int]:
    """(video actors, classifier actors) for `inputs` videos on a cluster with `free`
    resources (`ray.available_resources()`): see `RayConfig`."""
    classify = layout.classify_actors
    if classify is None:
        gpus = free.get("GPU", 0.0)
        classify = int(gpus // layout.classify_gpus) if layout.classify_gpus > 0 else 0
    cpus = free.get("CPU", 0.0) - classify * layout.classify_cpus
    video = layout.actors or max(1, int(cpus // layout.actor_cpus))
    return min(video, inputs), classify


@dataclass(frozen=True)
class _Job:
    path: Path
    wait: bool  # False: report "busy" at once if another process holds the video


class _Pool:
    """The run's actors and progress queue on the cluster; `close` removes them."""

    def __init__(
        self,
        ray: ModuleType,
        config: AnalyzeConfig,
        inputs: int,
        make_analyzer: AnalyzerFactory,
        progress: bool,
    ) -> None:
        from ray.util.queue import Queue

        self.ray = ray
        self.retries = config.ray.retries
        layout = config.ray
        n_video, n_classify = pool_sizes(ray.available_resources(), layout, inputs)
        gpus = ray.cluster_resources().get("GPU", 0.0)
        if n_classify and layout.classify_gpus > gpus:
            raise FervideoError(
                f"the classifier actors need {layout.classify_gpus:g} GPU each, but the Ray cluster has "
                f"{gpus:g}; pass --classify-gpus 0 to run them on CPUs, or --classify-actors 0."
            )
        env = {k: v for k, v in os.environ.items() if k.startswith(_FORWARDED_PREFIX)}
        options: dict[str, Any] = {"max_restarts": -1, "max_task_retries": 0}
        if env:
            options["runtime_env"] = {"env_vars": env}
        self.events = Queue(actor_options={"num_cpus": 0}) if progress else None
        self.classifiers = [
            ray.remote(ClassifyWorker)
            .options(num_cpus=layout.classify_cpus, num_gpus=layout.classify_gpus, **options)
            .remote(config)
            for _ in range(n_classify)
        ]
        self.workers = [
            ray.remote(VideoWorker)
            .options(num_cpus=layout.actor_cpus, **options)
            .remote(config, os.getcwd(), index, self.classifiers, make_analyzer)
            for index in range(n_video)
        ]
        log.info("Ray engine: %d video actor(s), %d classifier actor(s)", n_video, n_classify)

    def close(self) -> None:
        for actor in [*self.workers, *self.classifiers]:
            self.ray.kill(actor)
        if self.events is not None:
            self.events.shutdown()

    def check_started(self) -> None:
        """Wait until the classifier actors have loaded the model.

        Raises:
            FervideoError: they could not (model missing or broken).
        """
        ray = self.ray
        try:
            errors = ray.get([actor.ready.remote() for actor in self.classifiers])
        except ray.exceptions.RayActorError as err:
            raise FervideoError(f"the Ray classifier actors could not start: {_first_line(err)}") from None
        if error := next(filter(None, errors), None):
            raise FervideoError(error)

    def drain(self, on_progress: Callable[[Path, int, int], None] | None) -> None:
        """Hand the progress events that arrived to `on_progress`."""
        if on_progress and self.events is not None and (waiting := self.events.qsize()):
            for path, done, total in self.events.get_nowait_batch(waiting):
                on_progress(path, done, total)


@dataclass(frozen=True)
class _Task:
    """What a video actor was asked: to say it has started (job None), or to analyse a job."""

    actor: Any
    job: _Job | None
    first_start: bool = False


class _Dispatch:
    """The driver's side of a run: videos go to free video actors until each has a result.

    A video whose actor died goes back to the front of the queue, up to `retries` times. The
    dead actor is asked to report once Ray has restarted it (a `ready` call that Ray retries
    until the actor is back) and only then gets work again: a call sent to a restarting actor
    would fail at once.
    """

    def __init__(
        self,
        pool: _Pool,
        paths: list[Path],
        out_dir: Path,
        overwrite: bool,
        on_progress: Callable[[Path, int, int], None] | None,
        on_result: Callable[[VideoResult], None] | None,
    ) -> None:
        self.pool, self.ray = pool, pool.ray
        self.paths, self.out_dir, self.overwrite = paths, out_dir, overwrite
        self.on_progress, self.on_result = on_progress, on_result
        self.todo = deque(_Job(path, wait=False) for path in paths)
        self.running: dict[Any, _Task] = {}
        self.idle: list[Any] = []
        self.deaths: Counter[Path] = Counter()
        self.results: dict[Path, VideoResult] = {}
        for actor in pool.workers:
            self._start(actor, first=True)

    def run(self) -> list[VideoResult]:
        """One result per path, in the order of the paths."""
        while len(self.results) < len(self.paths):
            while self.idle and self.todo:
                actor, job = self.idle.pop(), self.todo.popleft()
                ref = actor.analyze.remote(job.path, self.out_dir, self.overwrite, job.wait, self.pool.events)
                self.running[ref] = _Task(actor, job)
            if not self.running:  # every actor is dead for good: fail what is left, lose nothing
                while self.todo:
                    path = self.todo.popleft().path
                    self._finish(
                        VideoResult(path, "failed", message=f"{path}: not analysed: no Ray worker is left.")
                    )
                break
            timeout = _POLL_S if self.on_progress else None
            done, _ = self.ray.wait(list(self.running), num_returns=1, timeout=timeout)
            self.pool.drain(self.on_progress)  # a video's progress reaches the caller before its result
            for ref in done:
                self._settle(self.running.pop(ref), ref)
        return [self.results[path] for path in self.paths]

    def _start(self, actor: Any, first: bool) -> None:
        ref = actor.ready.options(max_task_retries=-1).remote()  # waits out a restart
        self.running[ref] = _Task(actor, None, first)

    def _finish(self, result: VideoResult) -> None:
        self.results[result.path] = result
        if self.on_result:
            self.on_result(result)

    def _settle(self, task: _Task, ref: Any) -> None:
        ray = self.ray
        try:
            value = ray.get(ref)
        except ray.exceptions.RayActorError as err:
            self._died(task, err)
            return
        except ray.exceptions.RayError as err:  # not the actor: the task itself broke
            if task.job is None:
                raise FervideoError(f"the Ray workers could not start: {_first_line(err)}") from None
            self.idle.append(task.actor)
            cause = getattr(err, "cause", None) or err
            message = f"{task.job.path}: unexpected error on the Ray worker ({_first_line(cause)})."
            self._finish(VideoResult(task.job.path, "failed", message=message))
            return
        if task.job is None:  # an actor has (re)started, or says why it could not
            if value is None:
                self.idle.append(task.actor)
            elif task.first_start:
                raise FervideoError(value)
            else:
                log.warning("a restarted Ray worker cannot load its models (%s); going on without it", value)
            return
        self.idle.append(task.actor)
        if value.status == "busy":  # another process holds it: wait for it at the end
            self.todo.append(_Job(task.job.path, wait=True))
        else:
            self._finish(replace(value, path=task.job.path))

    def _died(self, task: _Task, err: Exception) -> None:
        ray = self.ray
        if task.first_start and err.actor_init_failed:
            raise FervideoError(f"the Ray workers could not start: {_first_line(err)}") from None
        if not isinstance(err, ray.exceptions.ActorDiedError):  # its process died: Ray restarts it
            self._start(task.actor, first=task.first_start)
        if task.job is None:
            return
        path = task.job.path
        self.deaths[path] += 1
        if self.deaths[path] > self.pool.retries:
            self._finish(_died(path, self.deaths[path], err))
            return
        log.warning(
            "%s: the Ray worker analysing it died (%s); retry %d of %d",
            path,
            type(err).__name__,
            self.deaths[path],
            self.pool.retries,
        )
        self.todo.appendleft(task.job)


def _died(path: Path, times: int, err: Exception) -> VideoResult:
    return VideoResult(
        path,
        "failed",
        message=f"{path}: the Ray worker analysing it died {times} time{'s' if times > 1 else ''} "
        f"({type(err).__name__}); see the cluster's worker logs.",
    )


def _first_line(err: BaseException) -> str:
    """ "TypeError: bad thing", without the traceback text some of Ray's errors carry."""
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0]}" if text else type(err).__name__


class VideoWorker:
    """A Ray actor analysing whole videos with one `Analyzer`, built once (and again when Ray
    restarts the actor after its process died).

    Args:
        config: the run's settings.
        cwd: the driver's working folder: relative paths are relative to it.
        index: the actor's number, to spread its requests over the classifier actors.
        classifiers: classifier actors to send crops to; [] classifies here.
        make_analyzer: builds the analyzer (see `analyze_on_ray`).
    """

    def __init__(
        self,
        config: AnalyzeConfig,
        cwd: str,
        index: int,
        classifiers: list[Any],
        make_analyzer: AnalyzerFactory,
    ) -> None:
        quiet_native_logs()
        self._driver_cwd = Path(cwd)
        with suppress(OSError):  # a node without the driver's folder uses absolute paths
            os.chdir(cwd)
        config = replace(config, classify_threads=_limit_threads(config.ray.actor_cpus))
        self._error: str | None = None
        classifier = None
        if classifiers:
            config = replace(config, chunk_frames=config.ray.classify_chunk_frames)
        try:
            if classifiers:
                classifier = RemoteClassifier(classifiers, config, first=index)
            with native_stderr_silenced():  # TensorFlow's start-up lines
                self._analyzer = make_analyzer(config, classifier=classifier)
        except FervideoError as err:
            self._error = str(err)

    def ready(self) -> str | None:
        """None once the detector and the model are loaded, else why they could not be."""
        return self._error

    def analyze(self, path: Path, out_dir: Path, overwrite: bool, wait: bool, events: Any) -> VideoResult:
        """`analyze_one` on a video, its progress sent to the driver's `events` queue."""
        if self._error:  # a restarted actor that could not load the models this time
            return VideoResult(path, "failed", message=self._error)
        progress = _ProgressEvents(events, path) if events is not None else None
        return analyze_one(self._analyzer, self._here(path), self._here(out_dir), overwrite, progress, wait)

    def _here(self, path: Path) -> Path:
        return path if Path.cwd() == self._driver_cwd else self._driver_cwd / path


class ClassifyWorker:
    """A Ray actor holding the expression model (on its GPU, where it reserved one): the
    classify stage of the video actors.

    Args:
        config: the run's settings (model, batch size, TTA).
    """

    def __init__(self, config: AnalyzeConfig) -> None:
        quiet_native_logs()
        threads = _limit_threads(config.ray.classify_cpus)
        if config.ray.classify_gpus > 0:
            _grow_gpu_memory()
        self._error: str | None = None
        try:
            with native_stderr_silenced():
                self._classifier = ExpressionClassifier(
                    config.model, config.batch_size, config.tta, config.runtime, threads
                )
        except FervideoError as err:
            self._error = str(err)

    def ready(self) -> str | None:
        """None once the model is loaded, else why it could not be."""
        return self._error

    def predict(self, crops: np.ndarray) -> np.ndarray:
        """`ExpressionClassifier.predict`."""
        return self._classifier.predict(crops)


class RemoteClassifier:
    """`ExpressionClassifier`'s interface (`info`, `tta`, `predict`) over classifier actors,
    taken in turn. A request whose actor died is sent again once Ray has restarted it (the
    predictions do not depend on which attempt makes them), up to `ray.retries` times.

    Args:
        actors: `ClassifyWorker` actors.
        config: the run's settings (the model, for `info`; TTA; `ray.retries`).
        first: which actor takes the first request.
    """

    def __init__(self, actors: list[Any], config: AnalyzeConfig, first: int = 0) -> None:
        self.info = resolve_model(config.model)
        self.tta = config.tta
        self._actors = actors
        self._turn = first
        self._retries = config.ray.retries

    def predict(self, crops: np.ndarray) -> np.ndarray:
        """(n, 7) probabilities of (n, 48, 48) uint8 crops, computed by a classifier actor."""
        import ray

        if not len(crops):
            return np.zeros((0, len(EMOTIONS)), np.float32)
        actor = self._actors[self._turn % len(self._actors)]
        self._turn += 1
        try:
            return ray.get(actor.predict.options(max_task_retries=self._retries).remote(crops))
        except ray.exceptions.RayActorError as err:
            times = self._retries + 1
            raise FervideoError(
                f"the Ray classifier actor died {times} times on one request ({type(err).__name__})."
            ) from None
        except ray.exceptions.RayTaskError as err:  # the model's own error, without Ray's traceback
            if isinstance(err.cause, Exception):
                raise err.cause from None
            raise


class _ProgressEvents:
    """A video's progress callback on an actor: (path, frames done, frames in the video) into
    the driver's queue, at most one event per `_PROGRESS_EVERY_S` but always the last one."""

    def __init__(self, queue: Any, path: Path) -> None:
        self._queue, self._path, self._sent = queue, path, -math.inf

    def __call__(self, done: int, total: int) -> None:
        import ray

        now = time.monotonic()
        if done >= total or now - self._sent >= _PROGRESS_EVERY_S:
            with suppress(ray.exceptions.RayError):  # a lost progress bar never fails a video
                self._queue.put_nowait((self._path, done, total))
            self._sent = now


def _limit_threads(cpus: float) -> int:
    """Size OpenCV's thread pool to the CPUs the actor reserved, and return that many threads
    for its classifier: each takes every core of the node by default, and a node full of actors
    would oversubscribe them."""
    import cv2

    threads = max(1, math.ceil(cpus))
    cv2.setNumThreads(threads)
    return threads


def _grow_gpu_memory() -> None:
    """Let TensorFlow take GPU memory as it needs it rather than all at once, so that classifier
    actors with a fraction of a GPU each (`classify_gpus` < 1) can share it."""
    tf = import_tensorflow()
    for gpu in tf.config.list_physical_devices("GPU"):
        tf.config.experimental.set_memory_growth(gpu, True)
