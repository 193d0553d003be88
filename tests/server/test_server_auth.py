"""Security of a self-hosted server: basic auth and the loopback bind (a real ``prefect server start``).

The server reads ``PREFECT_SERVER_API_AUTH_STRING`` (``server.api.auth_string``), clients and
workers send ``PREFECT_API_AUTH_STRING`` (``api.auth_string``), both ``user:password``. Prefect
leaves ``GET /api/health`` (and ``/ready``) open for liveness probes; everything else answers 401
without the right credentials. ``LocalServer`` (like ``prefect server start``'s default) binds to
127.0.0.1 only.
"""

from __future__ import annotations

import base64
import ipaddress
import shutil
import socket
import subprocess

import httpx
import pytest

from deployments.local_server import LocalServer

pytestmark = pytest.mark.slow

AUTH = "admin:secret"


@pytest.fixture(scope="module")
def server(tmp_path_factory, request, seed_server_db):
    srv = LocalServer(
        seed_server_db(tmp_path_factory.mktemp("auth-server")),
        extra_env={"PREFECT_SERVER_API_AUTH_STRING": AUTH},
    )
    request.addfinalizer(srv.stop)
    srv.start()
    return srv


def _basic(auth: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()}


def test_unauthenticated_requests_are_refused(server):
    with httpx.Client(base_url=server.api_url, timeout=10) as http:
        refused = http.post("/flows/filter", json={})
        assert refused.status_code == 401, refused.text
        assert http.post("/flows/filter", json={}, headers=_basic("admin:wrong")).status_code == 401
        assert http.get("/admin/version").status_code == 401
        # Liveness probes stay open (Prefect's choice: GET /api/health only)
        assert http.get("/health").status_code == 200
        ok = http.post("/flows/filter", json={}, headers=_basic(AUTH))
        assert ok.status_code == 200, ok.text


def test_client_with_auth_string_works_and_without_it_fails(server):
    from prefect.client.orchestration import get_client
    from prefect.exceptions import PrefectHTTPStatusError
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: server.api_url, PREFECT_API_AUTH_STRING: AUTH}):
        with get_client(sync_client=True) as client:
            flow_id = client.create_flow_from_name("auth-check")
            assert client.read_flow(flow_id).name == "auth-check"
    with temporary_settings({PREFECT_API_URL: server.api_url, PREFECT_API_AUTH_STRING: None}):
        with get_client(sync_client=True) as client:
            with pytest.raises(PrefectHTTPStatusError, match="401"):
                client.read_flow(flow_id)


def _listening_addresses(port: int) -> set[str]:
    """Local IPv4 addresses in LISTEN state on ``port`` (from /proc/net/tcp)."""
    found = set()
    with open("/proc/net/tcp") as fh:
        next(fh)
        for line in fh:
            local, state = line.split()[1], line.split()[3]
            addr_hex, port_hex = local.split(":")
            if state == "0A" and int(port_hex, 16) == port:  # 0A = LISTEN
                found.add(str(ipaddress.IPv4Address(bytes.fromhex(addr_hex)[::-1])))
    return found


def _other_ipv4_addresses() -> list[str]:
    """This machine's non-loopback IPv4 addresses."""
    addrs: set[str] = set()
    if shutil.which("ip"):
        out = subprocess.run(["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True)
        for line in out.stdout.splitlines():
            parts = line.split()
            if "inet" in parts:
                addrs.add(parts[parts.index("inet") + 1].split("/")[0])
    try:
        addrs.update(socket.gethostbyname_ex(socket.gethostname())[2])
    except OSError:
        pass
    return sorted(a for a in addrs if not ipaddress.IPv4Address(a).is_loopback)


def test_server_listens_on_loopback_only(server):
    assert _listening_addresses(server.port) == {"127.0.0.1"}
    others = _other_ipv4_addresses()
    if not others:
        pytest.skip("this machine has no non-loopback IPv4 address to try the port on")
    for addr in others:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.settimeout(3)
            assert s.connect_ex((addr, server.port)) != 0, (
                f"port {server.port} answers on {addr}: the server is not loopback-only"
            )
