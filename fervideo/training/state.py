"""A training run's progress and plan, kept beside its checkpoint in `state.json`."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from fervideo.training.atomic import write_text_atomically


@dataclasses.dataclass
class RunState:
    """What survives an interruption besides the checkpoint: progress and the plan."""

    epochs_done: int = 0
    epochs_total: int = 0
    train_seconds: float = 0.0
    architecture: str = ""
    # (epoch, planned total, new total) each time a resumed run was given another length
    replanned: list[tuple[int, int, int]] = dataclasses.field(default_factory=list)
    # augmentation layer -> its random generator's [seed, counter]: Keras does not save these,
    # and a resumed run that restarted them would replay its first epochs' augmentations
    augment_streams: dict[str, list[int]] = dataclasses.field(default_factory=dict)
    # (first epoch, Keras dtype policy) each time the run's precision was set or changed: a run
    # started in bfloat16 may be resumed in float32 on a machine without native bfloat16
    precision: list[tuple[int, str]] = dataclasses.field(default_factory=list)
    # the distillation teacher (name, path, sha256) and its weight and temperature, if any
    teacher: dict = dataclasses.field(default_factory=dict)

    @classmethod
    def read(cls, path: Path) -> RunState:
        if not path.is_file():
            return cls()
        known = {field.name for field in dataclasses.fields(cls)}
        saved = json.loads(path.read_text())
        state = cls(**{k: v for k, v in saved.items() if k in known})
        state.replanned = [tuple(entry) for entry in state.replanned]  # JSON gives lists
        state.precision = [tuple(entry) for entry in state.precision]
        return state

    def write(self, path: Path) -> None:
        write_text_atomically(path, json.dumps(dataclasses.asdict(self)))
