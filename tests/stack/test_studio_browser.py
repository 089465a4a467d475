"""The web studio and /docs in a real browser: headless Chromium (Debian's
`chromium`, which .ci/run installs) driven by Playwright against the session's
stack, with every request outside the stack's origin blocked, so the pages are
shown to work offline.

Screenshots of the main states go to $LIGHTBOX_SCREENSHOTS when set (the committed
set in docs/screenshots/ was made that way), else to the test's temporary folder."""

from __future__ import annotations

import io
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from PIL import Image
from playwright.sync_api import Browser, Locator, Page, Route, sync_playwright

from services.samples.synthetic import make_sample
from tests.gateway.stackutil import Key, error_of, make_key
from tests.stack.conftest import MATTING_ENGINE, RunningStack

pytestmark = [pytest.mark.stack, pytest.mark.browser]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
NOT_AN_IMAGE = b"name,price\nbottle,12.50\n"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("chromium is required in CI (.ci/run installs it with apt)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    configured = os.environ.get("LIGHTBOX_SCREENSHOTS")
    path = Path(configured) if configured else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def key(sqlite_stack: RunningStack) -> Key:
    return make_key(sqlite_stack, credits=500)


def wait_js(page: Page, expression: str, timeout: float = 60.0) -> None:
    """Poll a JavaScript expression until it is truthy. Playwright's wait_for_function
    re-evaluates a string with eval() in the page, which the studio's Content-Security-
    Policy (rightly) forbids: it fails as soon as the first check is false. evaluate()
    runs through the DevTools protocol, which the policy does not cover."""
    deadline = time.monotonic() + timeout
    guarded = f"(() => {{ try {{ return !!({expression}); }} catch (e) {{ return false; }} }})()"
    while not page.evaluate(guarded):
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout:.0f} s: {expression}")
        time.sleep(0.1)


def assert_fits(page: Page, width: int) -> None:
    """Nothing wider than the screen: no sideways scrolling; names what sticks out."""
    wide = page.evaluate(
        """(w) => [...document.querySelectorAll('body *')]
            .filter(e => e.getBoundingClientRect().right > w + 1
                || (e.scrollWidth > w + 1 && getComputedStyle(e).overflowX === "visible"))
            .slice(0, 14)
            .map(e => [e.tagName, e.className, Math.round(e.getBoundingClientRect().right),
                       e.scrollWidth])""",
        width,
    )
    scroll = page.evaluate("document.documentElement.scrollWidth")
    assert scroll <= width, f"page {scroll} px wide; sticking out: {wide}"


def sample_photo(folder: Path, product: str, backdrop: str, size: tuple[int, int]) -> Path:
    sample = make_sample(product, backdrop, size=size)  # type: ignore[arg-type]
    path = folder / f"{product}.jpg"
    buf = io.BytesIO()
    Image.fromarray(sample.rgb).save(buf, "JPEG", quality=90)
    path.write_bytes(buf.getvalue())
    return path


@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sample_photo(tmp_path_factory.mktemp("photos"), "bottle", "plain", (480, 400))


@pytest.fixture(scope="module")
def second_photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sample_photo(tmp_path_factory.mktemp("photos"), "mug", "wood", (360, 400))


def offline_page(
    browser: Browser, stack: RunningStack, viewport: dict[str, int]
) -> tuple[Page, list[str], list[str]]:
    """A fresh page that may reach the stack's origin only; returns it and the list
    of requests that tried to go elsewhere (blocked)."""
    context = browser.new_context(viewport=viewport)
    blocked: list[str] = []
    errors: list[str] = []

    def route(r: Route) -> None:
        url = r.request.url
        if url.startswith(stack.url + "/") or url.startswith(("data:", "blob:")):
            r.continue_()
        else:
            blocked.append(url)
            r.abort()

    context.route("**/*", route)
    page = context.new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return page, blocked, errors


