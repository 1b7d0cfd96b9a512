"""Analyzer factories for the Ray engine's tests. They run inside Ray's actor processes, which
import them from here (`tests.ray_helpers`), so they live in a module, not in a test file."""

from __future__ import annotations

import os
import signal
from collections.abc import Collection
from pathlib import Path

from fervideo.config import AnalyzeConfig
from fervideo.pipeline import Analyzer, ProgressCallback, VideoResult


class DyingAnalyzer(Analyzer):
    """An `Analyzer` whose process kills itself with SIGKILL (as the kernel's out-of-memory
    killer would) when it has analysed `after` sampled frames of a video named in `once` (the
    first time only: a file in `markers` remembers it) or in `always` (every time).

    Args:
        config, classifier: as for `Analyzer`.
        after: sampled frames of the video analysed before the kill.
        markers: folder for the files that remember the kills of `once` videos.
        once: file names of videos killed on their first attempt only.
        always: file names of videos killed on every attempt.
    """

    def __init__(
        self,
        config: AnalyzeConfig,
        classifier=None,
        *,
        after: int,
        markers: Path,
        once: Collection[str] = (),
        always: Collection[str] = (),
    ) -> None:
        super().__init__(config, classifier=classifier)
        self.after, self.markers, self.once, self.always = after, markers, set(once), set(always)

    def run(
        self,
        path: str | Path,
        out_dir: str | Path,
        overwrite: bool = False,
        on_progress: ProgressCallback | None = None,
        wait: bool = True,
    ) -> VideoResult:
        name = Path(path).name
        frames = 0

        def progress(done: int, total: int) -> None:
            nonlocal frames
            frames += 1
            if frames == self.after and self._dies(name):
                os.kill(os.getpid(), signal.SIGKILL)
            if on_progress:
                on_progress(done, total)

        return super().run(path, out_dir, overwrite, progress, wait)

    def _dies(self, name: str) -> bool:
        if name in self.always:
            return True
        if name not in self.once:
            return False
        try:
            (self.markers / name).touch(exist_ok=False)
        except FileExistsError:
            return False
        return True


def remotely_classifying_analyzer(config: AnalyzeConfig, classifier=None) -> Analyzer:
    """An `Analyzer` that refuses to start unless its classifier forwards the crops to the Ray
    engine's classifier actors (the split layout)."""
    from fervideo.engines.ray import RemoteClassifier

    if not isinstance(classifier, RemoteClassifier):
        raise TypeError(f"expected a RemoteClassifier, got {type(classifier).__name__}")
    return Analyzer(config, classifier=classifier)
