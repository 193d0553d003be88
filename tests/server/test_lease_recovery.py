"""A SIGKILLed holder's VRAM slots come back, also across a server restart (real servers).

Two loopback ``prefect server start`` processes (file-backed lease storage, as in prefect.toml)
run side by side so the two waits overlap (~1.5 min in all on 2 cores). On each, a child process
takes 60 of 80 GiB through ``vram_budget`` and is SIGKILLed; on the second the server is also
killed and restarted right after. While the dead holder's slots are taken a 30 GiB request must
time out; after they come back it must be granted. Each server starts on a copy of the
session's migrated database, and its repossessor looks for expired leases every second instead
of every 15 s: the wait is the 60 s lease (Prefect's minimum), not the loop.
``bench/lease_recovery.py`` runs the same scenarios plus the in-memory-lease anchor and records
the numbers.
"""

from __future__ import annotations

import pytest

from bench.lease_recovery import HOLD_GIB, Scenario, run

RECOVERY_BOUND_S = 150.0

# Limit names no other test uses: Prefect keeps one acquisition service per limit name per
# process, bound to the API URL it first saw (a harness test on vram-gpu0 would capture it).
GPU_A, GPU_B = 70, 71
FAST_REPOSSESSOR = {"PREFECT_SERVER_SERVICES_REPOSSESSOR_LOOP_SECONDS": "1"}


@pytest.mark.slow
def test_killed_holder_slots_come_back_with_and_without_server_restart(
    tmp_path, capsys, seed_server_db
):
    lines: list[str] = []
    todo = [
        Scenario("filesystem", gpu=GPU_A, server_env=FAST_REPOSSESSOR),
        Scenario("filesystem-restart", gpu=GPU_B, restart=True, server_env=FAST_REPOSSESSOR),
    ]
    for sc in todo:  # run() keeps each server's home in workdir / "<name>-server"
        seed_server_db(tmp_path / f"{sc.name}-server")
    scenarios = run(
        todo,
        workdir=tmp_path,
        cap_s=RECOVERY_BOUND_S,
        log=lines.append,
    )
    with capsys.disabled():
        print()
        for line in lines:
            print("  lease-recovery", line)

    for sc in scenarios:
        detail = f"{sc.name}: {sc.summary()}\n" + "\n".join(lines)
        assert sc.held_before_kill == HOLD_GIB, detail
        assert sc.blocked_while_held, f"30 GiB granted while 60 GiB were held: {detail}"
        assert sc.recovered_s is not None and sc.recovered_s <= RECOVERY_BOUND_S, detail
        assert sc.granted_after, f"30 GiB not granted after recovery: {detail}"
    restarted = scenarios[1]
    assert restarted.restart_s is not None, "the server was not restarted"
