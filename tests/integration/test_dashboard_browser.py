"""The dashboard in a real browser: headless Chromium (Debian package) driven by Playwright.

Starts the service with uvicorn on a free port against a seeded results log, checks the charts
show the seeded numbers, reviews one part by painting a mask on the canvas, exports a new dataset
version and sees it listed. Screenshots go to ``test-artifacts/``. Skipped when Chromium or
Playwright is missing (``apt-get install chromium``; ``pip install playwright``, without
``playwright install``).
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

from tests.service.conftest import READ_TOKEN, TOKEN, FakeInspector
from tests.services import service_missing
from tests.service.test_dashboard import NG_PER_WINDOW, seed, seeded_copy

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]

try:
    from playwright import sync_api
except ImportError:
    service_missing("playwright is not installed (bash scripts/setup.sh --dev)", module_level=True)
if not Path(CHROMIUM).exists():
    service_missing("chromium is not installed (apt-get install chromium)", module_level=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def served(app) -> Iterator[str]:
    """Run ``app`` under uvicorn on a free loopback port in a thread; yields its base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def service(tmp_path):
    from defectscope.service import create_app

    template = tmp_path / "template"
    template.mkdir()
    seed(template)
    store, archive, config = seeded_copy(template, tmp_path / "live")
    app = create_app(FakeInspector(), store, archive, token=TOKEN, read_token=READ_TOKEN,
                     dashboard=config)
    with served(app) as url:
        yield url, config
    store.close()


def test_dashboard_end_to_end_in_chromium(service):
    url, config = service
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1800})
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(f"{url}/")  # the root redirects to the dashboard
            # reads need the token: the page says so once instead of showing grey panels
            page.wait_for_selector("#token-needed:not([hidden])")
            assert page.locator("#feed .part").count() == 0
            page.fill("#token", READ_TOKEN)  # the read-only token is enough to watch
            page.dispatch_event("#token", "change")
            page.wait_for_selector("body[data-loaded='1']")
            page.wait_for_selector("#pchart circle.point")
            assert page.locator("#token-needed").is_hidden()
            # the live-feed tiles show their images, fetched with the token
            page.wait_for_function(
                "[...document.querySelectorAll('#feed .part img:not(.heat)')]"
                ".every(img => img.complete && img.naturalWidth > 0)")

            # the p-chart has one point per seeded hour, and the bad hour is flagged by rule 1
            assert page.locator("#pchart circle.point").count() == len(NG_PER_WINDOW)
            hit = page.locator("#pchart circle.hit")
            assert hit.count() == 1 and hit.get_attribute("data-index") == "5"
            assert hit.get_attribute("data-rules") == "1"
            assert float(page.locator("#pchart").get_attribute("data-center")) == \
                pytest.approx(sum(NG_PER_WINDOW) / 120)
            assert "14.2%" in page.locator("#stats").inner_text()  # 17 NG of 120 parts
            assert "rule 1" in page.locator("#alerts").inner_text()
            assert page.locator("#ewma circle.point").count() == len(NG_PER_WINDOW)
            assert page.locator("#drift-status").inner_text().lower() in ("ok", "warn", "alarm")
            assert page.locator("#feed .part").count() == 12
            page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)

            # review one part: type, paint a mask on the canvas, confirm NG
            page.fill("#token", TOKEN)
            page.dispatch_event("#token", "change")
            card = page.locator("#queue .part").first
            part_id = card.locator(".muted").inner_text()
            card.locator("input.defect-type").fill("blob")
            canvas = card.locator("canvas.mask")
            box = canvas.bounding_box()
            page.mouse.move(box["x"] + box["width"] * 0.4, box["y"] + box["height"] * 0.4)
            page.mouse.down()
            page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.5,
                            steps=5)
            page.mouse.up()
            assert canvas.get_attribute("data-painted") == "1"
            page.screenshot(path=str(ARTIFACTS / "dashboard-painting.png"), full_page=True)
            card.locator("button.confirm-ng").click()
            page.wait_for_function(
                "document.getElementById('review-msg').textContent.includes('confirmed NG')")
            assert part_id not in page.locator("#queue").inner_text()
            assert "1/1" in page.locator("#estimates").inner_text()

            # export the labels: a new dataset version appears with the base as its parent
            page.click("#export")
            page.wait_for_selector("#dataset-versions li.dataset-version")
            listed = page.locator("#dataset-versions li.dataset-version").first
            version = listed.get_attribute("data-version")
            assert (config.datasets_dir / version / "manifest.json").is_file()
            from defectscope.data.images.manifest import Manifest

            manifest = Manifest.load(config.datasets_dir / version / "manifest.json")
            reviewed = [s for s in manifest.samples if s.group == part_id]
            assert reviewed and reviewed[0].label == "blob" and reviewed[0].mask_path
            assert manifest.parent_version == Manifest.load(config.base_manifest).version_id
            page.screenshot(path=str(ARTIFACTS / "dashboard-exported.png"), full_page=True)
            assert errors == []
        finally:
            browser.close()
