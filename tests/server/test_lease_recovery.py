"""A SIGKILLed holder's VRAM slots come back, also across a server restart (real servers).

Two loopback ``prefect server start`` processes (file-backed lease storage, as in prefect.toml)
run side by side so the two waits overlap (~2 min in all on 2 cores). On each, a child process
takes 60 of 80 GiB through ``vram_budget`` and is SIGKILLed; on the second the server is also
killed and restarted right after. While the dead holder's slots are taken a 30 GiB request must
time out; after they come back it must be granted. ``bench/lease_recovery.py`` runs the same
scenarios plus the in-memory-lease anchor and records the numbers.
"""

from __future__ import annotations

import pytest

from bench.lease_recovery import HOLD_GIB, Scenario, run

RECOVERY_BOUND_S = 150.0

# Limit names no other test uses: Prefect keeps one acquisition service per limit name per
# process, bound to the API URL it first saw (a harness test on vram-gpu0 would capture it).
GPU_A, GPU_B = 70, 71


@pytest.mark.slow
def test_killed_holder_slots_come_back_with_and_without_server_restart(tmp_path, capsys):
    lines: list[str] = []
    scenarios = run(
        [
            Scenario("filesystem", gpu=GPU_A),
            Scenario("filesystem-restart", gpu=GPU_B, restart=True),
        ],
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