def enter_key(page: Page, stack: RunningStack, key: Key) -> bool:
    """Opens the studio and saves `key`; returns whether the dev key was offered."""
    page.goto(stack.url + "/")
    page.wait_for_selector("#key-panel:not([hidden])")
    offered = page.is_visible("#dev-key")
    page.fill("#key-input", key.key)
    page.click("#key-form button[type=submit]")
    page.wait_for_selector("#op-product-photo:checked")
    wait_js(page, "document.querySelector('#balance').textContent !== ''")
    return bool(offered)


def finished_card(page: Page, timeout_ms: int = 90_000) -> Locator:
    card = page.locator(".job").first
    card.locator(".status-completed, .status-failed, .status-rejected").wait_for(timeout=timeout_ms)
    return card


def test_product_photo_in_the_studio(
    browser: Browser, sqlite_stack: RunningStack, key: Key, photo: Path, shots: Path
) -> None:
    page, blocked, errors = offline_page(browser, sqlite_stack, DESKTOP)
    # Local mode, loopback: the page offers this machine's dev key too.
    assert enter_key(page, sqlite_stack, key)
    # Operations whose model is missing are shown, disabled, with the install hint.
    restore = page.locator("#op-restore-face")
    assert restore.is_disabled()
    hint = page.locator(".op:has(#op-restore-face) .install")
    hint.locator("summary").click()
    assert "lightbox models install face_codeformer" in hint.inner_text()
    assert page.locator(".preset img").count() >= 10

    page.set_input_files("#file-input", str(photo))
    page.locator("#input-list li").wait_for()
    page.fill('[name="x"]', "40")
    assert "centre 40 %" in page.inner_text(".placement-figure figcaption")
    page.locator(".presets").evaluate("el => el.scrollIntoView({block: 'start'})")
    page.screenshot(path=shots / "studio-desktop-settings.png")

    page.click("#run")
    card = finished_card(page)
    assert card.get_attribute("data-state") == "completed", card.inner_text()
    wait_js(page, "document.querySelector('.job img.after').naturalWidth > 0")
    engines = card.locator(".engines").inner_text()
    assert "matting" in engines and MATTING_ENGINE in engines, engines
    assert "background" in engines
    assert "7 credits" in card.locator(".facts").inner_text()
    assert card.locator("a[download]").get_attribute("href").startswith(sqlite_stack.url)
    card.locator(".compare-range input").fill("30")
    card.locator(".zoom button[aria-label='Zoom in']").click()
    assert card.locator(".zoom output").inner_text() == "1.5×"
    card.locator(".zoom button[aria-label='Zoom out']").click()
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=shots / "studio-desktop-result.png")
    assert blocked == [] and errors == [], (blocked, errors)
    page.context.close()


def test_remove_object_with_a_painted_mask(
    browser: Browser, sqlite_stack: RunningStack, key: Key, photo: Path, shots: Path
) -> None:
    page, blocked, errors = offline_page(browser, sqlite_stack, DESKTOP)
    enter_key(page, sqlite_stack, key)
    page.set_input_files("#file-input", str(photo))
    page.click("label[for=op-remove-object]")
    overlay = page.locator(".mask-overlay")
    overlay.wait_for()
    wait_js(page, "document.querySelector('.mask-overlay').width === 480")
    # The operation list is long enough (media operations too) to push the canvas
    # below the fold: the mouse can only paint what is on screen.
    overlay.scroll_into_view_if_needed()
    box = overlay.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.45, box["y"] + box["height"] * 0.3)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.55, box["y"] + box["height"] * 0.6, steps=8)
    page.mouse.up()
    page.mouse.move(box["x"] + box["width"] * 0.2, box["y"] + box["height"] * 0.2)
    page.mouse.down()
    page.mouse.up()
    assert "2 strokes" in page.inner_text(".mask-painter")
    page.click("text=Undo stroke")
    assert "1 stroke painted" in page.inner_text(".mask-painter")
    page.screenshot(path=shots / "studio-desktop-mask.png")

    page.click("#run")
    card = finished_card(page)
    assert card.get_attribute("data-state") == "completed", card.inner_text()
    wait_js(page, "document.querySelector('.job img.after').naturalWidth > 0")
    assert "inpaint" in card.locator(".engines").inner_text()
    # The job got the mask as a file of the photo's size (a wrong size is a 422).
    job_id = card.get_attribute("data-job-id")
    r = requests.get(f"{sqlite_stack.url}/v1/image/{job_id}", headers=key.headers, timeout=10)
    assert r.json()["parameters"].get("has_mask") is True, r.json()
    assert blocked == [] and errors == [], (blocked, errors)
    page.context.close()


