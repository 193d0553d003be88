"""Plots are visible in the Prefect UI: artifact pages rendered by headless Chromium.

A real ``prefect server start`` with its UI, two flow runs against it (rqa-sweep ``smoke`` and a
tiny gpu-baseline on the CPU, whose SLO reports carry latency distributions; one Python process
runs both, one after the other, so Prefect and torch are imported once), then each artifact page
(``/artifacts/artifact/<id>``) opened in headless Chromium (the DOM dump and the two screenshots of
a page at the same time, each Chromium with a profile folder of its own):

* the tier string comes from the API (the artifact's data) and is found in the rendered DOM
  (``--dump-dom``);
* the plot is checked in the screenshot's pixels: the embedded heatmap / histogram paints
  thousands of saturated pixels in hundreds of colours the UI's own chrome does not have; the
  same report without its images (published as another artifact, the control) must show far
  fewer, so the check can fail.

Chromium comes from Debian's package (``.ci/install-chromium.sh``, best effort in ``.ci/run``);
the test skips, saying why, when it is absent.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from deployments.local_server import LocalServer, free_port
from tests.fixtures.e2e_support import E2E, TINY_BASELINE, artifacts

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
WINDOW = (1400, 7000)


def chromium(url: str, out: Path, *, dom: bool = False, budget_ms: int = 20000) -> str | Path:
    """Screenshot (or the rendered DOM) of ``url`` in headless Chromium."""
    out.parent.mkdir(parents=True, exist_ok=True)
    args = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={out.parent / ('chrome-' + out.name)}",  # one per call: they overlap
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        f"--virtual-time-budget={budget_ms}",
    ]
    if dom:
        args.append("--dump-dom")
    else:
        args.append(f"--screenshot={out}")
    proc = subprocess.run(
        [*args, url], capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL
    )
    if dom:
        return proc.stdout
    assert out.exists(), f"no screenshot of {url}: rc {proc.returncode}\n{proc.stderr[-2000:]}"
    return out


def saturated_pixels(png: Path) -> tuple[int, int]:
    """(pixels with HSV saturation > 0.35 and value > 0.2, distinct colours among them)."""
    from PIL import Image

    rgb = np.asarray(Image.open(png).convert("RGB")).astype(np.int32)
    mx, mn = rgb.max(axis=2), rgb.min(axis=2)
    sat = np.where(mx > 0, (mx - mn) / np.maximum(mx, 1), 0)
    mask = (sat > 0.35) & (mx > 51)
    colours = rgb[mask]
    # quantize to 5 bits per channel: antialiasing must not count as distinct colours
    distinct = (
        len(np.unique((colours >> 3) @ np.array([1 << 10, 1 << 5, 1]))) if len(colours) else 0
    )
    return int(mask.sum()), distinct


@pytest.fixture(scope="module")
def ui(tmp_path_factory, request, seed_server_db):
    if CHROMIUM is None:
        pytest.skip("no chromium on PATH: run .ci/install-chromium.sh (apt-get install chromium)")
    base = tmp_path_factory.mktemp("ui-plots")
    port = free_port()
    server = LocalServer(
        seed_server_db(base / "server-home"),
        port=port,
        extra_env={
            "PREFECT_SERVER_UI_ENABLED": "true",
            "PREFECT_UI_ENABLED": "true",
            # else the UI calls the default port 4200 and shows "Oops. Something went wrong."
            "PREFECT_UI_API_URL": f"http://127.0.0.1:{port}/api",
        },
    )
    request.addfinalizer(server.stop)
    server.start()
    ctx = E2E(base=base, api_url=server.api_url)
    request.addfinalizer(ctx.cleanup)
    ctx.server = server
    return ctx


@pytest.fixture(scope="module")
def flows_ran(ui) -> float:
    """rqa-sweep ``smoke`` then the tiny gpu-baseline, in one process; the seconds it took."""
    t0 = time.monotonic()
    ui.run(
        [
            "-c",
            "from flows.rqa_sweep import rqa_sweep; from flows.gpu_baseline import gpu_baseline; "
            "rqa_sweep(params={'preset': 'smoke', 'device': 'cpu'}); "
            f"gpu_baseline(params={json.loads(json.dumps(TINY_BASELINE))!r})",
        ],
        timeout=600,
    )
    return time.monotonic() - t0


def _publish_control(ctx: E2E, key: str, markdown: str) -> str:
    from prefect.artifacts import create_markdown_artifact
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: ctx.api_url}), warnings.catch_warnings():
        # the control is published outside any run on purpose (Prefect 3.9 warns it is deprecated)
        warnings.filterwarnings("ignore", "Artifact creation outside", FutureWarning)
        return str(create_markdown_artifact(markdown=markdown, key=key))


def _check_page(ctx: E2E, art, tier: str | None, name: str, capsys) -> None:
    url = f"{ctx.server.url}/artifacts/artifact/{art.id}"
    control_md = re.sub(r"!\[[^\]]*\]\(data:image/png;base64,[^)]+\)", "(image removed)", art.data)
    assert control_md != art.data, "the artifact embeds no image"
    control_id = _publish_control(ctx, f"{art.key}-control", control_md)

    control_url = f"{ctx.server.url}/artifacts/artifact/{control_id}"
    with ThreadPoolExecutor(3) as pool:
        dom_f = pool.submit(chromium, url, ctx.base / f"{name}.html", dom=True)
        shot_f = pool.submit(chromium, url, ctx.base / f"{name}.png")
        control_f = pool.submit(chromium, control_url, ctx.base / f"{name}-control.png")
        dom, shot, control = dom_f.result(), shot_f.result(), control_f.result()
    assert 'src="data:image/png;base64,' in dom, f"no embedded <img> in the rendered page {url}"
    if tier:
        assert tier in dom, f"tier {tier!r} not rendered on {url}"
    (n, distinct), (n0, distinct0) = saturated_pixels(shot), saturated_pixels(control)
    with capsys.disabled():
        print(
            f"\n  {name}: saturated pixels {n} ({distinct} colours) vs {n0} ({distinct0}) "
            f"without the image; screenshot {shot}"
        )
    # measured here: rqa-sweep 108,446 px / 485 colours vs 2,805 / 45 without the images;
    # an SLO histogram 16,970 / 311 vs 4,478 / 45
    assert n - n0 >= 8_000 and distinct - distinct0 >= 100, (
        f"no rendered plot in {shot}: {n} px / {distinct} colours vs {n0} / {distinct0} on "
        f"the same page without its images ({control})"
    )


def test_rqa_sweep_summary_shows_its_plots_and_tier(ui, flows_ran, capsys):
    (art, *_) = artifacts(ui.api_url, "rqa-sweep-summary")
    m = re.search(r"Trust Tier: (T\d-[A-Za-z]+)", art.data)
    assert m, art.data[:500]
    assert art.data.count("data:image/png;base64,") == 2  # heatmap and distributions
    # the lock's package list was cut at the page edge as a table cell: now a list item
    assert "- **packages** · value: gpuflows" in art.data
    _check_page(ui, art, m.group(1), "rqa-sweep-summary", capsys)


def test_slo_report_shows_its_latency_distribution(ui, flows_ran, capsys):
    slo = [a for a in _all_markdown_artifacts(ui.api_url) if a.key and "-slo-" in a.key]
    keys = [a.key for a in slo if "data:image/png" in (a.data or "")]
    assert keys, f"no SLO report with an embedded plot among {[a.key for a in slo]}"
    (art, *_) = artifacts(ui.api_url, sorted(keys)[0])
    tier = re.search(r"T\d-[A-Za-z]+", art.data)
    _check_page(ui, art, tier.group(0) if tier else None, "slo-report", capsys)


def _all_markdown_artifacts(api_url: str) -> list:
    from prefect.client.schemas.objects import Artifact

    from tests.fixtures.e2e_support import post

    rows = post(api_url, "/artifacts/filter", {"limit": 200, "offset": 0})
    return [Artifact.model_validate(r) for r in rows if r.get("type") == "markdown"]
