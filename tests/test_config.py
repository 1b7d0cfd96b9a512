import math
from contextlib import ExitStack as DoesNotRaise

import pytest

from fervideo import tta
from fervideo.config import TTA_MODES, AnalyzeConfig


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("fps", 0, "a number > 0, or None"),
        ("fps", -2.0, "a number > 0, or None"),
        ("fps", math.nan, "a number > 0, or None"),
        ("batch_size", 0, "an integer >= 1"),
        ("chunk_frames", 0, "an integer >= 1"),
        ("margin", -0.1, "a number >= 0"),
        ("min_score", -0.01, r"a number in \[0, 1\]"),
        ("min_score", 1.5, r"a number in \[0, 1\]"),
        ("tta", "rotate", "one of none, flip, crops"),
        ("tta", True, "one of none, flip, crops"),  # the old boolean setting
    ],
)
def test_out_of_range_settings_say_what_was_expected(field, value, expected):
    with pytest.raises(ValueError, match=rf"AnalyzeConfig\.{field} must be {expected}.*but got {value!r}"):
        AnalyzeConfig(**{field: value})


@pytest.mark.parametrize(
    "fields",
    [{}, {"fps": None}, {"fps": 0.01}, {"margin": 0.0}, {"min_score": 0.0}, {"min_score": 1.0}]
    + [{"tta": mode} for mode in TTA_MODES],
)
def test_settings_at_the_edges_of_their_range_are_valid(fields):
    with DoesNotRaise():
        AnalyzeConfig(**fields)


def test_tta_modes_have_one_source():
    assert tta.TTA_MODES is TTA_MODES
