"""Weight files of a model folder: safetensors or torch pickles, sizes without reading weights,
and a fingerprint that follows the content (a same-shape fine-tune is a different model)."""

from __future__ import annotations

import os

import pytest
import torch
from safetensors.torch import save_file

from gpuflows.core.memory import weight_files as wf
from gpuflows.core.memory.model_size import nbytes_of, need_from_weights
from gpuflows.core.memory.weight_files import model_fingerprint, weight_files, weights_nbytes


def _net(dtype=torch.float32):
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(10, 20), torch.nn.Linear(20, 3)).to(dtype)


def _sd(m):
    return {k: v.contiguous() for k, v in m.state_dict().items()}


def test_torch_pickle_only_folder_is_sized_from_shapes(tmp_path):
    m = _net(torch.bfloat16)
    torch.save(m.state_dict(), tmp_path / "pytorch_model.bin")
    torch.save({"state": {0: torch.zeros(10_000)}}, tmp_path / "optimizer.pt")  # not weights
    assert weight_files(tmp_path) == [tmp_path / "pytorch_model.bin"]
    n, b = weights_nbytes(tmp_path)
    assert n == sum(p.numel() for p in m.parameters()) and b == nbytes_of(m)
    assert weights_nbytes(tmp_path, "float32")[1] == 2 * b
    est = need_from_weights(tmp_path, None, activation_margin=0.5, name="m")
    assert est.nbytes == int(b * 1.5) and "torch pickle shapes" in est.basis


def test_safetensors_win_over_pickles_in_the_same_folder_each_folder_on_its_own(tmp_path):
    m = _net()
    (tmp_path / "unet").mkdir()
    (tmp_path / "vae").mkdir()
    save_file(_sd(m), tmp_path / "unet" / "model.safetensors")
    torch.save(m.state_dict(), tmp_path / "unet" / "model.bin")  # the same weights, twice
    torch.save(m.state_dict(), tmp_path / "vae" / "model.bin")
    assert weight_files(tmp_path) == [
        tmp_path / "unet/model.safetensors",
        tmp_path / "vae/model.bin",
    ]
    assert weights_nbytes(tmp_path)[1] == 2 * nbytes_of(m)


def test_no_weights_and_bad_pickles_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no weights under .*\*\.safetensors.*\*\.bin"):
        weight_files(tmp_path)
    (tmp_path / "model.bin").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match=r"model\.bin is not a loadable torch state dict.*convert"):
        weights_nbytes(tmp_path)


def test_fingerprint_follows_weight_values_not_docs(tmp_path):
    m = _net()
    save_file(_sd(m), tmp_path / "model.safetensors")
    (tmp_path / "config.json").write_text('{"hidden": 20}')
    memo = tmp_path.parent / "memo"
    first = model_fingerprint(tmp_path, memo_dir=memo)
    (tmp_path / "README.md").write_text("model card")
    (tmp_path / ".gitattributes").write_text("*.safetensors filter=lfs")
    assert model_fingerprint(tmp_path, memo_dir=memo) == first, "a model card changed the model"
    with torch.no_grad():
        m[0].weight.add_(1e-3)  # a fine-tune: same names, dtypes, shapes and file size
    save_file(_sd(m), tmp_path / "model.safetensors")
    assert model_fingerprint(tmp_path, memo_dir=memo) != first
    (tmp_path / "config.json").write_text('{"hidden": 21}')
    assert len({first, model_fingerprint(tmp_path, memo_dir=memo)}) == 2