def test_a_non_image_upload_shows_the_api_error(
    browser: Browser, sqlite_stack: RunningStack, key: Key, shots: Path
) -> None:
    direct = requests.post(
        f"{sqlite_stack.url}/v1/image/remove-background",
        headers=key.headers,
        files={"image": ("prices.csv", NOT_AN_IMAGE, "text/csv")},
        timeout=30,
    )
    assert direct.status_code == 400 and error_of(direct) == "invalid_image"
    detail = direct.json()["detail"]

    page, blocked, errors = offline_page(browser, sqlite_stack, DESKTOP)
    enter_key(page, sqlite_stack, key)
    page.set_input_files(
        "#file-input",
        files=[{"name": "prices.csv", "mimeType": "text/csv", "buffer": NOT_AN_IMAGE}],
    )
    page.click("label[for=op-remove-background]")
    page.click("#run")
    card = finished_card(page)
    assert card.get_attribute("data-state") == "rejected"
    alert = card.locator("[role=alert]")
    assert alert.locator(".error-message").inner_text() == detail["message"]
    assert alert.locator(".error-guidance").inner_text() == detail["guidance"]
    assert "invalid_image" in alert.inner_text() and "HTTP 400" in alert.inner_text()
    page.screenshot(path=shots / "studio-desktop-error.png")
    assert blocked == [] and errors == [], (blocked, errors)
    page.context.close()


def test_phone_width_batch_and_history(
    browser: Browser,
    sqlite_stack: RunningStack,
    key: Key,
    photo: Path,
    second_photo: Path,
    shots: Path,
) -> None:
    page, blocked, errors = offline_page(browser, sqlite_stack, PHONE)
    enter_key(page, sqlite_stack, key)
    page.screenshot(path=shots / "studio-phone-start.png")
    # Nothing wider than the screen: no sideways scrolling on a phone.
    assert_fits(page, PHONE["width"])
    # Two photos, one job at a time: a batch with its progress summary.
    page.set_input_files("#file-input", [str(photo), str(second_photo)])
    page.fill("#concurrency", "1")
    assert "on 2 photos · 14 credits" in page.inner_text("#run")
    page.click("#run")
    page.locator(".job .status-completed").nth(1).wait_for(timeout=90_000)
    summary = page.inner_text("#batch-summary")
    assert summary == "Batch of 2: 2 done, 0 running, 0 waiting, 0 failed", summary
    wait_js(page, "[...document.querySelectorAll('.job img.after')].every(i => i.naturalWidth > 0)")
    assert_fits(page, PHONE["width"])
    card = page.locator(".job").first
    card.scroll_into_view_if_needed()
    page.screenshot(path=shots / "studio-phone-result.png")

    page.click("#tab-history")
    page.locator(".history-item").first.wait_for()
    items = page.locator(".history-item")
    assert items.count() >= 2  # this key's jobs, newest first
    assert "completed" in items.first.inner_text()
    wait_js(page, "document.querySelector('.history-item img').naturalWidth > 0")
    assert "credits" in page.inner_text("#balance")
    page.screenshot(path=shots / "studio-phone-history.png")
    assert blocked == [] and errors == [], (blocked, errors)
    page.context.close()


