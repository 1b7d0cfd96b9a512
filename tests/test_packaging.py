"""What `pip` builds from the repository: the fervideo wheel (under 100 MB, no top-level
`training` module, the models `analyze` needs) and the study models' own distribution."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO

MB = 1_000_000


def build_wheel(source: Path, into: Path) -> Path:
    """`pip wheel SOURCE` (hatchling comes from PyPI into pip's isolated build environment)."""
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(into), str(source)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if result.returncode != 0 and "Could not find a version that satisfies" in result.stderr:
        pytest.skip(f"pip cannot fetch the build backend here: {result.stderr.strip().splitlines()[-1]}")
    assert result.returncode == 0, result.stderr
    return next(into.glob("*.whl"))


def unpack(wheel: Path, into: Path) -> Path:
    """A wheel is a zip of what `pip install` puts into site-packages."""
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(into)
    return into


def python(code: str, path: str | Path, cwd: Path) -> subprocess.CompletedProcess:
    """Run `code` with `path` first on sys.path and without the editable install's entry for
    the repository (as after `pip install fervideo-*.whl`)."""
    env = {k: v for k, v in os.environ.items() if k != "FERVIDEO_MODELS"}
    env["PYTHONPATH"] = str(path)
    unhook = f"import sys; sys.path = [p for p in sys.path if p.rstrip('/') != {str(REPO)!r}]\n"
    return subprocess.run(
        [sys.executable, "-c", unhook + code], capture_output=True, text=True, cwd=cwd, env=env
    )


@pytest.fixture(scope="module")
def fervideo_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (REPO / "models" / "resvgg_ensemble" / "model.keras").is_file():
        pytest.skip("the bundled models are not in this checkout")
    return build_wheel(REPO, tmp_path_factory.mktemp("wheel"))


def test_the_wheel_is_small_and_installs_no_top_level_training(fervideo_wheel: Path, tmp_path: Path):
    assert fervideo_wheel.stat().st_size < 100 * MB
    names = zipfile.ZipFile(fervideo_wheel).namelist()
    tops = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert tops == {"fervideo"}
    assert "fervideo/training/fit.py" in names and "fervideo/models/resvgg_ensemble/model.keras" in names
    assert not [n for n in names if n.startswith("fervideo/models/resnet/") or "-run" in n]
    site = unpack(fervideo_wheel, tmp_path / "site")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert python("import training", site, elsewhere).returncode != 0  # no module of that name
    found = python(
        "import fervideo.training.fit, fervideo.catalog as c; print(c.resolve_model('default').path)",
        site,
        elsewhere,
    )
    assert found.returncode == 0, found.stderr
    assert found.stdout.strip().startswith(str(site / "fervideo" / "models"))  # the wheel's own copy


def test_the_study_models_install_as_their_own_distribution(tmp_path: Path):
    """`pip install ./models` puts resnet into the fervideo_models namespace package, where
    `--model resnet` finds it."""
    if not (REPO / "models" / "resnet" / "model.keras").is_file():
        pytest.skip("models/resnet is not in this checkout")
    wheel = build_wheel(REPO / "models", tmp_path / "wheel")
    names = zipfile.ZipFile(wheel).namelist()
    assert "fervideo_models/resnet/model.keras" in names and "fervideo_models/resnet/README.md" in names
    site = unpack(wheel, tmp_path / "site")
    code = "from fervideo.catalog import resolve_model as r; m = r('resnet'); print(m.source, m.path)"
    found = python(code, site, REPO)  # fervideo from the checkout, resnet from the installed package
    assert found.returncode == 0, found.stderr
    assert found.stdout.split() == ["package", str(site / "fervideo_models" / "resnet" / "model.keras")]
