"""A Prefect user's path: Prefect's own commands only, and the run completes on this host.

Exactly the stock sequence, none of the project's conventions (no ``make deploy``, no
``deployments.setup``, no ``GPUFLOWS_ROOT`` nor ``PYTHONPATH`` in any environment):

    prefect server start
    prefect work-pool create gpu-pool --type process
    prefect --no-prompt deploy --all
    prefect worker start --pool gpu-pool --type process
    prefect deployment run gpu-baseline/gpu-baseline

(the run gets small ``--params`` so it lasts seconds on a CPU). The pull step of prefect.yaml
(``deployments.pull.checkout_directory``) finds the checkout the project is installed from; before
it, ``{{ $GPUFLOWS_ROOT }}`` stayed unresolved and the run crashed with FileNotFoundError in the
worker's temporary folder. The results folders point at a temporary folder only so the test never
writes into the checkout.
"""

from __future__ import annotations

import time

import pytest

from deployments.local_server import LocalServer
from tests.fixtures.e2e_support import E2E, TINY_BASELINE, artifacts, wait_for_state

pytestmark = pytest.mark.slow


@pytest.fixture
def stock(tmp_path, request):
    server = LocalServer(tmp_path / "server-home")
    request.addfinalizer(server.stop)
    server.start()
    ctx = E2E(base=tmp_path, api_url=server.api_url, stock=True)
    request.addfinalizer(ctx.cleanup)
    env = ctx.env()
    assert "GPUFLOWS_ROOT" not in env and "PYTHONPATH" not in env
    return ctx


def test_stock_prefect_commands_deploy_and_run_to_completed(stock, capsys):
    t0 = time.monotonic()
    stock.prefect("work-pool", "create", "gpu-pool", "--type", "process")
    out = stock.prefect("--no-prompt", "deploy", "--all", timeout=240)
    assert "gpu-baseline/gpu-baseline" in out, out
    t_deploy = time.monotonic() - t0

    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: stock.api_url}):
        with get_client(sync_client=True) as client:
            dep = client.read_deployment_by_name("gpu-baseline/gpu-baseline")
    (step,) = dep.pull_steps
    # nothing resolved the placeholder at deploy time: the checkout is found at run time
    assert step == {"deployments.pull.checkout_directory": {"directory": "{{ $GPUFLOWS_ROOT }}"}}

    log = stock.base / "worker.log"
    stock.spawn(
        ["-m", "prefect", "worker", "start", "--pool", "gpu-pool", "--type", "process"], log
    )
    run_id = stock.trigger("gpu-baseline/gpu-baseline", {"params": TINY_BASELINE})
    fr, waited = wait_for_state(stock.api_url, run_id, timeout=240)
    assert fr.state.type.value == "COMPLETED", f"{fr.state}\nworker log:\n{log.read_text()[-4000:]}"

    (report, *_) = artifacts(stock.api_url, "gpu-baseline-report")
    assert str(report.flow_run_id) == run_id
    assert "Trust Tier: T1-" in report.data or "Trust Tier: T2-" in report.data, report.data
    with capsys.disabled():
        print(
            f"\n  stock path: pool + deploy --all {t_deploy:.1f} s; deployment run -> COMPLETED "
            f"in {waited:.1f} s; tier line: "
            + next(x for x in report.data.splitlines() if "Trust Tier" in x)[:80]
        )