def test_media_operations_show_the_api_guidance(
    browser: Browser,
    sqlite_stack: RunningStack,
    key: Key,
    photo: Path,
    second_photo: Path,
    shots: Path,
) -> None:
    # The players may load the signed output links from this origin, nothing else.
    csp = requests.get(sqlite_stack.url + "/", timeout=10).headers["Content-Security-Policy"]
    assert "media-src 'self';" in csp, csp
    # What the API itself answers, for comparison with what the page shows.
    audio = requests.post(
        f"{sqlite_stack.url}/v1/audio/generate",
        headers=key.headers,
        json={"prompt": "calm piano", "duration": 5},
        timeout=30,
    )
    assert audio.status_code == 503 and error_of(audio) == "model_unavailable", audio.text
    models = requests.get(f"{sqlite_stack.url}/v1/models", headers=key.headers, timeout=10).json()
    (musicgen,) = [o for o in models["operations"] if o["operation"] == "audio-generate"]
    hint = musicgen["stages"][0]["engines"][0]["install"]
    assert not musicgen["available"] and hint, musicgen

    page, blocked, errors = offline_page(browser, sqlite_stack, DESKTOP)
    enter_key(page, sqlite_stack, key)
    for op in ("audio-generate", "video-generate", "virtual-tryon"):
        assert page.locator(f"#op-{op}").is_enabled(), op

    # Audio: no photos, a prompt and a duration; the default stack has no MusicGen.
    page.click("label[for=op-audio-generate]")
    assert page.locator("#inputs-panel").is_hidden()
    # The catalog's install hint up front, as for the image operations.
    assert "not installed" in page.inner_text("#op-notice")
    assert hint in page.inner_text("#op-notice")
    page.fill('[name="prompt"]', "calm piano over soft rain")
    page.fill('[name="duration"]', "12.5")
    page.click("#run")
    card = finished_card(page)
    assert card.get_attribute("data-state") == "rejected", card.inner_text()
    alert = card.locator("[role=alert]")
    assert alert.locator(".error-guidance").inner_text() == audio.json()["detail"]["guidance"]
    assert "model_unavailable" in alert.inner_text() and "HTTP 503" in alert.inner_text()

    # Try-on: two photos picked as files (base64 in the JSON), a landscape person photo.
    page.click("label[for=op-virtual-tryon]")
    assert page.is_disabled("#run")
    page.set_input_files('[name="person_image"]', str(photo))  # 480x400: landscape
    page.set_input_files('[name="garment_image"]', str(second_photo))
    page.select_option('[name="category"]', "upperbody")
    wait_js(page, "!document.querySelector('#run').disabled")
    page.click("#run")
    wait_js(page, "document.querySelectorAll('.job').length === 2")
    card = finished_card(page)
    assert card.get_attribute("data-state") == "rejected", card.inner_text()
    alert = card.locator("[role=alert]")
    assert "wrong_aspect_ratio" in alert.inner_text() and "HTTP 422" in alert.inner_text()
    assert "480x400" in alert.locator(".error-message").inner_text()
    assert "taller than it is wide" in alert.locator(".error-guidance").inner_text()
    assert page.get_attribute('[name="person_image"]', "aria-invalid") == "true"
    # The try-on form beside both answers (the results column stays in view).
    page.locator("section:has(#settings-title)").evaluate("el => el.scrollIntoView()")
    page.screenshot(path=shots / "studio-desktop-media.png")
    page.set_viewport_size(PHONE)
    assert_fits(page, PHONE["width"])
    assert blocked == [] and errors == [], (blocked, errors)
    page.context.close()


def test_docs_render_offline(browser: Browser, sqlite_stack: RunningStack, shots: Path) -> None:
    page, blocked, errors = offline_page(browser, sqlite_stack, DESKTOP)
    page.goto(sqlite_stack.url + "/docs")
    page.locator(".opblock").first.wait_for(timeout=30_000)
    assert page.locator(".opblock").count() >= 20
    assert page.locator('[data-path="/v1/image/product-photo"]').first.is_visible()
    page.screenshot(path=shots / "docs-offline.png")
    assert blocked == [] and errors == [], (blocked, errors)
    page.context.close()
