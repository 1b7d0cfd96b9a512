"""One colour per expression, shared by the report's charts and the annotated video, so a class
looks the same everywhere."""

from __future__ import annotations

from fervideo.core import EMOTIONS

#: "#rrggbb" per class, in `EMOTIONS` order: colour-blind-safe hues (Okabe-Ito) plus grey.
COLORS: dict[str, str] = dict(
    zip(
        EMOTIONS,
        ("#d55e00", "#009e73", "#cc79a7", "#e69f00", "#0072b2", "#56b4e9", "#999999"),
        strict=True,
    )
)


def bgr(emotion: str) -> tuple[int, int, int]:
    """The class's colour as an OpenCV (blue, green, red) tuple."""
    rgb = COLORS[emotion].lstrip("#")
    red, green, blue = (int(rgb[i : i + 2], 16) for i in (0, 2, 4))
    return blue, green, red
