"""Model residency: keep on the GPU only the models the VRAM budget allows, and count every move.

Seed 004 runs a diffusion edit model and a vision-language reward model that do not fit one GPU
together; moving them per pair cost 540 moves. A :class:`ResidencyManager` owns the placement:
models register with their VRAM need (:func:`weights_nbytes` reads it from the safetensors
headers before any weight is loaded, plus a stated activation margin), :meth:`acquire` makes one
resident, evicting the least recently used others only as far as the capacity requires, and every
transfer is recorded as a :class:`MoveRecord` (bytes, seconds, GB/s).

Conventions:
    * A *swap* is one :meth:`acquire` that had to evict a resident model (the seed's "切换"); the
      first placement of a model on an empty device is a *load*, not a swap. ``moves`` holds
      every transfer (loads, offloads, reloads), ``swaps`` the swap count.
    * Host copies: on CUDA, weights offloaded to the host are pinned (page-locked) when
      ``pin_host`` is on (``auto``: on for CUDA devices), so the next host->device copy runs at
      DMA speed; pinning needs CUDA and is skipped on CPU-only hosts.
    * A model spread over several devices (``hf_device_map`` naming more than one device) is
      *reloaded* through its ``loader`` instead of moved: ``.to()`` would collapse its map.
    * Without a GPU (``device == host``) residency is still enforced and counted exactly; the
      records say ``same_device=True``: no bytes actually crossed a bus.

The module imports torch lazily and no Prefect.
"""

from __future__ import annotations

import json
import struct
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpuflows.budget import GIB, VramEstimate, dtype_bytes

_ST_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1,
             "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}  # fmt: skip


class ResidencyError(ValueError):
    """A model that can never fit, or a placement that would evict a model in use."""


def weights_nbytes(path: str | Path, dtype: str | None = None) -> tuple[int, int]:
    """(parameters, bytes) of every ``*.safetensors`` file under ``path``, from their headers only.

    ``dtype`` (e.g. "float16") prices floating tensors at that dtype (what ``from_pretrained(...,
    dtype=...)`` loads); None keeps the stored dtypes.
    """
    files = sorted(Path(path).rglob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"no *.safetensors under {path}: the model folder has no weights")
    n_params = n_bytes = 0
    for f in files:
        with open(f, "rb") as fh:
            (size,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(size))
        for name, t in header.items():
            if name == "__metadata__":
                continue
            numel = 1
            for s in t["shape"]:
                numel *= s
            stored = t["dtype"]
            per = _ST_BYTES.get(stored, 4)
            if dtype is not None and stored.startswith(("F", "BF")):
                per = dtype_bytes(dtype)
            n_params += numel
            n_bytes += numel * per
    return n_params, n_bytes


def need_from_weights(
    path: str | Path, dtype: str | None, *, activation_margin: float, name: str
) -> VramEstimate:
    """VRAM need = weight bytes (headers) x (1 + activation margin), with its basis stated."""
    n_params, nbytes = weights_nbytes(path, dtype)
    return VramEstimate(
        nbytes=int(nbytes * (1 + activation_margin)),
        basis=f"{name}: {n_params:,} params, {nbytes / GIB:.3f} GiB weights "
        f"({dtype or 'stored dtypes'}) from safetensors headers +{activation_margin:.0%} activations",
    )


def modules_of(obj: Any) -> list[Any]:
    """The torch modules of a model object: itself, a diffusers pipeline's components, or the
    ``.model`` / ``.pipeline`` of an adapter."""
    import torch

    if isinstance(obj, torch.nn.Module):
        return [obj]
    for attr in ("pipeline", "model"):
        inner = getattr(obj, attr, None)
        if inner is not None:
            return modules_of(inner)
    comps = getattr(obj, "components", None)
    if isinstance(comps, dict):
        return [m for m in comps.values() if isinstance(m, torch.nn.Module)]
    raise TypeError(f"{type(obj).__name__} is not a torch module, pipeline or model adapter")


def nbytes_of(obj: Any) -> int:
    """Parameter + buffer bytes of a model object."""
    return sum(
        t.numel() * t.element_size()
        for m in modules_of(obj)
        for t in (*m.parameters(), *m.buffers())
    )


