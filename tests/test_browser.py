"""The web page in a real headless Chromium (Debian's /usr/bin/chromium driven by Playwright):
upload two real photos, wait for the verdict, check it against the API, and save a screenshot.

Playwright's own browser download needs the network; scripts/setup.sh --test installs Debian's
chromium instead, which Playwright launches through `executable_path`.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest

from facelm.serve.background import BackgroundServer
from facelm.serve.config import ServeConfig

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


TOKEN = "browser-test-token-0123456789"


@pytest.fixture(scope="module")
def url() -> str:
    # With a token, so the page's token field is exercised too.
    with BackgroundServer(ServeConfig(port=0, workers=1, token=TOKEN)) as base:
        yield base


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/setup.sh --test (apt-get install chromium)")
    from playwright.sync_api import sync_playwright
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=ARGS,
            viewport={"width": 1200, "height": 1400})
        errors: list[str] = []
        pg = context.new_page()
        pg.on("pageerror", lambda exc: errors.append(str(exc)))
        pg.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        pg.errors = errors
        yield pg
        context.close()


def test_verify_on_the_page_matches_the_api(url: str, page, lfw_dir: Path, lfw_pairs: list[dict],
                                             tmp_path: Path) -> None:
    row = next(r for r in lfw_pairs if r["same"] == "0")
    a, b = lfw_dir / row["file_a"], lfw_dir / row["file_b"]
    page.goto(url + "/")
    # Controls are found by their accessible names: the labels a screen reader announces.
    page.get_by_label("Access token").fill(TOKEN)  # shown because /healthz says one is needed
    page.get_by_label("Photo A", exact=True).set_input_files(str(a))
    page.get_by_label("Photo B", exact=True).set_input_files(str(b))
    page.get_by_role("button", name="Compare", exact=True).click()
    verdict = page.locator("#verdict")
    verdict.wait_for(state="visible", timeout=60_000)

    api = httpx.post(url + "/v1/verify", timeout=60, headers={"Authorization": f"Bearer {TOKEN}"}, files={
        "image_a": (a.name, a.read_bytes()), "image_b": (b.name, b.read_bytes())}).json()
    assert verdict.get_attribute("data-same") == str(api["same"]).lower()
    assert verdict.inner_text().lower() == ("same person" if api["same"] else "different people")
    assert page.locator("#concise").inner_text() == api["explanation"]["concise"]
    assert f"{api['score']:.3f}" in page.locator("#verdict-numbers").inner_text()
    gauge = page.get_by_role("meter")
    assert float(gauge.get_attribute("aria-valuenow")) == pytest.approx(max(0.0, min(1.0, api["score"])))
    assert page.locator("#aspect-table tbody tr").count() == 9
    # The detailed tier is on demand: hidden until its summary is opened.
    detailed = page.locator("#detailed")
    assert not detailed.is_visible()
    page.get_by_text("Detailed explanation").click()
    assert detailed.inner_text() == api["explanation"]["detailed"]
    # Both photos are drawn with the face marked, and say so to screen readers.
    for cid in ("#canvas-a", "#canvas-b"):
        assert "68 landmarks" in page.locator(cid).get_attribute("aria-label")
    assert page.errors == []
    shot = tmp_path / "verify.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000


def test_describe_mode_and_a_bad_upload(url: str, page, portrait_path: Path, lfw_dir: Path,
                                        tmp_path: Path) -> None:
    page.goto(url + "/")
    page.get_by_role("button", name="Describe one photo").click()
    page.get_by_label("Photo", exact=True).set_input_files(str(portrait_path))
    page.get_by_label("Aspect").select_option("pose")
    status = page.locator("#describe-status")
    page.get_by_role("button", name="Describe", exact=True).click()  # no token yet: refused
    status.filter(has_text="Error").wait_for(timeout=60_000)
    assert "token" in status.inner_text()
    page.get_by_label("Access token").fill(TOKEN)
    page.get_by_role("button", name="Describe", exact=True).click()
    table = page.locator("#answers-table")
    table.wait_for(state="visible", timeout=60_000)
    rows = table.locator("tbody tr")
    assert rows.count() == 1 and "frontal" in rows.first.inner_text()
    page.screenshot(path=str(tmp_path / "describe.png"), full_page=True)

    # A CSV under an image's name: the API's message is shown on the page.
    page.get_by_label("Photo", exact=True).set_input_files(
        files=[{"name": "not-a-photo.jpg", "mimeType": "image/jpeg",
                "buffer": (lfw_dir / "pairs.csv").read_bytes()}])
    page.get_by_role("button", name="Describe", exact=True).click()
    status.filter(has_text="not-a-photo.jpg").wait_for(timeout=60_000)
    assert "not-a-photo.jpg" in status.inner_text() and "not an image" in status.inner_text()
