"""Deployments: worker planning (pure), prefect.yaml checks (no server), setup against the harness.

The whole ``deployments.setup`` (blocks, ``prefect deploy --all`` for real, the automation, a
worker), run twice on one server, is checked in ``tests/server/test_e2e_server.py``
(``test_setup_twice_leaves_one_of_each``): that module's server already runs it twice, so the two
``prefect deploy --all`` this file ran against the harness for the same assertions are not
repeated here.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from deployments.check_yaml import validate_prefect_yaml
from deployments.setup import WorkerSpec, plan_workers, pool_concurrency
from gpuflows.core.hardware.devices import Discovery, GpuInfo

ROOT = Path(__file__).resolve().parents[2]
GIB = 1 << 30


def _two_gpus() -> Discovery:
    return Discovery(
        method="nvml",
        gpus=[
            GpuInfo(
                index=i, nvml_index=i, uuid=f"GPU-{i}", name="H100", total_memory_bytes=80 * GIB
            )
            for i in range(2)
        ],
    )


# --- plan_workers: pure ---------------------------------------------------------------------------


def test_two_gpus_give_two_pinned_workers():
    workers = plan_workers(_two_gpus(), "gpu-pool", "node1.example.org")
    assert [w.name for w in workers] == ["gpu-node1-0", "gpu-node1-1"]
    assert [w.env["CUDA_VISIBLE_DEVICES"] for w in workers] == ["0", "1"]
    assert [w.gpu for w in workers] == [0, 1]
    for w in workers:
        assert isinstance(w, WorkerSpec)
        cmd = w.command
        assert cmd[1:5] == ["-m", "prefect", "worker", "start"]
        assert cmd[cmd.index("--pool") + 1] == "gpu-pool"
        assert cmd[cmd.index("--name") + 1] == w.name
        assert cmd[cmd.index("--limit") + 1] == "1"
        assert w.env["GPUFLOWS_ROOT"] == str(ROOT)  # the pull step's directory
        assert w.log_path().name == f"{w.name}.log" and w.pid_path().name == f"{w.name}.pid"
    assert pool_concurrency(_two_gpus()) == 2


def test_no_gpu_gives_one_cpu_worker_that_sees_no_gpu():
    disc = Discovery(method="none", reason="no driver")
    (w,) = plan_workers(disc, "gpu-pool", "node1")
    assert w.name == "cpu-node1"
    assert w.env["CUDA_VISIBLE_DEVICES"] == ""  # set and empty: hides every GPU
    assert w.gpu is None
    assert pool_concurrency(disc) == 1


def test_workers_follow_physical_indices_and_block_selection():
    # This process sees only GPUs 2 and 3 (CUDA_VISIBLE_DEVICES="2,3"): workers name the physical ones.
    disc = Discovery(
        method="nvml",
        cuda_visible_devices="2,3",
        gpus=[
            GpuInfo(index=0, nvml_index=2, name="A100", total_memory_bytes=40 * GIB),
            GpuInfo(index=1, nvml_index=3, name="A100", total_memory_bytes=40 * GIB),
        ],
    )
    assert [w.env["CUDA_VISIBLE_DEVICES"] for w in plan_workers(disc, host="h")] == ["2", "3"]
    (only,) = plan_workers(disc, host="h", gpu_indices=[3])
    assert only.name == "gpu-h-3" and only.env["CUDA_VISIBLE_DEVICES"] == "3"
    assert pool_concurrency(disc, [3]) == 1
    # torch discovery has no NVML index: map the logical index through CUDA_VISIBLE_DEVICES
    torch_disc = Discovery(
        method="torch",
        cuda_visible_devices="5",
        gpus=[GpuInfo(index=0, name="L4", total_memory_bytes=24 * GIB)],
    )
    assert plan_workers(torch_disc, host="h")[0].env["CUDA_VISIBLE_DEVICES"] == "5"


# --- prefect.yaml ---------------------------------------------------------------------------------


def test_project_prefect_yaml_is_valid():
    assert validate_prefect_yaml(ROOT / "prefect.yaml") == []


def test_broken_prefect_yaml_names_deployment_and_field(tmp_path):
    doc = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    entry = str(ROOT / "flows" / "gpu_baseline.py") + ":gpu_baseline"
    good, cpu = doc["deployments"][:2]
    good["entrypoint"] = entry
    good["parameters"] = {"params": {"devcie": "cpu"}}  # a typo pydantic would ignore silently
    del good["concurrency_limit"]
    good["schedules"] = [{"cron": "61 * * * *"}]
    cpu["entrypoint"] = str(ROOT / "flows" / "no_such_flow.py") + ":gpu_baseline"
    doc["deployments"].append(
        {
            "name": "extra",
            "entrypoint": entry,
            "parameters": {"repeats": 3},  # not a parameter of the flow
            "concurrency_limit": 0,
            "work_pool": {"name": "other-pool"},
        }
    )
    broken = tmp_path / "prefect.yaml"
    broken.write_text(yaml.safe_dump(doc))

    problems = validate_prefect_yaml(broken)
    text = "\n".join(problems)

    def has(dep: str, fld: str, *words: str) -> bool:
        return any(
            p.startswith(f"deployment {dep!r}: {fld}") and all(w in p for w in words)
            for p in problems
        )

    assert has("gpu-baseline", "parameters", "params.devcie"), text
    assert has("gpu-baseline", "concurrency_limit", "missing"), text
    assert has("gpu-baseline", "schedules[0]", "61"), text
    assert has("gpu-baseline-cpu", "entrypoint", "no_such_flow.py"), text
    assert has("extra", "parameters", "repeats"), text
    assert has("extra", "concurrency_limit"), text
    assert has("extra", "work_pool.name", "other-pool"), text
    assert not any(p.startswith("deployment 'gpu-baseline-cpu': parameters") for p in problems)


def test_check_yaml_command_exit_codes(tmp_path):
    bad = tmp_path / "prefect.yaml"
    bad.write_text("deployments: []\n")
    r = subprocess.run(
        [sys.executable, "-m", "deployments.check_yaml", str(bad)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 1, r.stdout + r.stderr
    assert "pull: missing" in r.stdout and "deployments: none defined" in r.stdout


# --- setup against a Prefect API ------------------------------------------------------------------


def test_setup_without_api_url_says_how_to_start_one(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env["PREFECT_HOME"] = str(tmp_path)  # no profile with an API URL
    r = subprocess.run(
        [sys.executable, "-m", "deployments.setup", "--no-workers"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2, r.stdout + r.stderr
    assert "PREFECT_API_URL is not set" in r.stderr and "prefect server start" in r.stderr


def test_crash_automation_is_created_once(prefect_harness):
    from prefect.client.orchestration import get_client

    from deployments.automations import CRASH_AUTOMATION, crash_automation, ensure_crash_automation

    first = ensure_crash_automation()
    assert ensure_crash_automation() == first
    with get_client(sync_client=True) as c:
        assert len(c.read_automations_by_name(CRASH_AUTOMATION)) == 1
    with pytest.raises(ValueError, match="within_s=30"):
        crash_automation(30)


# --- several hosts on one server and pool ----------------------------------------------------------


def test_workers_of_a_per_host_pool_know_their_limit_names():
    workers = plan_workers(_two_gpus(), "gpu-pool", "node1", env={"GPUFLOWS_VRAM_HOST": "node1"})
    assert all(w.env["GPUFLOWS_VRAM_HOST"] == "node1" for w in workers)
    assert all(w.env["GPUFLOWS_ROOT"] == str(ROOT) for w in workers)


def _setup(capsys, *args: str, discovery: Discovery, pool: str = "multi-pool") -> str:
    """An extra host's setup without workers (``--workers-only --no-workers``): no subprocess."""
    from deployments.setup import main

    rc = main(["--pool", pool, "--workers-only", "--no-workers", *args], discovery=discovery)
    out = capsys.readouterr()
    assert rc == 0, f"{args}:\n{out.out}\n{out.err}"
    return out.out


