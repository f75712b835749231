"""The fleet page in a real browser (Debian's Chromium, headless, driven by Playwright) against a
cluster of real processes: nats-server, sie-config, two workers and a gateway, all with tokens.

The page asks for the read token after its first 401, then follows the gateway's live feed: a
model added through sie-config's API appears and turns acked without a reload, a killed worker
turns silent, a stopped NATS shows in the header, a restarted gateway is reconnected to by
itself. A worker name and a profile name carrying HTML render as text. Screenshots (laptop and
phone width) are saved under `$SIE_TEST_ARTIFACTS` (else the test's tmp dir).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import httpx
import pytest
import yaml

from sie_actors.procs import LOOPBACK, free_port
from tests.conftest import base_env
from tests.integration.worker_support import ST

pytestmark = [pytest.mark.integration, pytest.mark.browser]

CHROMIUM = "/usr/bin/chromium"
READ, ADMIN = "fleet-read-token", "fleet-admin-token"
EVIL = "<img src=x onerror=window.__xss=1>"
WAIT_MS = 20_000
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


@pytest.fixture
def browser_page(tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install -y chromium` (.ci/run does it)")
    from playwright.sync_api import sync_playwright
    profile = tempfile.mkdtemp(prefix="sie-chromium-")
    try:
        with sync_playwright() as pw:
            context = pw.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
                viewport={"width": 1280, "height": 900})
            try:
                yield context.new_page()
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def artifacts(tmp_path: Path) -> Path:
    root = Path(os.environ.get("SIE_TEST_ARTIFACTS") or tmp_path / "artifacts")
    root.mkdir(parents=True, exist_ok=True)
    return root


def test_fleet_page_live(nats_server, spawn, tmp_path, browser_page):
    from playwright.sync_api import expect
    page = browser_page
    tokens = dict(SIE_AUTH_TOKEN=READ, SIE_ADMIN_TOKEN=ADMIN)
    config = spawn("sie_config", base_env(SIE_NATS_URL=nats_server.url,
                                          SIE_CONFIG_STORE_DIR=str(tmp_path / "store"),
                                          **tokens), ready_path="/healthz")
    worker_env = base_env(SIE_NATS_URL=nats_server.url, SIE_CONFIG_SERVICE_URL=config.url,
                          SIE_WORKER_HEARTBEAT_S="0.5", **tokens)
    worker_env.pop("POD_NAME")
    workers = [spawn("sie_worker", worker_env, args=["--bundle", "default", "--name", name])
               for name in ("w-one", EVIL)]
    gateway_env = {k: v for k, v in base_env(
        SIE_NATS_URL=nats_server.url, SIE_CONFIG_SERVICE_URL=config.url,
        SIE_GATEWAY_WORKERS=",".join(w.url for w in workers),
        SIE_GATEWAY_HEARTBEAT_TIMEOUT_S="2", SIE_GATEWAY_POLL_INTERVAL_S="0.5",
        SIE_NATS_PING_INTERVAL_S="1", POD_NAME="gateway-a", **tokens).items()
        if k not in ("SIE_BUNDLES_DIR", "SIE_MODELS_DIR")}
    port = free_port()
    # the peers: this gateway itself (same epoch) and one that is not there (unreachable)
    gateway_env["SIE_GATEWAY_PEERS"] = f"http://{LOOPBACK}:{port},http://{LOOPBACK}:9"
    gateway = spawn("sie_gateway", gateway_env, port=port, ready_path="/healthz")

    # the page asks for the token once (after a 401), keeps it in the session, not the URL
    page.goto(gateway.url + "/")
    expect(page.locator("#token-form")).to_be_visible(timeout=WAIT_MS)
    expect(page.locator("#conn")).to_have_attribute("data-state", "auth")
    page.fill("#token-input", READ)
    page.click("#token-form button")
    expect(page.locator("#conn")).to_have_attribute("data-state", "live", timeout=WAIT_MS)
    assert READ not in page.url
    assert page.evaluate("sessionStorage.getItem('sie-fleet-token')") == READ
    page.evaluate("window.__sameDocument = 'yes'")

    grid = page.locator("#grid tbody")
    bge = grid.locator("tr[data-model='BAAI/bge-m3']")
    expect(bge.locator("td[data-bundle='default']")).to_have_attribute(
        "data-state", "acked", timeout=WAIT_MS)
    expect(page.locator("#nats")).to_have_attribute("data-state", "connected")
    expect(page.locator("#gw-name")).to_have_text("gateway-a")
    expect(page.locator("#peers li")).to_have_count(2)
    expect(page.locator("#peers li").nth(0)).to_contain_text("same as this gateway",
                                                             timeout=WAIT_MS)
    expect(page.locator("#peers li").nth(1)).to_contain_text("unreachable")

    # a worker named with HTML: its row shows the name as text, and no element was made of it
    evil_row = page.locator("#workers tbody tr").filter(has_text=EVIL)
    expect(evil_row).to_have_count(1, timeout=WAIT_MS)
    expect(evil_row.locator("td").first).to_have_text(EVIL)

    # a model added through sie-config's API appears and turns acked, without a reload
    body = yaml.safe_dump({"sie_id": "fleet/browser", "profiles": {
        EVIL: {"adapter_path": ST, "max_batch_tokens": 256}}}).encode()
    added = httpx.post(config.url + "/v1/configs/models", content=body, timeout=30,
                       headers={"Content-Type": "application/x-yaml",
                                "Authorization": f"Bearer {ADMIN}"})
    assert added.status_code == 201, added.text
    row = grid.locator("tr[data-model='fleet/browser']")
    expect(row).to_have_count(1, timeout=WAIT_MS)
    expect(row.locator("td[data-bundle='default']")).to_have_attribute(
        "data-state", "acked", timeout=WAIT_MS)
    expect(row.locator("td[data-bundle='default']")).to_contain_text("2/2 acked")
    expect(grid.locator("tr").first).to_have_attribute("data-model", "fleet/browser")  # newest
    assert page.evaluate("window.__sameDocument") == "yes"

    # its detail: the profile name with HTML in it is text, the YAML is the mirror's
    row.click()
    detail = page.locator("#detail")
    expect(detail).to_be_visible(timeout=WAIT_MS)
    expect(detail.locator("li[data-profile]").first.locator("strong")).to_have_text(EVIL)
    expect(detail.locator("pre")).to_contain_text("sie_id: fleet/browser")
    expect(detail.locator("div[data-bundle='default']")).to_contain_text("w-one")
    assert page.locator("img").count() == 0
    assert page.evaluate("window.__xss") is None

    # the header catches up: sie-config's polled epoch and the peer (this gateway) agree
    expect(page.locator("#gw-epoch")).to_have_text("epoch 1")
    expect(page.locator("#cfg-epoch")).to_have_text("epoch 1", timeout=WAIT_MS)
    expect(page.locator("#cfg-sub")).to_have_text("in sync with this gateway")
    expect(page.locator("#peers li").nth(0)).to_contain_text("epoch 1 · same as this gateway",
                                                             timeout=WAIT_MS)

    # the filter narrows the grid
    page.fill("#model-filter", "fleet/")
    expect(grid.locator("tr")).to_have_count(1)
    page.fill("#model-filter", "")
    shots = artifacts(tmp_path)
    page.screenshot(path=str(shots / "fleet-page.png"), full_page=True)

    # a killed worker turns silent
    workers[0].kill()
    one = page.locator("#workers tbody tr[data-worker='w-one']")
    expect(one).to_have_attribute("data-state", "silent", timeout=WAIT_MS)
    expect(one).to_contain_text("silent")

    # NATS stopped: the header says so
    nats_server.kill()
    expect(page.locator("#nats")).to_have_attribute("data-state", "disconnected",
                                                    timeout=WAIT_MS)
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=str(shots / "fleet-page-phone.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})

    # the gateway goes away: "reconnecting"; it comes back: live again, same page, no new token
    gateway.kill()
    expect(page.locator("#conn")).to_have_attribute("data-state", "reconnecting",
                                                    timeout=WAIT_MS)
    gateway = spawn("sie_gateway", gateway_env, port=gateway.port, ready_path="/healthz")
    expect(page.locator("#conn")).to_have_attribute("data-state", "live", timeout=WAIT_MS)
    expect(page.locator("#token-form")).to_be_hidden()
    assert page.evaluate("window.__sameDocument") == "yes"
    print(f"screenshots in {shots}")
