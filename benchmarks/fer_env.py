"""Make the virtual environment `benchmarks/vs_fer.py` runs the `fer` package in: .devdata/ferenv.

    python benchmarks/fer_env.py

`fer` is compared against, never used by fervideo, so it lives in its own environment outside
git. fer 25.10.3 declares facenet-pytorch and opencv-contrib-python, but its default `FER()`
(Haar cascade, mtcnn=False) needs only the packages below: fer is installed without its declared
dependencies, and TensorFlow is pinned to fervideo's so that both sides run the same engine.
`pkg_resources` (which fer imports) left setuptools in version 81. OpenCV 5 moved the Haar
cascade (`cv2.CascadeClassifier`) to the contrib build, so that one is installed, headless and of
fervideo's version.
"""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ENV = REPO / ".devdata" / "ferenv"
FER = "fer==25.10.3"  # its package exports nothing: `from fer.fer import FER`
DEPENDENCIES = (
    f"tensorflow=={metadata.version('tensorflow')}",
    f"opencv-contrib-python-headless=={metadata.version('opencv-contrib-python-headless')}",
    "pandas",
    "tqdm",
    "requests",
    "Pillow",
    "matplotlib",
    "setuptools<81",
)


def python() -> Path:
    """The environment's interpreter."""
    return ENV / "bin" / "python"


def main() -> None:
    if not python().exists():
        subprocess.run([sys.executable, "-m", "venv", str(ENV)], check=True)
    pip = [str(python()), "-m", "pip", "install", "--quiet"]
    # opencv-python (an earlier version of this script) and the contrib build share the cv2 folder
    subprocess.run([str(python()), "-m", "pip", "uninstall", "--quiet", "--yes", "opencv-python"], check=True)
    subprocess.run([*pip, *DEPENDENCIES], check=True)
    subprocess.run([*pip, "--no-deps", FER], check=True)
    subprocess.run([str(python()), "-c", "from fer.fer import FER; FER()"], check=True)
    print(f"fer ready in {ENV}")


if __name__ == "__main__":
    main()
