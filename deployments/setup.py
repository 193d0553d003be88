"""Set up gpuflows on the Prefect server at ``PREFECT_API_URL``; safe to run again.

1. this host's share of the process work pool (``gpu-pool``): the host registers its GPU count
   (1 on a CPU host) in a Prefect Variable ``<pool>-host-<host>``, and the pool's concurrency limit
   is set to the sum over every registered host (several GPU hosts share one server and pool);
2. one VRAM limit per GPU (global concurrency limits, slots are GiB) planned by a ``GpuPool``
   block (``--gpu-pool-block NAME``) or its defaults, through ``tasks.vram.ensure_limits``; a block
   with ``host`` names them per host (``<host>-vram-gpu0``);
3. the blocks (``prefect block register -m blocks``);
4. every deployment of ``prefect.yaml`` (``prefect --no-prompt deploy --all``);
5. unless ``--no-workers``: one process worker per visible GPU, ``--limit 1`` and
   ``CUDA_VISIBLE_DEVICES=<index>``, detached, logging to ``.prefect/workers/<name>.log``
   (one CPU worker with ``CUDA_VISIBLE_DEVICES=""`` on a host without a GPU). A worker whose pid
   file names a live worker process is left alone. ``$GPUFLOWS_WORKER_DIR`` moves the logs and
   pid files elsewhere (tests: a temporary folder, so they never meet a developer's workers).
   Workers inherit this command's environment (``GPUFLOWS_RESULTS_DIR``,
   ``PREFECT_RESULTS_LOCAL_STORAGE_PATH``, ...), and so do their flow runs.

    python -m deployments.setup [--pool gpu-pool] [--host NAME] [--no-workers] [--workers-only]
                                [--gpu-pool-block NAME] [--dry-run] [--leave]

``--workers-only`` (an extra GPU host) does 1, 2 and 5 only: blocks and deployments are server
state another host already set up. ``--leave`` removes this host: its registration, its share of
the pool limit and its per-host VRAM limits. ``--dry-run`` prints the plan and changes nothing.
Needs a running server: ``prefect server start`` (or ``python -m deployments.local_server``) and
``export PREFECT_API_URL=http://127.0.0.1:4200/api``.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deployments.pool_hosts import (
    SetupError,
    check_pool_type,
    delete_limits,
    host_entry,
    host_slug,
    host_variable,
    register_host,
    shared_limit_hosts,
    sync_pool_limit,
    unregister_host,
)
from gpuflows.core.hardware.devices import Discovery, parse_visible_devices
from gpuflows.core.hardware.pool_plan import gpu_id
from gpuflows.core.memory.budget import BudgetError

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_POOL = "gpu-pool"
WORKER_DIR = Path(".prefect") / "workers"  # relative to the repository root
WORKER_DIR_ENV = "GPUFLOWS_WORKER_DIR"  # overrides WORKER_DIR (absolute, or relative to the root)
ROOT_ENV = "GPUFLOWS_ROOT"  # read by the pull step of prefect.yaml


@dataclass(frozen=True)
class WorkerSpec:
    """One process worker to start: its name, extra environment and command line."""

    name: str
    pool: str
    env: dict[str, str]
    command: list[str]
    gpu: int | None = None  # NVML index; None for the CPU worker

    def log_path(self, root: Path = REPO_ROOT) -> Path:
        return worker_dir(root) / f"{self.name}.log"

    def pid_path(self, root: Path = REPO_ROOT) -> Path:
        return worker_dir(root) / f"{self.name}.pid"


def worker_dir(root: Path = REPO_ROOT) -> Path:
    """Folder of the workers' logs and pid files: ``$GPUFLOWS_WORKER_DIR`` or ``.prefect/workers``."""
    return root / os.environ.get(WORKER_DIR_ENV, str(WORKER_DIR))


def _cuda_index(discovery: Discovery, gpu: Any) -> str:
    """What CUDA_VISIBLE_DEVICES must say for a worker to see exactly this GPU.

    The NVML index when discovery had one; otherwise the entry of this process's own
    CUDA_VISIBLE_DEVICES at the GPU's logical index (torch discovery), else the logical index.
    """
    if gpu.nvml_index is not None:
        return str(gpu.nvml_index)
    visible = parse_visible_devices(discovery.cuda_visible_devices)
    if visible and gpu.index < len(visible):
        return visible[gpu.index]
    return str(gpu.index)