def _movable(obj: Any) -> Any:
    """What ``.to(device)`` is called on: the object, or an adapter's pipeline / model."""
    if hasattr(obj, "to"):
        return obj
    for attr in ("pipeline", "model"):
        inner = getattr(obj, attr, None)
        if inner is not None and hasattr(inner, "to"):
            return inner
    raise TypeError(f"{type(obj).__name__} has no .to(): register a module, pipeline or adapter")


def _split(obj: Any) -> bool:
    devs: set[str] = set()
    for m in modules_of(obj):
        devs |= {str(v) for v in (getattr(m, "hf_device_map", None) or {}).values()}
    return len(devs) > 1


@dataclass
class MoveRecord:
    """One transfer: ``kind`` load (host->device), offload (device->host) or reload (loader)."""

    model: str
    kind: str
    src: str
    dst: str
    nbytes: int
    seconds: float
    pinned: bool = False
    same_device: bool = False

    @property
    def gb_per_s(self) -> float | None:
        return self.nbytes / 1e9 / self.seconds if self.seconds > 0 else None


@dataclass
class _Entry:
    obj: Any
    need: int
    loader: Callable[[], Any] | None
    on_device: bool = False
    in_use: int = 0
    last_used: int = 0


@dataclass
class ResidencyManager:
    """Places registered models on ``device`` within ``capacity_bytes``; see the module doc."""

    device: str
    capacity_bytes: int
    host: str = "cpu"
    pin_host: bool | str = "auto"
    clock: Callable[[], float] = time.perf_counter
    moves: list[MoveRecord] = field(default_factory=list)
    swaps: int = 0
    _models: dict[str, _Entry] = field(default_factory=dict)
    _tick: int = 0
    _lock: threading.RLock = field(default_factory=threading.RLock)

    def register(
        self,
        name: str,
        obj: Any,
        need: VramEstimate | int,
        *,
        loader: Callable[[], Any] | None = None,
    ) -> None:
        """Add a model (currently on the host): an ``nn.Module``, a diffusers pipeline, or an
        adapter holding one as ``.pipeline`` / ``.model``. Fails at once if it can never fit."""
        need_b = self.require_fits(name, need)
        self._models[name] = _Entry(obj, need_b, loader)

    def require_fits(self, name: str, need: VramEstimate | int) -> int:
        """The need in bytes; ResidencyError if it exceeds the budget (call before loading)."""
        need_b = need.nbytes if isinstance(need, VramEstimate) else int(need)
        if need_b > self.capacity_bytes:
            raise ResidencyError(
                f"model {name!r} needs {need_b / GIB:.2f} GiB but {self.device} has a budget of "
                f"{self.capacity_bytes / GIB:.2f} GiB: use a smaller dtype (float16/bfloat16), a "
                "device_map over several GPUs in its ModelSource block, or a larger GPU"
            )
        return need_b

    def get(self, name: str) -> Any:
        return self._entry(name).obj

    def resident(self) -> list[str]:
        return [n for n, e in self._models.items() if e.on_device]

    def _entry(self, name: str) -> _Entry:
        if name not in self._models:
            raise KeyError(f"model {name!r} is not registered (known: {sorted(self._models)})")
        return self._models[name]

    def acquire(self, name: str) -> Any:
        """Make ``name`` resident (evicting LRU idle models as needed); returns the object."""
        with self._lock:
            e = self._entry(name)
            self._tick += 1
            e.last_used = self._tick
            if e.on_device:
                return e.obj
            used = sum(x.need for x in self._models.values() if x.on_device)
            victims = sorted(
                (x for x in self._models.values() if x.on_device), key=lambda x: x.last_used
            )
            evict: list[_Entry] = []
            for v in victims:
                if used + e.need <= self.capacity_bytes:
                    break
                if v.in_use:
                    continue
                evict.append(v)
                used -= v.need
            if used + e.need > self.capacity_bytes:
                busy = [n for n, x in self._models.items() if x.on_device and x.in_use]
                raise ResidencyError(
                    f"cannot place {name!r} ({e.need / GIB:.2f} GiB): models in use {busy} hold "
                    "the rest of the budget; release them first"
                )
            for v in evict:
                self._offload(self._name(v), v)
            if evict:
                self.swaps += 1
            self._load(name, e)
            return e.obj

    @contextmanager
    def using(self, name: str) -> Iterator[Any]:
        """Acquire ``name`` and keep it from being evicted until the block ends."""
        with self._lock:
            obj = self.acquire(name)
            self._entry(name).in_use += 1
        try:
            yield obj
        finally:
            with self._lock:
                self._entry(name).in_use -= 1

    def evict(self, name: str) -> None:
        """Move ``name`` to the host now (no-op if it is not resident)."""
        with self._lock:
            e = self._entry(name)
            if e.in_use:
                raise ResidencyError(f"model {name!r} is in use: it cannot be evicted")
            if e.on_device:
                self._offload(name, e)

    def _name(self, e: _Entry) -> str:
        return next(n for n, x in self._models.items() if x is e)

    def _sync(self) -> None:
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize(self.device)

    def _pin(self) -> bool:
        on = self.device.startswith("cuda") if self.pin_host == "auto" else bool(self.pin_host)
        return on and self.device.startswith("cuda")

    def _load(self, name: str, e: _Entry) -> None:
        t0 = self.clock()
        if e.obj is None:  # dropped at offload: reload through the loader
            e.obj, kind, pinned = e.loader(), "reload", False
        else:
            kind, pinned = "load", self._pin()
            _movable(e.obj).to(self.device)
        self._sync()
        self.moves.append(
            MoveRecord(
                name,
                kind,
                self.host,
                self.device,
                nbytes_of(e.obj),
                self.clock() - t0,
                pinned,
                self.device == self.host,
            )  # fmt: skip
        )
        e.on_device = True

    def _offload(self, name: str, e: _Entry) -> None:
        nb = nbytes_of(e.obj)
        t0 = self.clock()
        if _split(e.obj):
            if e.loader is None:
                raise ResidencyError(
                    f"model {name!r} is spread over several devices (hf_device_map): it is "
                    "reloaded, not moved, and needs a loader: register it with loader=..."
                )
            e.obj = None
            _free_cuda()
        else:
            _movable(e.obj).to(self.host)
            if self._pin():
                for m in modules_of(e.obj):
                    for t in (*m.parameters(), *m.buffers()):
                        t.data = t.data.pin_memory()
            _free_cuda()
        self._sync()
        self.moves.append(
            MoveRecord(
                name,
                "offload",
                self.device,
                self.host,
                nb,
                self.clock() - t0,
                self._pin() and e.obj is not None,
                self.device == self.host,
            )  # fmt: skip
        )
        e.on_device = False

    def summary(self) -> dict[str, Any]:
        """Counts and totals: swaps, transfers, GB moved, seconds, mean GB/s."""
        gb = sum(m.nbytes for m in self.moves) / 1e9
        secs = sum(m.seconds for m in self.moves)
        return {
            "swaps": self.swaps,
            "transfers": len(self.moves),
            "loads": sum(m.kind == "load" for m in self.moves),
            "offloads": sum(m.kind == "offload" for m in self.moves),
            "reloads": sum(m.kind == "reload" for m in self.moves),
            "gb_moved": gb,
            "seconds": secs,
            "gb_per_s": gb / secs if secs > 0 else None,
            "same_device": bool(self.moves) and all(m.same_device for m in self.moves),
        }


def _free_cuda() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def model_fingerprint(path: str | Path) -> str:
    """Digest identifying a model folder: every config/tokenizer file's bytes and every
    safetensors file's header (names, dtypes, shapes, offsets) and size, without reading weights."""
    from gpuflows.digest import bytes_digest, value_digest

    root = Path(path)
    parts = {}
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = str(f.relative_to(root))
        if f.suffix == ".safetensors":
            with open(f, "rb") as fh:
                (size,) = struct.unpack("<Q", fh.read(8))
                parts[rel] = [bytes_digest(fh.read(size)), f.stat().st_size]
        elif f.suffix in (".json", ".txt", ".model", ".jinja"):
            parts[rel] = bytes_digest(f.read_bytes())
    if not parts:
        raise FileNotFoundError(f"{root} holds no model files")
    return value_digest(parts)
