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