def plan_workers(
    discovery: Discovery,
    pool: str = DEFAULT_POOL,
    host: str | None = None,
    *,
    gpu_indices: list[int] | None = None,
    python: str = sys.executable,
    root: Path = REPO_ROOT,
    env: dict[str, str] | None = None,
) -> list[WorkerSpec]:
    """The workers for a host: one per visible GPU, or one CPU worker when there is none.

    Pure: no Prefect, no processes. Each GPU worker takes one flow run at a time (``--limit 1``)
    and sees only its GPU (``CUDA_VISIBLE_DEVICES=<nvml index>``); the CPU worker sees none.

    Args:
        discovery: what :func:`gpuflows.core.hardware.devices.discover` found.
        pool: work pool the workers poll.
        host: host name in the worker names (default: this host's short name).
        gpu_indices: only these GPUs (a ``GpuPool`` block's ``gpu_indices``); None for all.
        python: interpreter that runs ``prefect worker start``.
        root: repository root, exported as ``GPUFLOWS_ROOT`` for the pull step.
        env: more environment for every worker (``GPUFLOWS_VRAM_HOST`` on a per-host pool).

    Example:
        >>> [w.name for w in plan_workers(discover(), host="node1")]
        ['gpu-node1-0', 'gpu-node1-1']
    """
    h = host_slug(host or socket.gethostname())
    base = {**(env or {}), ROOT_ENV: str(root)}
    gpus = [g for g in discovery.gpus if gpu_indices is None or gpu_id(g) in gpu_indices]
    rows: list[tuple[str, str, int | None]] = [
        (f"gpu-{h}-{gpu_id(g)}", _cuda_index(discovery, g), gpu_id(g)) for g in gpus
    ] or [(f"cpu-{h}", "", None)]
    return [
        WorkerSpec(
            name=name,
            pool=pool,
            env={**base, "CUDA_VISIBLE_DEVICES": cvd},
            command=[python, "-m", "prefect", "worker", "start"]
            + ["--pool", pool, "--type", "process", "--name", name, "--limit", "1"],
            gpu=idx,
        )
        for name, cvd, idx in rows
    ]


def pool_concurrency(discovery: Discovery, gpu_indices: list[int] | None = None) -> int:
    """Flow runs the pool may run at once: one per (selected) GPU, 1 on a CPU host."""
    n = len([g for g in discovery.gpus if gpu_indices is None or gpu_id(g) in gpu_indices])
    return max(1, n)


def this_host(block_host: str | None = None, given: str | None = None) -> str:
    """The name this host registers under and names its workers after (a slug).

    ``--host`` when given, else the ``GpuPool`` block's ``host``, else this machine's short name.
    """
    return host_slug(given or block_host or socket.gethostname())


# --- talking to Prefect --------------------------------------------------------------------------


def api_url() -> str:
    """The configured, reachable API URL.

    Raises:
        SetupError: not configured, or nothing answers there.
    """
    from prefect.client.orchestration import get_client
    from prefect.settings import get_current_settings

    url = get_current_settings().api.url
    if not url:
        raise SetupError(
            "PREFECT_API_URL is not set: start a server (`prefect server start`, or "
            "`python -m deployments.local_server`) and "
            "`export PREFECT_API_URL=http://127.0.0.1:4200/api`, then run this again"
        )
    with get_client(sync_client=True) as client:
        exc = client.api_healthcheck()
    if exc is not None:
        raise SetupError(
            f"no Prefect API answers at {url} ({type(exc).__name__}: {exc}): start it with "
            "`prefect server start` (or fix PREFECT_API_URL)"
        )
    return url