def test_hosts_add_up_to_the_pool_limit_and_leave(prefect_harness, capsys):
    """Two simulated hosts on the harness's server: node-a (2 GPUs, per-host VRAM limits, from a
    GpuPool block) and node-b (no GPU). The pool limit is the sum; re-runs change nothing; each
    host can leave."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound
    from prefect.variables import Variable

    from blocks import GpuPool
    from deployments.pool_hosts import HOST_TAG, host_variable, read_hosts

    GpuPool(work_pool_name="multi-pool", host="node-a", reserve_gib=2).save(
        "multi-node-a", overwrite=True
    )
    cpu_host = Discovery(method="none", reason="test: no GPU")

    def pool_limit() -> int:
        with get_client(sync_client=True) as client:
            return client.read_work_pool("multi-pool").concurrency_limit

    out = _setup(capsys, "--gpu-pool-block", "multi-node-a", discovery=_two_gpus())
    assert "hosts: node-a=2" in out and "skipped (--workers-only)" in out
    assert pool_limit() == 2
    out = _setup(capsys, "--host", "node-b.lab.example", discovery=cpu_host)
    assert "hosts: node-a=2, node-b=1" in out and "warning" not in out
    assert pool_limit() == 3
    for _ in range(2):  # idempotent: same registration, same limit
        _setup(capsys, "--gpu-pool-block", "multi-node-a", discovery=_two_gpus())
        assert pool_limit() == 3
    hosts = read_hosts("multi-pool")
    assert sorted(hosts) == ["node-a", "node-b"]
    assert hosts["node-a"]["vram_limits"] == ["node-a-vram-gpu0", "node-a-vram-gpu1"]
    assert hosts["node-a"]["gpus"] == [0, 1] and hosts["node-b"]["gpus"] == []
    assert Variable.get(host_variable("multi-pool", "node-b"))["slots"] == 1
    assert host_variable("multi-pool", "node-b") == "multi-pool-host-node-b"
    with get_client(sync_client=True) as client:
        gcl = client.read_global_concurrency_limit_by_name("node-a-vram-gpu0")
        assert gcl.limit == 78  # 80 GiB - reserve 2
        tagged = client.request(
            "POST", "/variables/filter", json={"variables": {"tags": {"all_": [HOST_TAG]}}}
        ).json()
    assert {v["name"] for v in tagged} >= {"multi-pool-host-node-a", "multi-pool-host-node-b"}

    out = _setup(capsys, "--host", "node-b", "--leave", discovery=cpu_host)
    assert "left pool 'multi-pool'" in out and "concurrency limit 2" in out
    assert pool_limit() == 2 and sorted(read_hosts("multi-pool")) == ["node-a"]
    out = _setup(capsys, "--gpu-pool-block", "multi-node-a", "--leave", discovery=_two_gpus())
    assert "VRAM limits deleted" in out and "no host left" in out
    assert pool_limit() == 0 and read_hosts("multi-pool") == {}
    with get_client(sync_client=True) as client:
        for name in ("node-a-vram-gpu0", "node-a-vram-gpu1-turnstile"):
            with pytest.raises(ObjectNotFound):
                client.read_global_concurrency_limit_by_name(name)
    out = _setup(capsys, "--host", "node-b", "--leave", discovery=cpu_host)
    assert "not registered" in out


def test_hosts_sharing_vram_limit_names_are_warned(prefect_harness, capsys):
    from blocks import GpuPool

    GpuPool(work_pool_name="shared-pool", limit_prefix="shared-vram-gpu").save(
        "shared-limits", overwrite=True
    )
    args = ["--gpu-pool-block", "shared-limits"]
    _setup(capsys, *args, "--host", "node-c", discovery=_two_gpus(), pool="shared-pool")
    out = _setup(capsys, *args, "--host", "node-d", discovery=_two_gpus(), pool="shared-pool")
    assert "warning: VRAM limit 'shared-vram-gpu0' is shared by hosts node-c, node-d" in out
    assert "host=<name>" in out
    from deployments.pool_hosts import read_hosts

    assert {h: e["slots"] for h, e in read_hosts("shared-pool").items()} == {
        "node-c": 2,
        "node-d": 2,
    }


def test_dry_run_names_the_registration(capsys):
    from deployments.setup import main

    rc = main(["--dry-run", "--workers-only", "--host", "node-e"], discovery=_two_gpus())
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "variable 'gpu-pool-host-node-e'" in out and "sum over registered hosts" in out
    assert "deploy:" not in out and "gpu-node-e-0" in out
