"""A SIGKILLed holder's VRAM slots come back, also across a server restart (real servers).

Two loopback ``prefect server start`` processes (file-backed lease storage, as in prefect.toml)
run side by side so the two waits overlap (~1.5 min in all on 2 cores). On each, a child process
takes 60 of 80 GiB through ``vram_budget`` and is SIGKILLed; on the second the server is also
killed and restarted right after. While the dead holder's slots are taken a 30 GiB request must
time out; after they come back it must be granted. Each server starts on a copy of the
session's migrated database, and its repossessor looks for expired leases every second instead
of every 15 s: the wait is the 60 s lease (Prefect's minimum), not the loop.

The scenarios start in the background at the first test of ``tests/server`` (``conftest.py``):
their minute of waiting overlaps the tests before this one, which then asserts on them.
``bench/lease_recovery.py`` runs the same scenarios plus the in-memory-lease anchor and records
the numbers.
"""

from __future__ import annotations

import time

import pytest

from bench.lease_recovery import HOLD_GIB


@pytest.mark.slow
def test_killed_holder_slots_come_back_with_and_without_server_restart(lease_recovery, capsys):
    t0 = time.monotonic()
    scenarios = lease_recovery.result()
    lines = lease_recovery.lines
    with capsys.disabled():
        print()
        for line in lines:
            print("  lease-recovery", line)
        ran = lease_recovery.finished_at - lease_recovery.started_at
        print(
            f"  lease-recovery: {ran:.0f} s in the background, {time.monotonic() - t0:.0f} s here"
        )

    for sc in scenarios:
        detail = f"{sc.name}: {sc.summary()}\n" + "\n".join(lines)
        assert sc.held_before_kill == HOLD_GIB, detail
        assert sc.blocked_while_held, f"30 GiB granted while 60 GiB were held: {detail}"
        assert sc.recovered_s is not None and sc.recovered_s <= lease_recovery.cap_s, detail
        assert sc.granted_after, f"30 GiB not granted after recovery: {detail}"
    restarted = scenarios[1]
    assert restarted.restart_s is not None, "the server was not restarted"
