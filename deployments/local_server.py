"""Start a loopback ``prefect server start`` for this project (tests, benches, operations).

A real server, unlike ephemeral mode, runs the repossessor service that frees the slots of a
SIGKILLed lease holder. The server runs in its own process group (``start_new_session``) so
``stop()`` kills it with everything it spawned; no orphan is left when the caller dies first
(use it as a context manager or call ``stop()`` in a ``finally``).

Example:
    >>> with LocalServer(home=Path("/tmp/ph")) as srv:
    ...     with temporary_settings({PREFECT_API_URL: srv.api_url}):
    ...         ensure_limits({"vram-gpu0": 80})

``python -m deployments.local_server --home .prefect-local --port 4200`` runs one in the
foreground until Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

LEASE_STORAGE = {
    "filesystem": "prefect.server.concurrency.lease_storage.filesystem",
    "memory": "prefect.server.concurrency.lease_storage.memory",
}
REPO_ROOT = Path(__file__).resolve().parents[1]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def kill_group(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGKILL a process started with ``start_new_session=True`` and its whole group."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    else:
        # The leader is gone; children in its group may not be.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pass


class LocalServer:
    """One ``prefect server start`` on 127.0.0.1 with its own PREFECT_HOME and SQLite database.

    Args:
        home: PREFECT_HOME of the server (database ``prefect.db`` and lease files live there).
        port: TCP port; a free one when None. Kept across ``restart()``.
        lease_storage: ``"filesystem"`` (survives a restart; the project default),
            ``"memory"`` (Prefect's default) or a module path.
        slot_wait_cap_s: ``PREFECT_SERVER_CONCURRENCY_MAXIMUM_CONCURRENCY_SLOT_WAIT_SECONDS``.
        extra_env: more environment for the server (e.g. repossessor loop seconds).
    """

    def __init__(
        self,
        home: Path,
        *,
        port: int | None = None,
        lease_storage: str = "filesystem",
        slot_wait_cap_s: float = 1.0,
        extra_env: dict[str, str] | None = None,
        startup_timeout_s: float = 180.0,
    ) -> None:
        self.home = Path(home)
        self.port = port or free_port()
        self.lease_storage = LEASE_STORAGE.get(lease_storage, lease_storage)
        self.slot_wait_cap_s = slot_wait_cap_s
        self.extra_env = dict(extra_env or {})
        self.startup_timeout_s = startup_timeout_s
        self.proc: subprocess.Popen | None = None
        self.starts: list[float] = []  # seconds each start took until /api/health answered
        self._log = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.url}/api"

    @property
    def log_path(self) -> Path:
        return self.home / "server.log"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        env.update(
            {
                "PREFECT_HOME": str(self.home),
                "PREFECT_API_DATABASE_CONNECTION_URL": (
                    f"sqlite+aiosqlite:///{self.home / 'prefect.db'}"
                ),
                "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE": self.lease_storage,
                "PREFECT_SERVER_CONCURRENCY_MAXIMUM_CONCURRENCY_SLOT_WAIT_SECONDS": str(
                    self.slot_wait_cap_s
                ),
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "PREFECT_SERVER_UI_ENABLED": "false",
                "PREFECT_UI_ENABLED": "false",
                "PREFECT_SERVER_LOGGING_LEVEL": "INFO",
            }
        )
        env.update(self.extra_env)
        return env

    def start(self, wait: bool = True) -> LocalServer:
        """Start the server (non-blocking with ``wait=False``; then call ``wait_healthy``)."""
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError(f"server on port {self.port} is already running")
        self.home.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._t0 = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start"]
            + ["--host", "127.0.0.1", "--port", str(self.port)],
            cwd=self.home,  # not the repo root: its prefect.toml must not override the env
            env=self.env(),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        if wait:
            self.wait_healthy()
        return self

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.api_url}/health", timeout=2) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError, TimeoutError):
            return False

    def wait_healthy(self) -> float:
        """Block until ``/api/health`` answers 200; returns the seconds since ``start()``."""
        assert self.proc is not None, "start() first"
        deadline = self._t0 + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"prefect server exited with {self.proc.returncode}; log tail:\n"
                    + self.log_tail()
                )
            if self.healthy():
                took = time.monotonic() - self._t0
                self.starts.append(took)
                return took
            time.sleep(0.25)
        self.stop()
        raise TimeoutError(
            f"prefect server not healthy after {self.startup_timeout_s} s; log tail:\n"
            + self.log_tail()
        )

    def stop(self) -> None:
        """SIGKILL the server's process group (a crash, as far as the server knows)."""
        if self.proc is not None:
            kill_group(self.proc)
        if self._log is not None:
            self._log.close()
            self._log = None

    def restart(self) -> float:
        """Kill and start again on the same home, database and port; returns the start seconds."""
        self.stop()
        self.start(wait=False)
        return self.wait_healthy()

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def __enter__(self) -> LocalServer:
        if self.proc is None or self.proc.poll() is not None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--home", type=Path, default=REPO_ROOT / ".prefect-local")
    p.add_argument("--port", type=int, default=4200)
    p.add_argument("--lease-storage", default="filesystem")
    a = p.parse_args(argv)
    srv = LocalServer(a.home.resolve(), port=a.port, lease_storage=a.lease_storage)
    try:
        took = srv.start().starts[-1]
        print(f"Prefect server ready in {took:.1f} s: export PREFECT_API_URL={srv.api_url}")
        print(f"log: {srv.log_path}; Ctrl-C stops it")
        while srv.proc is not None and srv.proc.poll() is None:
            time.sleep(1)
        return srv.proc.returncode if srv.proc else 1
    except KeyboardInterrupt:
        return 0
    finally:
        srv.stop()


if __name__ == "__main__":
    raise SystemExit(main())
