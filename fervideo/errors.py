"""The errors fervideo raises for problems a user can fix; each message is one sentence."""

from __future__ import annotations


class FervideoError(Exception):
    """A problem with the user's input or environment, explained in one sentence."""


class SettingError(FervideoError, ValueError):
    """A setting out of its range, e.g. `AnalyzeConfig(fps=math.inf)`."""
