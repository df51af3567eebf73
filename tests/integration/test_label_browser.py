"""The labelling studio in a real browser: headless Chromium (Debian package) via Playwright.

Opens /label with a token, labels three images (one defect corrected with a painted stroke on
top of the accepted proposal, one good, one defect accepting the proposal as is), exports a new
dataset version and checks the files: content hashes, the parent version, and the painted
image's mask differing from the model's proposal. Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

import base64
import io

import httpx
import numpy as np
import pytest
from PIL import Image

# importing the dashboard's browser test applies its skip/fail rule (tests/services.py)
from tests.integration.test_dashboard_browser import ARGS, ARTIFACTS, CHROMIUM, served, sync_api
from tests.service.conftest import READ_TOKEN, TOKEN
from tests.service.test_studio import BlobInspector, make_dataset


@pytest.fixture
def studio_service(tmp_path):
    from defectscope.service import create_app
    from defectscope.service.studio import StudioConfig
    from defectscope.store import ImageArchive, ResultStore

    manifest, files = make_dataset(tmp_path / "data")
    store = ResultStore(f"sqlite:///{tmp_path / 'results.db'}")
    app = create_app(BlobInspector(), store, ImageArchive(tmp_path / "archive"), token=TOKEN,
                     read_token=READ_TOKEN,
                     studio=StudioConfig(manifest, ("dent",), tmp_path / "exports"))
    with served(app) as url:
        yield url, manifest
    store.close()


def proposal_mask(url: str, sha: str) -> np.ndarray:
    body = httpx.get(f"{url}/api/label/images/{sha}/proposal",
                     headers={"Authorization": f"Bearer {READ_TOKEN}"}).json()
    png = base64.b64decode(body["mask_png"].split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(png))) > 0


def test_label_three_images_and_export_in_chromium(studio_service):
    url, manifest_path = studio_service
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1400})
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(f"{url}/label")
            page.wait_for_selector("#token-needed:not([hidden])")  # reads need the token
            page.fill("#token", TOKEN)
            page.dispatch_event("#token", "change")
            page.wait_for_selector("body[data-loaded='1']")
            page.evaluate("document.activeElement.blur()")  # keys go to the page, not the token

            def saves(n: int) -> None:
                try:
                    page.wait_for_function(f"document.body.dataset.saves === '{n}'",
                                           timeout=15000)
                except sync_api.TimeoutError:
                    pytest.fail(f"save {n} did not happen: {page.locator('#status').inner_text()}"
                                f" (page errors: {errors})")

            # 1: the least sure image first (the faint square); accept, then paint a correction
            painted = page.locator("#stage").get_attribute("data-sha")
            assert page.locator("#items li").first.get_attribute("data-sha") == painted
            page.keyboard.press("a")
            saves(1)
            box = page.locator("#boxes").bounding_box()
            page.mouse.move(box["x"] + box["width"] * 0.75, box["y"] + box["height"] * 0.7)
            page.mouse.down()
            page.mouse.move(box["x"] + box["width"] * 0.9, box["y"] + box["height"] * 0.85,
                            steps=6)
            page.mouse.up()
            saves(2)
            assert page.locator("#image-label").inner_text() == "dent"
            page.screenshot(path=str(ARTIFACTS / "label-painted.png"), full_page=True)
            # a click inside the defect guides a new proposal (tool [c]); nothing saved by it
            page.keyboard.press("c")
            page.mouse.click(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5)
            page.wait_for_function("document.getElementById('stage').dataset.guided === '1'",
                                   timeout=15000)
            assert "from your click" in page.locator("#status").inner_text()
            # ... or a rough box dragged around it
            page.mouse.move(box["x"] + box["width"] * 0.2, box["y"] + box["height"] * 0.2)
            page.mouse.down()
            page.mouse.move(box["x"] + box["width"] * 0.8, box["y"] + box["height"] * 0.8,
                            steps=5)
            page.mouse.up()
            page.wait_for_function("document.getElementById('stage').dataset.guided === '2'",
                                   timeout=15000)
            assert "inside your box" in page.locator("#status").inner_text()
            assert page.evaluate("document.body.dataset.saves") == "2"
            page.keyboard.press("p")

            # 2: next unlabelled is the plain part: good
            page.keyboard.press("n")
            page.wait_for_function(f"document.getElementById('stage').dataset.sha !== "
                                   f"'{painted}' && document.body.dataset.loaded === '1'")
            good = page.locator("#stage").get_attribute("data-sha")
            page.keyboard.press("g")
            saves(3)

            # 3: the clear defect: accept the proposal as it is
            page.keyboard.press("n")
            page.wait_for_function(f"!['{painted}', '{good}'].includes(document."
                                   "getElementById('stage').dataset.sha) && "
                                   "document.body.dataset.loaded === '1'")
            accepted = page.locator("#stage").get_attribute("data-sha")
            page.keyboard.press("a")
            saves(4)
            assert page.locator("#progress").inner_text().startswith("3/3")
            assert "dent: 2" in page.locator("#per-class").inner_text()

            # labels are on the server: a reload shows them all
            page.reload()
            page.wait_for_selector("body[data-loaded='1']")
            assert page.locator("#progress").inner_text().startswith("3/3")

            page.select_option("#export-format", "manifest")
            page.click("#export")
            page.wait_for_selector("#export-msg[data-out]")
            out = page.locator("#export-msg").get_attribute("data-out")
            page.screenshot(path=str(ARTIFACTS / "label-exported.png"), full_page=True)
            assert errors == []
        finally:
            browser.close()

    from defectscope.data.hashing import sha256_file
    from defectscope.data.images.manifest import Manifest

    exported = Manifest.load(f"{out}/manifest.json")
    assert exported.parent_version == Manifest.load(manifest_path).version_id
    assert exported.verify_files() == []
    samples = {s.sha256: s for s in exported.samples}
    for sample in exported.samples:
        assert sha256_file(exported.path_of(sample)) == sample.sha256
    assert samples[good].label == "good" and samples[good].mask_path is None
    mask_of = {sha: np.asarray(Image.open(exported.mask_path_of(samples[sha]))) > 0
               for sha in (painted, accepted)}
    assert samples[painted].label == samples[accepted].label == "dent"
    # the service still runs (the fixture ends after the test): compare with its proposals
    assert np.array_equal(mask_of[accepted], proposal_mask(url, accepted))
    proposed = proposal_mask(url, painted)
    assert not np.array_equal(mask_of[painted], proposed)
    assert (mask_of[painted] & ~proposed).sum() > 20  # the painted stroke is in the mask
    assert (mask_of[painted] & proposed).sum() == proposed.sum()  # on top of the proposal
