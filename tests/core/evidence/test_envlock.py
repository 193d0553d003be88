"""The environment lock: seeding, real git identity, package versions, completeness."""

from __future__ import annotations

import random
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from gpuflows.core.evidence.envlock import (
    DatasetRef,
    EnvironmentLock,
    GitInfo,
    build_lock,
    git_info,
    package_versions,
    render_lock_markdown,
    seed_everything,
)
from gpuflows.core.hardware.devices import choose_device

REPO = Path(__file__).resolve().parents[3]
HEX40 = re.compile(r"^[0-9a-f]{40}$")


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """A temp dir that git cannot walk up out of (so a parent checkout never answers)."""
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    monkeypatch.delenv("GPUFLOWS_GIT_COMMIT", raising=False)
    for var in ("GIT_DIR", "GIT_WORK_TREE"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


@pytest.fixture
def repo(isolated):
    """A temp git repo with one committed file."""
    _git(isolated, "init", "-q")
    (isolated / "data.txt").write_text("v1\n")
    (isolated / ".gitignore").write_text("results/\n")
    _git(isolated, "add", "data.txt", ".gitignore")
    _git(isolated, "commit", "-q", "-m", "first")
    return isolated


def dataset(**kw) -> DatasetRef:
    base = {
        "name": "sine",
        "version": "1",
        "digest": "blake2b:" + "0" * 32,
        "synthetic": False,
    }
    return DatasetRef(**{**base, **kw})


# --- seeding -----------------------------------------------------------------------------


def _draws():
    import torch

    return (
        [random.random() for _ in range(3)],
        np.random.rand(3).tolist(),
        torch.rand(3).tolist(),
    )


def test_seed_everything_makes_draws_repeat():
    done = seed_everything(1234)
    assert {"python", "numpy", "torch"} <= set(done)
    first = _draws()
    seed_everything(1234)
    assert _draws() == first
    seed_everything(1235)
    assert _draws() != first


def test_seed_everything_accepts_seeds_beyond_32_bits():
    seed_everything(2**40 + 7)
    a = np.random.rand(2).tolist()
    seed_everything(2**40 + 7)
    assert np.random.rand(2).tolist() == a


@pytest.mark.parametrize("bad", [-1, 1.5, "42", None])
def test_seed_everything_rejects_bad_seeds(bad):
    with pytest.raises(ValueError, match="non-negative integer"):
        seed_everything(bad)


# --- git_info ----------------------------------------------------------------------------


def test_git_info_of_this_repo_is_the_real_head():
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()
    info = git_info(REPO)
    assert HEX40.match(info.commit)
    assert info.commit == head
    assert info.dirty in (True, False)
    assert info.error is None
    assert git_info().commit == head  # default: the checkout gpuflows is imported from


def test_git_info_outside_a_repo_has_no_commit_and_says_why(isolated):
    info = git_info(isolated)
    assert info.commit is None
    assert info.dirty is None
    assert info.error and "not a git checkout" in info.error


def test_git_info_falls_back_to_env_commit(isolated, monkeypatch):
    monkeypatch.setenv("GPUFLOWS_GIT_COMMIT", "a" * 40)
    info = git_info(isolated)
    assert info.commit == "a" * 40
    assert info.dirty is None
    assert "GPUFLOWS_GIT_COMMIT" in info.error


def test_git_info_clean_then_dirty(repo):
    head = _git(repo, "rev-parse", "HEAD")
    clean = git_info(repo)
    assert clean.commit == head and HEX40.match(head)
    assert clean.dirty is False

    (repo / "results").mkdir()
    (repo / "results" / "out.json").write_text("{}")  # ignored files do not count
    assert git_info(repo).dirty is False

    (repo / "data.txt").write_text("v2\n")
    assert git_info(repo).dirty is True


def test_git_info_untracked_file_makes_the_tree_dirty(repo):
    (repo / "new.py").write_text("x = 1\n")
    assert git_info(repo).dirty is True


def test_git_info_in_a_repo_without_commits_is_an_error(isolated):
    _git(isolated, "init", "-q")
    info = git_info(isolated)
    assert info.commit is None
    assert info.error


# --- package_versions --------------------------------------------------------------------


def test_package_versions_real_and_missing():
    import numpy

    v = package_versions(("numpy", "surely-not-installed-gpuflows-xyz"))
    assert v == {"numpy": numpy.__version__, "surely-not-installed-gpuflows-xyz": None}


def test_package_versions_default_includes_the_required_ones():
    v = package_versions()
    for name in ("prefect", "torch", "numpy"):
        assert v[name], name


# --- build_lock / missing / render -------------------------------------------------------


def test_build_lock_complete_when_everything_is_given():
    dev = choose_device("cpu")
    lock = build_lock(seed=7, dataset=dataset(), device=dev, parameters={"m": 3})
    assert lock.missing() == []
    assert lock.seed == 7
    assert "numpy" in lock.seeded
    assert lock.device.device == "cpu"
    assert lock.parameters == {"m": 3}
    assert HEX40.match(lock.git.commit)
    # it round-trips as JSON (it is embedded in every report)
    assert EnvironmentLock.model_validate_json(lock.model_dump_json()).missing() == []


def test_build_lock_without_apply_seed_seeds_nothing():
    lock = build_lock(seed=7, dataset=dataset(), device=None, apply_seed=False)
    assert lock.seeded == []
    assert lock.seed == 7


def test_build_lock_lists_what_is_missing():
    lock = build_lock(seed=None, dataset=None, device=None)
    missing = lock.missing()
    assert "seed" in missing
    assert "dataset digest" in missing
    assert "device" in missing
    assert lock.seeded == []


def test_missing_flags_an_empty_digest_git_and_packages():
    lock = EnvironmentLock(
        seed=1,
        git=GitInfo(error="not a git checkout (CalledProcessError)"),
        dataset=dataset(digest=""),
        packages={"prefect": "3.8.8", "torch": None, "numpy": "2.0"},
        device=choose_device("cpu"),
    )
    missing = lock.missing()
    assert "dataset digest" in missing
    assert "git commit (not a git checkout (CalledProcessError))" in missing
    assert "package version: torch" in missing
    assert "seed" not in missing and "device" not in missing


def test_render_lock_markdown_mentions_commit_and_synthetic():
    commit = "0123456789abcdef0123456789abcdef01234567"
    lock = EnvironmentLock(
        seed=42,
        seeded=["python", "numpy"],
        git=GitInfo(commit=commit, dirty=True),
        dataset=dataset(name="rossler", version="2", synthetic=True),
        packages={"prefect": "3.8.8", "torch": "2.13", "numpy": "2.0", "cupy": None},
        device=choose_device("auto", discovery=_no_gpu()),
    )
    md = render_lock_markdown(lock)
    assert md.startswith("| item | value |")
    assert commit in md
    assert "(dirty tree)" in md
    assert "rossler v2" in md and "(synthetic)" in md
    assert "42 (applied to python, numpy)" in md
    assert "fallback: no GPU" in md
    assert "cupy" not in md  # uninstalled packages are left out
    assert "Incomplete lock" not in md


def test_render_lock_markdown_flags_an_incomplete_lock():
    lock = EnvironmentLock(
        seed=None, git=GitInfo(), dataset=dataset(synthetic=False), packages={}, device=None
    )
    md = render_lock_markdown(lock)
    assert "UNKNOWN" in md
    assert "(synthetic)" not in md
    assert "Incomplete lock, missing:" in md
    assert "seed" in md.split("Incomplete lock")[1]


def _no_gpu():
    from gpuflows.core.hardware.devices import Discovery

    return Discovery(method="none", reason="test")
