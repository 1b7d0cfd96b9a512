"""Training picks bfloat16 only where the hardware computes it natively, and turns
TensorFlow's oneDNN kernels on before TensorFlow loads."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fervideo.training import precision
from tests.helpers import imported_after

ZEN1 = "processor\t: 0\nflags\t\t: fpu sse sse2 avx avx2 fma\nbugs\t\t: sysret_ss_attrs\n"
SAPPHIRE_RAPIDS = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"
ZEN4 = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16\n"


def test_bfloat16_is_native_only_with_avx512_bf16_or_amx():
    assert not precision.cpu_has_bfloat16(ZEN1)
    assert precision.cpu_has_bfloat16(SAPPHIRE_RAPIDS)
    assert precision.cpu_has_bfloat16(ZEN4)
    assert not precision.cpu_has_bfloat16("vmx flags\t: avx512_bf16\n")  # a VMX line, not the CPU's
    assert not precision.cpu_has_bfloat16("")


@pytest.mark.parametrize(("cpuinfo", "expected"), [(ZEN1, False), (SAPPHIRE_RAPIDS, True)])
def test_the_default_follows_the_cpu_and_a_given_choice_wins(cpuinfo, expected, tmp_path: Path, monkeypatch):
    (tmp_path / "cpuinfo").write_text(cpuinfo)
    monkeypatch.setattr(precision, "CPUINFO", tmp_path / "cpuinfo")
    monkeypatch.setattr(precision, "gpu_has_bfloat16", lambda: None)
    assert precision.resolve_mixed_precision(None) is expected
    assert precision.resolve_mixed_precision(True) is True
    assert precision.resolve_mixed_precision(False) is False
    monkeypatch.setattr(precision, "CPUINFO", tmp_path / "missing")
    assert precision.resolve_mixed_precision(None) is False


def test_a_gpu_decides_over_the_cpu(tmp_path: Path, monkeypatch):
    (tmp_path / "cpuinfo").write_text(ZEN1)
    monkeypatch.setattr(precision, "CPUINFO", tmp_path / "cpuinfo")
    monkeypatch.setattr(precision, "gpu_has_bfloat16", lambda: True)
    assert precision.resolve_mixed_precision(None) is True


def test_onednn_is_turned_on_unless_the_user_chose():
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    turned_on = "import fervideo.training; assert os.environ['TF_ENABLE_ONEDNN_OPTS'] == '1'"
    assert "TF_ENABLE_ONEDNN_OPTS" in imported_after(turned_on, env)["env_changed"]
    kept = "import fervideo.training; assert os.environ['TF_ENABLE_ONEDNN_OPTS'] == '0'"
    assert (
        "TF_ENABLE_ONEDNN_OPTS"
        not in imported_after(kept, {**env, "TF_ENABLE_ONEDNN_OPTS": "0"})["env_changed"]
    )