def _subprocess_env(url: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PREFECT_API_URL"] = url  # may come from a profile or temporary_settings, not the env
    env.setdefault(ROOT_ENV, str(REPO_ROOT))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return env


def _run(cmd: list[str], url: str, what: str) -> None:
    proc = subprocess.run(
        cmd, cwd=REPO_ROOT, env=_subprocess_env(url), capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-3000:]
        raise SetupError(f"{what} failed (exit {proc.returncode}): {' '.join(cmd)}\n{tail}")


def register_blocks_cmd() -> list[str]:
    return [sys.executable, "-m", "prefect", "block", "register", "-m", "blocks"]


def deploy_cmd(pool: str) -> list[str]:
    """``prefect --no-prompt deploy --all`` (from the repository root, reading prefect.yaml)."""
    cmd = [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all"]
    return cmd if pool == DEFAULT_POOL else [*cmd, "--pool", pool]


# --- workers -------------------------------------------------------------------------------------


def _live_worker(pid_file: Path) -> int | None:
    """The pid in ``pid_file`` if that process is alive and is a Prefect worker."""
    try:
        pid = int(pid_file.read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.exists():  # a recycled pid belongs to some other program
        args = cmdline.read_bytes().split(b"\0")
        if b"worker" not in args or b"prefect" not in args:
            return None
    return pid


def start_worker(spec: WorkerSpec, url: str, root: Path = REPO_ROOT) -> tuple[int, bool]:
    """Start ``spec`` detached unless its pid file names a live worker; (pid, started)."""
    pid_file = spec.pid_path(root)
    if (pid := _live_worker(pid_file)) is not None:
        return pid, False
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    env = {**_subprocess_env(url), **spec.env}
    with open(spec.log_path(root), "ab") as log:
        proc = subprocess.Popen(
            spec.command,
            cwd=root,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # survives this command; stop it with its process group
        )
    pid_file.write_text(f"{proc.pid}\n")
    return proc.pid, True


def stop_hint(specs: list[WorkerSpec], root: Path = REPO_ROOT) -> str:
    pids = " ".join(f"$(cat {os.path.relpath(s.pid_path(root), root)})" for s in specs)
    return (
        f"stop the workers: for p in {pids}; do kill -TERM -- -$p; done "
        "(a worker may take ~40 s on SIGTERM and kills running flow runs; SIGKILL with -KILL)"
    )


# --- the command ---------------------------------------------------------------------------------


def _limits_plan(block: str | None, discovery: Discovery) -> tuple[dict[str, int], Any]:
    from blocks import GpuPool

    pool_block = GpuPool.load(block) if block else GpuPool()
    return pool_block.plan_limits(discovery), pool_block


def _worker_env(pool_block: Any) -> dict[str, str]:
    """What a host's workers must know to ask for its VRAM limits (per-host names)."""
    from tasks.vram import DEFAULT_PREFIX, VRAM_HOST_ENV, VRAM_PREFIX_ENV

    env = {}
    if pool_block.host:
        env[VRAM_HOST_ENV] = pool_block.host
    if pool_block.limit_prefix != DEFAULT_PREFIX:
        env[VRAM_PREFIX_ENV] = pool_block.limit_prefix
    return env


def _leave(pool: str, host: str, dry_run: bool, workers: list[WorkerSpec]) -> int:
    """Remove ``host`` from ``pool``: registration, share of the limit, per-host VRAM limits."""
    if dry_run:
        print("dry run: nothing is changed")
        print(
            f"  leave:   unregister {host!r} ({host_variable(pool, host)}); pool limit = the rest"
        )
        return 0
    entry = unregister_host(pool, host)
    if entry is None:
        print(f"host {host!r} is not registered in pool {pool!r}: nothing to remove")
    else:
        print(f"host {host!r} left pool {pool!r} (it gave {entry.get('slots', 0)} slots)")
        names = list(entry.get("vram_limits", []))
        if names and entry.get("vram_limits_per_host"):
            print(f"VRAM limits deleted: {delete_limits(names) or 'none were left'}")
        elif names:
            print(f"VRAM limits kept: {names} (not named per host: other hosts may use them)")
    total, hosts, _ = sync_pool_limit(pool)
    rest = ", ".join(f"{h}={e.get('slots', 0)}" for h, e in sorted(hosts.items())) or "none"
    print(f"pool {pool!r}: hosts {rest}; concurrency limit {total}")
    if total == 0:
        print("  no host left: no flow run of this pool starts until a host runs setup")
    if any(_live_worker(w.pid_path()) for w in workers):
        print(stop_hint(workers))
    return 0


def main(argv: list[str] | None = None, *, discovery: Discovery | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m deployments.setup", description=__doc__.splitlines()[0]
    )
    ap.add_argument("--pool", default=DEFAULT_POOL, help="work pool name (default gpu-pool)")
    ap.add_argument(
        "--host",
        metavar="NAME",
        help="this host's name in the pool (default: the GpuPool block's host, else hostname)",
    )
    ap.add_argument("--no-workers", action="store_true", help="do not start workers")
    ap.add_argument(
        "--workers-only",
        action="store_true",
        help="an extra host: register its GPUs and start its workers; skip blocks, "
        "deployments and the automation (another host set them up)",
    )
    ap.add_argument(
        "--leave",
        action="store_true",
        help="remove this host from the pool (its share of the limit, its per-host VRAM limits)",
    )
    ap.add_argument("--gpu-pool-block", metavar="NAME", help="saved GpuPool block to plan from")
    ap.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    a = ap.parse_args(argv)

    from gpuflows.core.hardware.devices import discover

    disc = discovery if discovery is not None else discover()
    gpus = ", ".join(f"{gpu_id(g)}:{g.name}" for g in disc.gpus) or f"none ({disc.reason})"
    print(f"GPUs ({disc.method}): {gpus}")
    try:
        url = None
        if not a.dry_run or a.gpu_pool_block:  # a dry run needs the API only to read the block
            url = api_url()
            print(f"Prefect API: {url}")
        limits, pool_block = _limits_plan(a.gpu_pool_block, disc)
        if a.gpu_pool_block and pool_block.work_pool_name != a.pool:
            print(
                f"warning: block {a.gpu_pool_block!r} names pool {pool_block.work_pool_name!r}; "
                f"using --pool {a.pool!r}"
            )
        host = this_host(pool_block.host, a.host)
        selected = pool_block.gpu_indices
        slots = pool_concurrency(disc, selected)
        workers = plan_workers(
            disc, a.pool, host, gpu_indices=selected, env=_worker_env(pool_block)
        )
        if a.leave:
            return _leave(a.pool, host, a.dry_run, workers)
        entry = host_entry(
            a.pool,
            host,
            slots,
            [w.gpu for w in workers if w.gpu is not None],
            list(limits),
            per_host=pool_block.host is not None,
        )

        if a.dry_run:
            print("dry run: nothing is changed")
            print(
                f"  pool:    {a.pool!r} (process); host {host!r} registers {slots} slot(s) in "
                f"variable {host_variable(a.pool, host)!r}; limit = sum over registered hosts"
            )
            shown = f"{limits} (+ a one-slot turnstile each)" if limits else "none (no GPU)"
            print(f"  limits:  {shown}")
            if not a.workers_only:
                print(f"  blocks:  python {' '.join(register_blocks_cmd()[1:])}")
                print(f"  deploy:  prefect --no-prompt deploy --all  (cwd {REPO_ROOT})")
                print("  automation: gpuflows-crash-stale-flow-runs (stale heartbeat -> Crashed)")
            for w in [] if a.no_workers else workers:
                env = " ".join(f"{k}={v!r}" for k, v in w.env.items())
                print(f"  worker:  {env} python {' '.join(w.command[1:])}  > {w.log_path()}")
            return 0

        assert url is not None
        check_pool_type(a.pool)
        register_host(entry)
        total, hosts, what = sync_pool_limit(a.pool)
        shares = ", ".join(f"{h}={e.get('slots', 0)}" for h, e in sorted(hosts.items()))
        print(f"{what} (hosts: {shares})")
        if limits:
            from tasks.vram import ensure_limits

            written = ensure_limits(limits)
            print(f"VRAM limits: {written}")
        else:
            print("VRAM limits: none (no GPU on this host)")
        for name, users in shared_limit_hosts(hosts).items():
            print(
                f"warning: VRAM limit {name!r} is shared by hosts {', '.join(users)}: their GPUs "
                "of that index share one budget (and the last host's card size wins); give "
                "each host a GpuPool block with host=<name> (--gpu-pool-block NAME)"
            )
        if a.workers_only:
            print("blocks, deployments, automation: skipped (--workers-only)")
        else:
            _run(register_blocks_cmd(), url, "block registration")
            print("blocks registered")
            _run(deploy_cmd(a.pool), url, "prefect deploy --all")
            print(f"deployments of {REPO_ROOT / 'prefect.yaml'} applied")
            from deployments.automations import CRASH_AUTOMATION, ensure_crash_automation

            ensure_crash_automation()
            print(f"automation {CRASH_AUTOMATION}: present (stale heartbeat -> Crashed)")
        if a.no_workers:
            print("workers: not started (--no-workers)")
            return 0
        for w in workers:
            pid, started = start_worker(w, url)
            state = "started" if started else "already running"
            print(f"worker {w.name}: {state}, pid {pid}, log {w.log_path()}")
        print(stop_hint(workers))
        return 0
    except (SetupError, BudgetError) as exc:  # BudgetError: the block names a GPU not found
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
