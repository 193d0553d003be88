"""Model residency: keep on the GPU only the models the VRAM budget allows, and count every move.

Seed 004 runs a diffusion edit model and a vision-language reward model that do not fit one GPU
together. A :class:`ResidencyManager` owns their placement: each model registers with its VRAM
need (:mod:`gpuflows.core.memory.model_size`: from an empty-weights build, or from the safetensors
headers), :meth:`ResidencyManager.acquire` makes one resident, evicting the least
recently used idle models only as far as the capacity requires, and every transfer is a
:class:`MoveRecord`.

Units: bytes everywhere (GiB = 2**30 bytes only in messages), seconds from the manager's clock,
GB/s with GB = 1e9 bytes.

Conventions (:mod:`gpuflows.pipelines.two_stage_eval.move_plan` counts schedules the same way):
    * A *transfer* is one record: a load (host -> device) or an offload (device -> host).
    * A *swap* is a load that follows at least one offload since the previous load: models off,
      one model on, counted once (the seed's "切换"). The first placement on an empty device is a
      load, not a swap; an offload with no load after it is not a swap either.
    * Pinning is a step of its own, not part of a transfer. With ``pin_host`` on (``"auto"``: on
      for CUDA devices; never without a CUDA device and runtime) every host copy is page-locked
      when the model is registered (or, for tensors that were not on the host then, after their
      first offload), and that copy is recorded in ``ResidencyManager.pins`` (kind "pin"), not in
      ``moves``: load and offload seconds and GB/s are the bus copies only, and pins never count as
      transfers. Each model keeps its pinned host buffers while it is resident; an offload copies
      into them (no new pinning), so host memory holds one page-locked copy per pinned model.
    * ``MoveRecord.pinned`` says what the copy actually touched (checked on the tensors, whoever
      pinned them): a load read only page-locked host memory, an offload wrote only into it.
    * A model spread over several devices (``hf_device_map`` naming more than one device) is
      dropped and *reloaded* through its ``loader`` instead of moved: ``.to()`` would collapse it.
    * Without a GPU (``device == host``, e.g. "cpu") the residency rules and counts apply exactly;
      records say ``same_device=True``: no bytes crossed a bus, the seconds are bookkeeping.

Torch and accelerate are imported lazily; no Prefect.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from gpuflows.core.memory.budget import GIB, VramEstimate
from gpuflows.core.memory.model_size import modules_of, named_tensors_of, nbytes_of, tensors_of


class ResidencyError(ValueError):
    """A model that can never fit, a placement that would evict a model in use, a missing loader."""


def _split(obj: Any) -> bool:
    """True when the object's ``hf_device_map`` (any module's) names more than one device."""
    devs: set[str] = set()
    for m in modules_of(obj):
        devs |= {str(v) for v in (getattr(m, "hf_device_map", None) or {}).values()}
    return len(devs) > 1


def _movable(obj: Any) -> Any:
    """What ``.to(device)`` is called on: the object, or an adapter's pipeline / model."""
    if hasattr(obj, "to"):
        return obj
    for attr in ("pipeline", "model"):
        inner = getattr(obj, attr, None)
        if inner is not None and hasattr(inner, "to"):
            return inner
    raise TypeError(f"{type(obj).__name__} has no .to(): register a module, pipeline or adapter")


# -- moves ---------------------------------------------------------------------------------------


@dataclass
class MoveRecord:
    """One transfer of one model (or one pin step: kind "pin", in ``ResidencyManager.pins``).

    ``kind``: "move" (``.to()``), "reload" (rebuilt by its loader, for a split model), "drop"
    (a split model's references released; nothing copied) or "pin" (host copy page-locked: kept
    in ``ResidencyManager.pins``, never in ``moves``). ``direction``: "load" (onto the device),
    "offload" (off it) or "pin" (host -> page-locked host). ``nbytes``: the model's parameter +
    buffer bytes (for a pin: the bytes page-locked);
    ``seconds``: clock time, after a CUDA synchronise; ``gb_per_s``: nbytes / 1e9 / seconds
    (None when seconds is 0). ``pinned``: the host copy is page-locked (read from one on a load,
    written into one on an offload). ``same_device``: device == host, a bookkeeping move.
    """

    model: str
    src: str
    dst: str
    kind: Literal["move", "reload", "drop", "pin"]
    direction: Literal["load", "offload", "pin"]
    nbytes: int
    seconds: float
    pinned: bool = False
    same_device: bool = False
    gb_per_s: float | None = field(init=False)

    def __post_init__(self) -> None:
        self.gb_per_s = self.nbytes / 1e9 / self.seconds if self.seconds > 0 else None


