"""The per-item checkpoint ledger: durable appends, torn lines ignored, last record per key."""

import os
import signal
import subprocess
import sys
import time

import pytest

from gpuflows.core.store.ledger import Ledger, item_key


def test_append_and_latest_keep_last_record_per_key(tmp_path):
    led = Ledger(tmp_path / "l.jsonl")
    assert led.latest() == {} and led.done() == set()
    a, b = item_key(pair="a", model="m"), item_key(pair="b", model="m")
    led.append({"key": a, "v": 1})
    led.append({"key": b, "v": 2})
    led.append({"key": a, "v": 3})
    latest = led.latest()
    assert list(latest) == [a, b] and latest[a]["v"] == 3 and latest[b]["v"] == 2
    assert item_key(pair="a", model="m") == a != item_key(pair="a", model="n")


def test_torn_last_line_is_ignored_and_sealed(tmp_path):
    led = Ledger(tmp_path / "l.jsonl")
    led.append({"key": "k1", "v": 1})
    with open(led.path, "ab") as fh:
        fh.write(b'{"key": "k2", "v"')  # a crash mid-write
    assert set(led.latest()) == {"k1"}
    led.append({"key": "k3", "v": 3})
    assert set(led.latest()) == {"k1", "k3"}


def test_record_without_key_refused(tmp_path):
    with pytest.raises(ValueError, match="key"):
        Ledger(tmp_path / "l.jsonl").append({"v": 1})


WRITER = """
import sys, time
from gpuflows.core.store.ledger import Ledger
led = Ledger(sys.argv[1])
i = 0
while True:
    led.append({"key": f"k{i}", "payload": "x" * 5000})
    i += 1
"""


def test_sigkill_mid_stream_loses_nothing_recorded(tmp_path):
    path = tmp_path / "l.jsonl"
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], env=env)
    deadline = time.monotonic() + 30
    while (not path.exists() or path.stat().st_size < 200_000) and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    keys = list(Ledger(path).latest())
    assert len(keys) > 10
    assert keys == [f"k{i}" for i in range(len(keys))]  # a prefix: no gap, no duplicate
