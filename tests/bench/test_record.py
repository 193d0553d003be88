"""Bench provenance: a result is stamped clean only when its tree was read and found clean."""

from __future__ import annotations

import subprocess

import pytest

from bench import record
from gpuflows.core.evidence.envlock import GitInfo


@pytest.mark.parametrize(
    ("commit", "dirty", "want"),
    [
        ("0123456789abcdef", False, "0123456"),
        ("0123456789abcdef", True, "0123456-dirty"),
        ("0123456789abcdef", None, "0123456-tree-unknown"),
        (None, None, "unknown"),
    ],
)
def test_stamp(commit, dirty, want):
    assert record.stamp(commit, dirty) == want


def test_copy_without_git_is_not_stamped_clean(monkeypatch):
    """A GPU host's copy has no .git: the commit comes from $GPUFLOWS_GIT_COMMIT, the tree state
    is unknown, so the stamp must say so (it said clean before)."""

    def no_git(*_a, **_k):
        raise subprocess.CalledProcessError(128, "git")

    monkeypatch.setattr("gpuflows.core.evidence.envlock.subprocess.run", no_git)
    monkeypatch.setenv("GPUFLOWS_GIT_COMMIT", "feedfacecafebeef")
    prov = record.provenance()
    assert prov["git_commit"] == "feedfac-tree-unknown"
    assert GitInfo(**prov["git"]).dirty is None


def test_a_results_file_written_by_an_earlier_bench_leaves_the_tree_clean(tmp_path):
    import subprocess

    from gpuflows.core.evidence.envlock import git_info

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "bench" / "results").mkdir(parents=True)
    (tmp_path / "bench" / "results" / "a-cpu.json").write_text("{}")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    (tmp_path / "bench" / "results" / "a-cpu.json").write_text('{"new": 1}')
    (tmp_path / "bench" / "results" / "b-cpu.json").write_text("{}")
    assert git_info(tmp_path, exclude=("bench/results",)).dirty is False
    assert git_info(tmp_path).dirty is True  # without the exclusion it counts
    (tmp_path / "code.py").write_text("x = 2\n")
    assert git_info(tmp_path, exclude=("bench/results",)).dirty is True  # code always counts
