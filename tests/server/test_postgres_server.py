"""PostgreSQL as the Prefect server's database: a throwaway cluster on 127.0.0.1, then end to end.

Debian's PostgreSQL (``.ci/install-postgres.sh`` installs it in CI when it can) runs a cluster in
a temporary folder on a free loopback port, trust auth, fsync off (a test, not a deployment).
PostgreSQL refuses to run as root: under root the cluster's commands run as the ``postgres``
system user (``runuser -u postgres --``, else ``setpriv``), in a folder that user owns.
``LocalServer`` then starts with ``PREFECT_API_DATABASE_CONNECTION_URL=postgresql+asyncpg://...``
and the same path as tests/server/test_e2e_server.py runs: ``deployments.setup`` (workers on),
``prefect deployment run gpu-baseline/gpu-baseline-cpu``, COMPLETED, tiered artifacts read back,
and the rows are in PostgreSQL (not in a SQLite file). Skipped, saying why, when PostgreSQL is
not installed or cannot start.
"""

from __future__ import annotations

import asyncio
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from deployments.local_server import LocalServer, free_port
from tests.fixtures.e2e_support import E2E, TINY_BASELINE, artifacts, wait_for_state

pytestmark = pytest.mark.slow

PG_USER = "prefect"  # the cluster's superuser (trust auth on loopback)
PG_DB = "prefect"


def pg_bin_dir() -> Path | None:
    """Folder of initdb/pg_ctl: Debian's newest /usr/lib/postgresql/*/bin, else PATH."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb and shutil.which("pg_ctl") else None


def as_cluster_user() -> tuple[list[str], str | None]:
    """Command prefix that runs a program as a non-root user, and that user (None: ourselves)."""
    if os.geteuid() != 0:
        return [], None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("running as root and there is no 'postgres' user to run PostgreSQL as")
    if shutil.which("runuser"):
        return ["runuser", "-u", "postgres", "--"], "postgres"
    if shutil.which("setpriv"):
        pw = pwd.getpwnam("postgres")
        return [
            "setpriv",
            f"--reuid={pw.pw_uid}",
            f"--regid={pw.pw_gid}",
            "--init-groups",
        ], "postgres"
    pytest.skip("running as root and neither runuser nor setpriv is available")


class Cluster:
    def __init__(self, bindir: Path, root: Path, prefix: list[str]) -> None:
        self.bindir, self.root, self.prefix = bindir, root, prefix
        self.data = root / "data"
        self.port = free_port()
        self.started = False

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*self.prefix, *args],
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def start(self) -> str | None:
        """initdb + start + createdb; None when up, else why not."""
        r = self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            PG_USER,
            "--auth=trust",
            "--no-sync",
            "--encoding=UTF8",
        )
        if r.returncode != 0:
            return f"initdb failed: {(r.stdout + r.stderr)[-1500:]}"
        opts = f"-h 127.0.0.1 -p {self.port} -k {self.root} -F -c max_connections=100"
        r = self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.root / "postgres.log"),
            "-o",
            opts,
            "-w",
            "-t",
            "60",
            "start",
        )
        if r.returncode != 0:
            log = (self.root / "postgres.log").read_text(errors="replace")[-1500:]
            return f"pg_ctl start failed: {(r.stdout + r.stderr)[-1000:]}\n{log}"
        self.started = True
        r = self._run(
            str(self.bindir / "createdb"),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            PG_USER,
            PG_DB,
        )
        if r.returncode != 0:
            return f"createdb failed: {(r.stdout + r.stderr)[-1500:]}"
        return None

    def stop(self) -> None:
        if self.started:
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
            self.started = False

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://{PG_USER}@127.0.0.1:{self.port}/{PG_DB}"

    def fetchval(self, sql: str):
        import asyncpg

        async def go():
            conn = await asyncpg.connect(
                host="127.0.0.1", port=self.port, user=PG_USER, database=PG_DB
            )
            try:
                return await conn.fetchval(sql)
            finally:
                await conn.close()

        return asyncio.run(go())


@pytest.fixture(scope="module")
def postgres(request):
    bindir = pg_bin_dir()
    if bindir is None:
        pytest.skip(
            "PostgreSQL server binaries (initdb, pg_ctl) not found: run .ci/install-postgres.sh "
            "as root (apt-get install postgresql)"
        )
    pytest.importorskip("asyncpg", reason="asyncpg (the dev extra) is needed to reach PostgreSQL")
    prefix, user = as_cluster_user()
    # Not under pytest's tmp_path: /tmp/pytest-of-root is 0700, which the postgres user cannot
    # traverse. A folder of our own in /tmp, owned by the cluster's user.
    root = Path(tempfile.mkdtemp(prefix="gpuflows-pg-"))
    request.addfinalizer(lambda: shutil.rmtree(root, ignore_errors=True))
    if user is not None:
        pw = pwd.getpwnam(user)
        os.chown(root, pw.pw_uid, pw.pw_gid)
    cluster = Cluster(bindir, root, prefix)
    request.addfinalizer(cluster.stop)
    t0 = time.monotonic()
    why = cluster.start()
    if why is not None:
        pytest.skip(f"PostgreSQL ({bindir}) could not start: {why}")
    cluster.start_s = time.monotonic() - t0
    return cluster


def test_end_to_end_on_postgresql(postgres, tmp_path, request, capsys):
    t0 = time.monotonic()
    server = LocalServer(
        tmp_path / "server-home",
        extra_env={"PREFECT_API_DATABASE_CONNECTION_URL": postgres.url},
    )
    request.addfinalizer(server.stop)
    server.start()
    ctx = E2E(base=tmp_path, api_url=server.api_url)
    request.addfinalizer(ctx.cleanup)

    out = ctx.setup()  # pool, limits, blocks, deploy --all, one worker
    assert "deployments of" in out and ctx.worker_pids(), out
    run_id = ctx.trigger("gpu-baseline/gpu-baseline-cpu", {"params": TINY_BASELINE})
    fr, waited = wait_for_state(ctx.api_url, run_id, timeout=180)
    logs = "\n".join(p.read_text()[-3000:] for p in ctx.worker_dir.glob("*.log"))
    assert fr.state.type.value == "COMPLETED", f"{fr.state}\nworker log tail:\n{logs}"
    (report, *_) = artifacts(ctx.api_url, "gpu-baseline-report")
    assert str(report.flow_run_id) == run_id
    assert "Trust Tier: T1-" in report.data or "Trust Tier: T2-" in report.data
    assert str(artifacts(ctx.api_url, "gpu-baseline-monitor-summary")[0].flow_run_id) == run_id

    # The server wrote to PostgreSQL, not to a SQLite file in its home.
    assert not (server.home / "prefect.db").exists()
    assert postgres.fetchval(f"SELECT count(*) FROM flow_run WHERE id = '{run_id}'") == 1
    assert postgres.fetchval("SELECT count(*) FROM artifact WHERE key = 'gpu-baseline-report'") >= 1
    version = postgres.fetchval("SHOW server_version")
    with capsys.disabled():
        print(
            f"\n  postgres {version}: cluster up in {postgres.start_s:.1f} s, prefect server "
            f"(migrations) {server.starts[-1]:.1f} s, gpu-baseline-cpu {waited:.1f} s to "
            f"COMPLETED, {time.monotonic() - t0:.1f} s in all"
        )
