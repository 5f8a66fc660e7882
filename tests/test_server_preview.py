"""The live preview page in a real headless Chromium (Debian's, driven by playwright).

Skipped when Chromium or playwright is not installed. With ``CLIPASSO_UPDATE_DOCS=1`` the page's
picture is saved for the README as docs/preview.png (else into the test's temporary folder, so
a test run leaves the checkout as it was).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from test_server import LONG, engine, photo, start_long_job, wait_for  # noqa: F401  (fixtures)

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
DOCS_SCREENSHOT = Path(__file__).parents[1] / "docs" / "preview.png"


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def test_page_shows_running_job_and_cancels_it(browser, engine, photo, tmp_path):
    job = engine.post_job(photo, dict(LONG, iterations=2000, strokes=16, saliency=True, seed=301)).json()["id"]
    wait_for(lambda: engine.get(f"/v1/jobs/{job}?preview=false").json()["iteration"] >= 1)
    page = browser.new_page(viewport={"width": 1100, "height": 640})
    page.goto(f"{engine.url}/#token={engine.token}")

    # the token moves from the fragment into localStorage; the address bar keeps no secret
    page.wait_for_function("() => location.hash === '' && localStorage.getItem('clipasso.token') !== null")
    page.wait_for_selector(f"tr[data-id='{job}'] .state.running")
    assert page.text_content("#job-id") == job[:8]

    # the sketch is drawn from the preview SVG and redrawn as the job improves
    page.wait_for_function("() => { const i = document.getElementById('preview');"
                           " return i.src.startsWith('blob:') && i.complete && i.naturalWidth > 0; }")
    first_src, first_iteration = page.get_attribute("#preview", "src"), _iteration(page)
    page.wait_for_function("src => document.getElementById('preview').src !== src", arg=first_src, timeout=30000)
    wait_for(lambda: _iteration(page) > first_iteration, timeout=30)
    assert page.eval_on_selector("#progress", "p => p.value") > 0
    assert page.text_content("#loss") != "–"
    assert page.text_content("#score") == "–"                # no result yet, so no CLIP score
    assert page.text_content("#eta").endswith(("s", "min"))
    assert page.text_content("#state") == "running"
    screenshot = DOCS_SCREENSHOT if os.environ.get("CLIPASSO_UPDATE_DOCS") == "1" else tmp_path / "preview.png"
    page.screenshot(path=str(screenshot))
    assert screenshot.stat().st_size > 10_000

    page.click("#cancel")
    page.wait_for_function("() => document.getElementById('state').textContent === 'cancelled'", timeout=30000)
    status = engine.get(f"/v1/jobs/{job}?preview=false").json()
    assert status["state"] == "cancelled"
    assert page.is_disabled("#cancel")
    # the best strokes so far are a result: their CLIP score is shown
    assert -1 <= status["clip_score"] <= 1
    page.wait_for_function("s => document.getElementById('score').textContent === s", arg=f"{status['clip_score']:.4f}")
    page.close()


def test_page_asks_for_the_token(browser, engine, photo):
    job = start_long_job(engine, photo, seed=302)
    page = browser.new_page()
    page.goto(engine.url + "/")
    page.wait_for_selector("#token-form:not([hidden])")
    page.fill("#token-input", "wrong")
    page.click("#token-form button")
    page.wait_for_function("() => document.getElementById('token-why').textContent.includes('refused')")
    page.fill("#token-input", engine.token)
    page.click("#token-form button")
    page.wait_for_selector(f"tr[data-id='{job}']")
    assert page.is_hidden("#token-form")
    page.click(f"tr[data-id='{job}']")
    page.wait_for_function(f"() => document.getElementById('job-id').textContent === '{job[:8]}'")
    page.click("#cancel")
    wait_for(lambda: engine.get(f"/v1/jobs/{job}?preview=false").json()["state"] == "cancelled", timeout=30)
    page.close()


def test_extension_launcher_file_opens_the_page_with_the_token(browser, engine, tmp_path, monkeypatch):
    """The extension opens the browser on a private file (the token stays out of command lines),
    which forwards to the page with the token in the fragment."""
    import importlib
    import sys
    from types import SimpleNamespace

    from extension_support import import_extension_modules

    import_extension_modules()
    monkeypatch.setitem(sys.modules, "clipasso_client", importlib.import_module("clipasso_engine.client"))
    common = importlib.import_module("clipasso_common")
    config = common.Config(str(tmp_path / "config"), {})
    launcher = common.write_preview_launcher(config, SimpleNamespace(url=engine.url, token=engine.token))
    page = browser.new_page()
    page.goto(Path(launcher).as_uri())
    page.wait_for_url(engine.url + "/**")
    page.wait_for_function("() => location.hash === '' && localStorage.getItem('clipasso.token') !== null")
    assert page.evaluate("() => localStorage.getItem('clipasso.token')") == engine.token
    assert page.is_hidden("#token-form")
    page.close()


def _iteration(page) -> int:
    text = page.text_content("#iteration") or "0 /"
    return int(text.split("/")[0].strip() or 0)