@dataclass
class _Entry:
    obj: Any
    need: int
    loader: Callable[[], Any] | None
    on_device: bool = False
    in_use: int = 0
    last_used: int = 0
    host_bufs: dict[str, Any] = field(default_factory=dict)  # page-locked host copy, by tensor key


class ResidencyManager:
    """Places registered models on ``device`` so their needs sum to at most ``capacity_bytes``.

    Args:
        device: where models run ("cuda:0", or "cpu" for bookkeeping without a GPU).
        capacity_bytes: the VRAM budget in bytes.
        host: where evicted models live ("cpu").
        pin_host: page-lock host copies (at registration, each recorded in ``pins``); "auto" =
            when ``device`` is CUDA. Ignored (never pins) on a non-CUDA device or without CUDA:
            pinning needs a CUDA runtime.
        clock: seconds-valued clock for the move and pin timings.
    """

    def __init__(
        self,
        device: str,
        capacity_bytes: int,
        *,
        host: str = "cpu",
        pin_host: bool | Literal["auto"] = "auto",
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        if capacity_bytes <= 0:
            raise ResidencyError(
                f"capacity_bytes={capacity_bytes}: give the VRAM budget in bytes > 0"
            )
        self.device, self.capacity_bytes, self.host = str(device), int(capacity_bytes), str(host)
        self.pin_host, self.clock = pin_host, clock
        self.moves: list[MoveRecord] = []  # transfers only: loads and offloads
        self.pins: list[MoveRecord] = []  # page-locking steps (kind "pin"), not transfers
        self.pin_failed: str | None = None  # why pinning was turned off (host could not lock)
        self.swaps = 0
        self._models: dict[str, _Entry] = {}
        self._tick = 0
        self._offloaded = False  # an offload since the last load: the next load is a swap
        self._lock = threading.RLock()

    def register(
        self,
        name: str,
        obj: Any,
        need: VramEstimate | int,
        *,
        loader: Callable[[], Any] | None = None,
    ) -> None:
        """Add a model, on the host: an ``nn.Module``, a diffusers pipeline, or an adapter holding
        one as ``.pipeline`` / ``.model``; ``need`` in bytes. A split model (``hf_device_map`` over
        several devices) is taken as already placed and needs ``loader`` to come back after an
        eviction. Fails at once if it can never fit. With pinning on, its host tensors are
        page-locked now, recorded in :attr:`pins`."""
        with self._lock:
            if name in self._models:
                raise ResidencyError(f"model {name!r} is already registered: use another name")
            need_b = self.require_fits(name, need)
            split = _split(obj)
            if split and loader is None:
                raise ResidencyError(
                    f"model {name!r} is spread over several devices (hf_device_map): it is "
                    "reloaded, not moved, and needs a loader: register it with loader=..."
                )
            held = sum(x.need for x in self._models.values() if x.on_device)
            if split and held + need_b > self.capacity_bytes:
                raise ResidencyError(
                    f"model {name!r} is already placed by its hf_device_map but {self.resident()} "
                    "hold the budget: evict them before registering it"
                )
            e = self._models[name] = _Entry(obj, need_b, loader, on_device=split)
            if not split and self._pin():
                self._pin_host(name, e)

    def require_fits(self, name: str, need: VramEstimate | int) -> int:
        """The need in bytes; ResidencyError if it exceeds the budget (call before loading)."""
        need_b = need.nbytes if isinstance(need, VramEstimate) else int(need)
        if need_b > self.capacity_bytes:
            raise ResidencyError(
                f"model {name!r} needs {need_b / GIB:.2f} GiB but {self.device} has a budget of "
                f"{self.capacity_bytes / GIB:.2f} GiB: use a smaller dtype (float16/bfloat16), a "
                "larger budget (vram_budget_gib) or a GPU with more memory"
            )
        return need_b

    def get(self, name: str) -> Any:
        """The model object (a split model's current one, None while dropped)."""
        return self._entry(name).obj

    def resident(self) -> list[str]:
        """Names of the models on the device now."""
        return [n for n, e in self._models.items() if e.on_device]

    def _entry(self, name: str) -> _Entry:
        if name not in self._models:
            raise KeyError(f"model {name!r} is not registered (known: {sorted(self._models)})")
        return self._models[name]

    def acquire(self, name: str) -> Any:
        """Make ``name`` resident, evicting least recently used idle models only as far as the
        capacity requires; returns the model object. Raises before any move if it cannot."""
        with self._lock:
            e = self._entry(name)
            self._tick += 1
            e.last_used = self._tick
            if e.on_device:
                return e.obj
            self.require_fits(name, e.need)
            on = sorted(
                (x for x in self._models.values() if x.on_device), key=lambda x: x.last_used
            )
            used = sum(x.need for x in on)
            evict: list[str] = []
            for v in on:
                if used + e.need <= self.capacity_bytes:
                    break
                if not v.in_use:
                    evict.append(self._name(v))
                    used -= v.need
            if used + e.need > self.capacity_bytes:
                busy = [n for n, x in self._models.items() if x.on_device and x.in_use]
                raise ResidencyError(
                    f"cannot place {name!r} ({e.need / GIB:.2f} GiB): models in use {busy} hold "
                    f"the rest of the {self.capacity_bytes / GIB:.2f} GiB budget; release them first"
                )
            for v in evict:
                self._offload(v, self._models[v])
            self._load(name, e)
            return e.obj

    ensure_resident = acquire

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
        """Move ``name`` to the host now (drop it, if split); no-op if it is not resident."""
        with self._lock:
            e = self._entry(name)
            if e.in_use:
                raise ResidencyError(f"model {name!r} is in use: leave its using() block first")
            if e.on_device:
                self._offload(name, e)

    release = evict

    def _name(self, e: _Entry) -> str:
        return next(n for n, x in self._models.items() if x is e)

    def _sync(self) -> None:
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize(self.device)

    def _pin(self) -> bool:
        return self.pin_host is not False and _pinning_available(self.device)

    def _record(
        self, name: str, kind: Any, direction: Any, nbytes: int, t0: float, pin: bool
    ) -> MoveRecord:
        """Make a record; the clock stops after a CUDA synchronise."""
        self._sync()
        seconds = self.clock() - t0
        if direction == "pin":
            return MoveRecord(name, self.host, self.host, kind, direction, nbytes, seconds, pin)
        src, dst = (self.host, self.device) if direction == "load" else (self.device, self.host)
        rec = MoveRecord(
            name, src, dst, kind, direction, nbytes, seconds, pin, self.device == self.host
        )
        self.moves.append(rec)
        return rec

    def _pin_host(self, name: str, e: _Entry) -> None:
        """Page-lock every host tensor of ``e`` not yet in its pinned buffer; one "pin" record.

        Tensors off the host (on a device) are left alone: their offload pins them afterwards."""
        todo = [
            (k, t)
            for k, t in named_tensors_of(e.obj).items()
            if t.device.type == "cpu"
            and (k not in e.host_bufs or e.host_bufs[k].data_ptr() != t.data_ptr())
        ]
        if not todo:
            return
        self._sync()
        t0 = self.clock()
        done = []
        for k, t in todo:
            try:
                buf = _pin_copy(t.data)
            except RuntimeError as exc:  # page-locked memory exhausted (ulimit -l, host RAM)
                # pageable copies still move, only slower: go on without pinning, say why
                self.pin_host, self.pin_failed = False, f"{type(exc).__name__}: {exc}"[:300]
                break
            e.host_bufs[k] = buf
            t.data = buf
            done.append(t)
        if not done:
            return
        nb = sum(t.numel() * t.element_size() for t in done)
        self.pins.append(self._record(name, "pin", "pin", nb, t0, True))

    def _load(self, name: str, e: _Entry) -> None:
        if e.obj is not None and self._pin():
            self._pin_host(name, e)  # first use of tensors not pinned yet; a step of its own
        self._sync()
        if e.obj is None:  # dropped split model: rebuilt by its loader on its devices
            t0 = self.clock()
            e.obj, kind, pinned = e.loader(), "reload", False  # type: ignore[misc]
        else:
            kind, pinned = "move", self._host_pinned(e.obj)
            t0 = self.clock()
            _movable(e.obj).to(self.device)
        self._record(name, kind, "load", nbytes_of(e.obj), t0, pinned)
        e.on_device = True
        if self._offloaded:
            self.swaps += 1
            self._offloaded = False

    def _host_pinned(self, obj: Any) -> bool:
        """True when every host tensor of ``obj`` is page-locked (and there is one)."""
        if not _pinning_available(self.device):
            return False
        host = [t for t in tensors_of(obj) if t.device.type == "cpu"]
        return bool(host) and all(_is_pinned(t) for t in host)

    def _offload(self, name: str, e: _Entry) -> None:
        nb = nbytes_of(e.obj)
        pin = self._pin()
        stale = False
        self._sync()
        t0 = self.clock()
        if _split(e.obj):
            if e.loader is None:
                raise ResidencyError(f"model {name!r} is split over devices and has no loader")
            e.obj, kind, pinned = None, "drop", False
        else:
            kind = "move"
            if pin:  # copy into the pinned host buffers kept since the pin step
                for k, t in named_tensors_of(e.obj).items():
                    buf = e.host_bufs.get(k)
                    if buf is None or buf.shape != t.shape or buf.dtype != t.dtype:
                        stale = True  # new or reshaped tensor: .to() below, pinned afterwards
                    elif buf.data_ptr() != t.data_ptr():
                        buf.copy_(t.data, non_blocking=True)
                        t.data = buf
            _movable(e.obj).to(self.host)  # moves whatever is still on the device
            pinned = pin and not stale
        self._record(name, kind, "offload", nb, t0, pinned)
        _free_cuda()
        e.on_device = False
        self._offloaded = True
        if stale:
            self._pin_host(name, e)

    def summary(self) -> dict[str, Any]:
        """Swaps; transfers (records) by kind; GB copied (drops excluded), seconds, GB/s overall
        and of loads / offloads ("move" records); pin steps apart (count, GB, seconds)."""
        copied = [m for m in self.moves if m.kind != "drop"]
        gb = sum(m.nbytes for m in copied) / 1e9
        secs = sum(m.seconds for m in copied)
        moved = [m for m in self.moves if m.kind == "move"]
        return {
            "swaps": self.swaps,
            "transfers": len(self.moves),
            "loads": sum(m.direction == "load" for m in self.moves),
            "offloads": sum(m.direction == "offload" for m in self.moves),
            "reloads": sum(m.kind == "reload" for m in self.moves),
            "drops": sum(m.kind == "drop" for m in self.moves),
            "gb_moved": gb,
            "seconds": secs,
            "gb_per_s": gb / secs if secs > 0 else None,
            "load_gb_per_s": gb_per_s(m for m in moved if m.direction == "load"),
            "offload_gb_per_s": gb_per_s(m for m in moved if m.direction == "offload"),
            "pinned": sum(m.pinned for m in self.moves),
            "pins": len(self.pins),
            "gb_pinned": sum(m.nbytes for m in self.pins) / 1e9,
            "pin_seconds": sum(m.seconds for m in self.pins),
            "pin_failed": self.pin_failed,
            "same_device": bool(self.moves) and all(m.same_device for m in self.moves),
        }


def gb_per_s(records: Iterable[MoveRecord]) -> float | None:
    """GB/s (GB = 1e9 bytes) over records: their bytes / their seconds; None without seconds."""
    nb = secs = 0.0
    for r in records:
        nb, secs = nb + r.nbytes, secs + r.seconds
    return nb / 1e9 / secs if secs > 0 else None


# -- pinning (module functions, so a CPU test can stand in for CUDA) -----------------------------


def _pinning_available(device: str) -> bool:
    """True when host memory can be page-locked for ``device``: a CUDA device and runtime."""
    if not str(device).startswith("cuda"):
        return False
    import torch

    return torch.cuda.is_available()


def _pin_copy(t: Any) -> Any:
    """A page-locked copy of host tensor ``t``."""
    return t.pin_memory()


def _is_pinned(t: Any) -> bool:
    return bool(t.is_pinned())


def _free_cuda() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
