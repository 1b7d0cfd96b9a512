"""Reports people read: `write_report` turns an output folder's tables into one self-contained
HTML page (index of the videos, per-video timelines, key moments and tracks, the audience view)
and writes the audience tables, `<out>/audience/<group>.parquet`.

Example:
    >>> from fervideo.report import write_report, read_audience
    >>> write_report("fervideo-out")  # fervideo-out/report.html
    >>> read_audience("fervideo-out")[["group", "second", "viewers", "happy_share"]]
"""

from fervideo.report.audience import read_audience
from fervideo.report.build import write_report

__all__ = ["read_audience", "write_report"]
