"""bench/gpu_host.sh fits the device: each group of steps within one call, results in <= 8 files."""

from __future__ import annotations

import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "gpu_host.sh"
GROUP_LIMIT_S = 560  # one call is 600 s at most; the wheel install and imports take the rest


def _steps(group: str) -> list[tuple[str, int]]:
    body = re.search(rf"^group_{group}\(\) \{{\n(.*?)^\}}", SCRIPT.read_text(), re.S | re.M)
    assert body, f"group_{group} not found"
    return [(n, int(s)) for n, s in re.findall(r"^\s*step (\S+) (\d+) ", body.group(1), re.M)]


def test_each_group_fits_one_call_and_every_step_is_kept():
    a, b = _steps("a"), _steps("b")
    assert sum(s for _, s in a) <= GROUP_LIMIT_S and sum(s for _, s in b) <= GROUP_LIMIT_S
    names = {n for n, _ in a + b}
    assert {"gpu-tests", "gpu-baseline", "rqa-gpu", "two-stage-moves-realistic"} <= names
    assert {"batch-eval-throughput", "argo-throughput-7b"} <= names and len(names) == len(a + b)


@pytest.mark.skipif(shutil.which("tar") is None, reason="needs tar")
def test_run_group_b_with_a_stub_python_leaves_two_files(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    env = {"PATH": "/usr/bin:/bin", "OUT": str(out), "PY": "echo"}
    run = subprocess.run(
        ["bash", str(SCRIPT), "run", "b"], env=env, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in out.iterdir()) == ["gpu-run-b.tgz", "summary-b.txt"]
    with tarfile.open(out / "gpu-run-b.tgz") as tar:
        logs = {Path(n).name for n in tar.getnames()}
    assert {"batch-eval-throughput.log", "argo-throughput-7b.log", "nvidia-smi.txt"} <= logs
    assert run.stdout.strip().splitlines()[-1].startswith("llm-calls-7b rc=0")
    bad = subprocess.run(["bash", str(SCRIPT), "run", "c"], env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and "group must be a or b" in bad.stderr