def test_large_files_are_hashed_once_then_when_they_change(tmp_path, monkeypatch):
    big = torch.zeros(wf.MEMO_MIN_BYTES // 4 + 1)
    save_file({"w": big}, tmp_path / "model.safetensors")
    hashed = []
    real = wf.file_digest
    monkeypatch.setattr(wf, "file_digest", lambda f: hashed.append(f) or real(f))
    memo = tmp_path.parent / "memo"
    a = model_fingerprint(tmp_path, memo_dir=memo)
    assert model_fingerprint(tmp_path, memo_dir=memo) == a and len(hashed) == 1
    save_file({"w": big + 1}, tmp_path / "model.safetensors")
    st = (tmp_path / "model.safetensors").stat()
    os.utime(tmp_path / "model.safetensors", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert model_fingerprint(tmp_path, memo_dir=memo) != a and len(hashed) == 2
    (memo / "file-digests.json").write_text("{corrupt")  # a broken memo only costs a re-hash
    model_fingerprint(tmp_path, memo_dir=memo)
    assert len(hashed) == 3


def test_hugging_face_cache_blobs_are_named_by_their_hash(tmp_path, monkeypatch):
    """A snapshot file links to blobs/<sha256>: that name is the content digest, nothing read."""
    blobs, snap = tmp_path / "blobs", tmp_path / "snapshots" / "abc123"
    blobs.mkdir()
    snap.mkdir(parents=True)
    sha = "ab" * 32
    save_file(_sd(_net()), blobs / sha)
    (snap / "model.safetensors").symlink_to(blobs / sha)
    monkeypatch.setattr(wf, "file_digest", lambda f: pytest.fail(f"read {f}"))
    monkeypatch.setattr(wf, "MEMO_MIN_BYTES", 0)
    fp = model_fingerprint(snap, memo_dir=tmp_path / "memo")
    assert wf._hf_blob_sha256(snap / "model.safetensors") == f"hf-blob:{sha}"
    (snap / "model.safetensors").unlink()
    (snap / "model.safetensors").symlink_to(blobs / sha)  # relinked: same identity
    assert model_fingerprint(snap, memo_dir=tmp_path / "memo") == fp


def test_variants_beside_the_plain_weights_are_not_counted(tmp_path):
    """Hub folders ship fp16 / non-EMA variants beside the weights that load: counting them
    would double the VRAM need and refuse a model that fits."""
    m = _net()
    unet = tmp_path / "unet"
    unet.mkdir()
    for name in (
        "diffusion_pytorch_model",
        "diffusion_pytorch_model.fp16",
        "diffusion_pytorch_model.non_ema",
    ):
        save_file(_sd(m), unet / f"{name}.safetensors")
    cache = tmp_path / ".cache" / "huggingface"
    cache.mkdir(parents=True)
    save_file(_sd(m), cache / "stale.safetensors")  # a download tool's leftovers
    assert weight_files(tmp_path) == [unet / "diffusion_pytorch_model.safetensors"]
    only = tmp_path.parent / "only-variant"
    only.mkdir()
    save_file(_sd(m), only / "model.fp16.safetensors")
    assert weight_files(only) == [only / "model.fp16.safetensors"]


def test_weights_that_do_not_load_are_not_hashed(tmp_path, monkeypatch):
    """A hub snapshot may hold the same weights as safetensors, .bin, TF and Flax: only what
    loads is read (a 4x cost otherwise), and changing the others changes nothing."""
    m = _net()
    save_file(_sd(m), tmp_path / "model.safetensors")
    torch.save(m.state_dict(), tmp_path / "pytorch_model.bin")
    (tmp_path / "tf_model.h5").write_bytes(b"h5")
    (tmp_path / "tokenizer.json").write_text("{}")
    read = []
    real = wf.bytes_digest
    monkeypatch.setattr(wf, "bytes_digest", lambda b: read.append(len(b)) or real(b))
    fp = model_fingerprint(tmp_path, memo_dir=tmp_path.parent / "memo")
    assert len(read) == 2  # model.safetensors and tokenizer.json
    (tmp_path / "tf_model.h5").write_bytes(b"other")
    torch.save({"x": torch.zeros(3)}, tmp_path / "pytorch_model.bin")
    assert model_fingerprint(tmp_path, memo_dir=tmp_path.parent / "memo") == fp
    (tmp_path / "tokenizer.json").write_text('{"added": 1}')
    assert model_fingerprint(tmp_path, memo_dir=tmp_path.parent / "memo") != fp
