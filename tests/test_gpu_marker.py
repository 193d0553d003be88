"""REQUIRE_GPU=1 on a host without CUDA: `gpu` tests fail (they once passed as xfail, rc 0)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GPU_TEST = "tests/core/slo/test_slo.py::test_measure_service_on_cuda_records_peak_memory"


def test_required_gpu_missing_fails_the_run():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this host has CUDA: the gpu test would run for real")
    env = {**os.environ, "REQUIRE_GPU": "1"}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", GPU_TEST],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 1, run.stdout[-2000:]
    assert "REQUIRE_GPU=1 but no CUDA device" in run.stdout and "1 error" in run.stdout
    env.pop("REQUIRE_GPU")
    skipped = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", GPU_TEST],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert skipped.returncode == 0 and "1 skipped" in skipped.stdout, skipped.stdout[-2000:]
