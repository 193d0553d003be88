"""The work pool and the hosts that share it: one Prefect Variable per host, the pool's limit
their sum.

Several GPU hosts run workers against one server and pool. Each host registers what it brings
(:func:`register_host`: its GPU count as slots, its GPUs, the VRAM limits it created) in a
Variable ``<pool>-host-<host>`` tagged :data:`HOST_TAG`; the pool's concurrency limit is the sum
over registered hosts (:func:`sync_pool_limit`), so no host overwrites another's share.
Used by ``python -m deployments.setup``; needs ``PREFECT_API_URL``.
"""

from __future__ import annotations

from typing import Any


class SetupError(RuntimeError):
    """A precondition of the setup is not met; the message says what to do."""


def host_slug(host: str) -> str:
    """A host's short name as lowercase letters, digits and dashes (`gpu-node-1.lab` -> `gpu-node-1`)."""
    slug = "".join(c if c.isalnum() or c == "-" else "-" for c in host.split(".")[0].lower())
    return slug.strip("-") or "host"


def check_pool_type(name: str) -> None:
    """Fail before anything is written when ``name`` exists as a pool of another type."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            existing = client.read_work_pool(name)
        except ObjectNotFound:
            return
    if existing.type != "process":
        raise SetupError(
            f"work pool {name!r} exists with type {existing.type!r}, not 'process': "
            f"delete it (`prefect work-pool delete {name}`) or pick another --pool"
        )


def ensure_work_pool(name: str, concurrency_limit: int) -> str:
    """Create the process work pool if missing; set its concurrency limit. Returns what happened."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate, WorkPoolUpdate
    from prefect.exceptions import ObjectAlreadyExists
    from prefect.workers.process import ProcessWorker

    with get_client(sync_client=True) as client:
        try:
            client.create_work_pool(
                WorkPoolCreate(
                    name=name,
                    type="process",
                    base_job_template=ProcessWorker.get_default_base_job_template(),
                    concurrency_limit=concurrency_limit,
                )
            )
            return f"created process pool {name!r} (concurrency limit {concurrency_limit})"
        except ObjectAlreadyExists:
            pass
        existing = client.read_work_pool(name)
        if existing.type != "process":
            raise SetupError(
                f"work pool {name!r} exists with type {existing.type!r}, not 'process': "
                f"delete it (`prefect work-pool delete {name}`) or pick another --pool"
            )
        client.update_work_pool(name, WorkPoolUpdate(concurrency_limit=concurrency_limit))
        return f"pool {name!r} exists; concurrency limit set to {concurrency_limit}"


HOST_TAG = "gpuflows-pool-host"  # tag of every host registration variable


def _var_slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in text.lower()).strip("-") or "x"


def host_variable(pool: str, host: str) -> str:
    """Name of the Variable that registers ``host`` in ``pool``: ``gpu-pool-host-node1``."""
    return f"{_var_slug(pool)}-host-{host_slug(host)}"


def host_entry(
    pool: str, host: str, slots: int, gpus: list[int], vram_limits: list[str], per_host: bool
) -> dict[str, Any]:
    """The value a host registers: its share of the pool limit and the VRAM limits it created."""
    return {
        "pool": pool,
        "host": host_slug(host),
        "slots": int(slots),
        "gpus": sorted(gpus),
        "vram_limits": sorted(vram_limits),
        "vram_limits_per_host": per_host,
    }


def read_hosts(pool: str) -> dict[str, dict[str, Any]]:
    """Every host registered in ``pool``: host -> its entry (see :func:`host_entry`)."""
    from prefect.client.orchestration import get_client

    hosts: dict[str, dict[str, Any]] = {}
    offset, page = 0, 200
    with get_client(sync_client=True) as client:
        while True:
            r = client.request(
                "POST",
                "/variables/filter",
                json={
                    "variables": {"tags": {"all_": [HOST_TAG]}},
                    "limit": page,
                    "offset": offset,
                },
            )
            r.raise_for_status()
            rows = r.json()
            for row in rows:
                value = row.get("value")
                if isinstance(value, dict) and value.get("pool") == pool and "host" in value:
                    hosts[str(value["host"])] = value
            if len(rows) < page:
                return hosts
            offset += page


def register_host(entry: dict[str, Any]) -> None:
    """Write (or overwrite) a host's registration; idempotent."""
    from prefect.variables import Variable

    Variable.set(
        host_variable(entry["pool"], entry["host"]),
        entry,
        tags=[HOST_TAG, f"pool-{_var_slug(entry['pool'])}"],
        overwrite=True,
    )


def unregister_host(pool: str, host: str) -> dict[str, Any] | None:
    """Remove a host's registration; returns the entry it had, None if it had none."""
    from prefect.variables import Variable

    name = host_variable(pool, host)
    entry = Variable.get(name)
    if entry is None:
        return None
    Variable.unset(name)
    return entry if isinstance(entry, dict) else {}


def pool_total(hosts: dict[str, dict[str, Any]]) -> int:
    """The pool's concurrency limit: the sum of every registered host's slots."""
    return sum(int(e.get("slots", 0)) for e in hosts.values())


def sync_pool_limit(pool: str) -> tuple[int, dict[str, dict[str, Any]], str]:
    """Set the pool's concurrency limit to the sum over its registered hosts.

    Read, set, read again: a host that registered meanwhile (two hosts running setup at once)
    is counted by a second update. Returns (limit, hosts, what happened).
    """
    hosts = read_hosts(pool)
    total = pool_total(hosts)
    what = ensure_work_pool(pool, total)
    for _ in range(3):
        again = read_hosts(pool)
        if pool_total(again) == total:
            break
        hosts, total = again, pool_total(again)
        what = ensure_work_pool(pool, total)
    return total, hosts, what


def shared_limit_hosts(hosts: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    """VRAM limit names that several registered hosts use (not named per host) -> those hosts."""
    users: dict[str, list[str]] = {}
    for host, e in sorted(hosts.items()):
        if not e.get("vram_limits_per_host"):
            for name in e.get("vram_limits", []):
                users.setdefault(name, []).append(host)
    return {n: hs for n, hs in users.items() if len(hs) > 1}


def delete_limits(names: list[str]) -> list[str]:
    """Delete global concurrency limits and their turnstiles; returns those that existed."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    from tasks.vram import TURNSTILE_SUFFIX

    gone = []
    with get_client(sync_client=True) as client:
        for name in names:
            for n in (name, f"{name}{TURNSTILE_SUFFIX}"):
                try:
                    client.delete_global_concurrency_limit_by_name(n)
                    gone.append(n)
                except ObjectNotFound:
                    pass
    return gone
