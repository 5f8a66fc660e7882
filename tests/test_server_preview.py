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

from engine_support import LONG, wait_for
from test_server import start_long_job

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
    # the list is drawn first, the selected job's details after their own request
    page.wait_for_function("id => document.getElementById('job-id').textContent === id", arg=job[:8])

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

    # cancelling keeps the strokes in view: the page never falls back to the "first step" line
    page.evaluate("() => { const p = document.getElementById('preview'); window.previewHidden = false;"
                  " new MutationObserver(() => { if (p.hidden) window.previewHidden = true; })"
                  ".observe(p, { attributes: true }); }")
    page.click("#cancel")
    page.wait_for_function("() => document.getElementById('state').textContent === 'cancelled'", timeout=30000)
    assert page.evaluate("() => window.previewHidden") is False
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


def test_page_shows_the_faded_photo_warns_of_random_weights_and_waits_for_the_first_step(browser, engine, photo):
    """The running job's strokes lie over its photo, faded, box on box. The session's engine
    runs random towers: the page says so, in view. A job still waiting behind another shows a
    line in place of its strokes, not the other job's picture or a broken image."""
    running = start_long_job(engine, photo, seed=303)
    queued = engine.post_job(photo, dict(LONG, seed=304)).json()["id"]
    page = browser.new_page()
    page.goto(f"{engine.url}/#token={engine.token}")
    page.wait_for_function("() => { const i = document.getElementById('preview');"
                           " return !i.hidden && i.src.startsWith('blob:'); }")   # the running job's strokes
    # over its photo, faded: the very picture that was sent (150 × 100), the size of the strokes' box
    page.wait_for_function("() => { const p = document.getElementById('photo');"
                           " return !p.hidden && p.complete && p.naturalWidth > 0; }")
    assert page.eval_on_selector("#photo", "p => [p.naturalWidth, p.naturalHeight]") == [150, 100]
    assert float(page.eval_on_selector("#photo", "p => getComputedStyle(p).opacity")) < 0.5
    photo_box, strokes_box = (page.eval_on_selector(s, "e => { const r = e.getBoundingClientRect();"
                                                       " return [r.x, r.y, r.width, r.height]; }")
                              for s in ("#photo", "#preview"))
    assert photo_box == pytest.approx(strokes_box, abs=1.5)
    page.click(f"tr[data-id='{queued}']")
    page.wait_for_function(f"() => document.getElementById('job-id').textContent === '{queued[:8]}'")
    page.wait_for_selector("#waiting", state="visible")
    assert page.is_hidden("#preview") and "first step" in page.text_content("#waiting")
    assert page.is_visible("#random-warning") and "RANDOM test weights" in page.text_content("#random-warning")
    for job in (queued, running):
        engine.client().cancel(job)
    page.close()


def test_extension_launcher_file_opens_the_page_with_the_token(browser, engine, tmp_path, monkeypatch):
    """The extension opens the browser on a private file (the token stays out of command lines),
    which forwards to the page with the token in the fragment."""
    import importlib
    from types import SimpleNamespace

    from extension_support import import_extension_modules, use_engine_modules_as_copies

    import_extension_modules()
    use_engine_modules_as_copies(monkeypatch)
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


def test_page_shows_the_drawn_regions_over_the_photo(browser, engine, photo, tmp_path):
    """A job with drawn regions: the page fetches the photo (GET /v1/jobs/{id}/image, while the
    job runs) and outlines each region in its role's colour over it."""
    subject = [[20, 10], [130, 10], [130, 90], [20, 90]]
    avoid = [[100, 60], [125, 60], [125, 85], [100, 85]]
    regions = [{"role": "subject", "polygon": subject}, {"role": "avoid", "polygon": avoid}]
    job = engine.post_job(photo, dict(LONG, seed=303, regions=regions)).json()["id"]
    wait_for(lambda: engine.get(f"/v1/jobs/{job}?preview=false").json()["iteration"] >= 1)
    status = engine.get(f"/v1/jobs/{job}").json()
    assert [r["role"] for r in status["regions"]] == ["subject", "avoid"]
    assert engine.get(f"/v1/jobs/{job}?preview=false").json()["regions"] == []
    image = engine.get(f"/v1/jobs/{job}/image")
    assert image.status_code == 200 and image.headers["content-type"] == "image/png" and image.content == photo
    assert requests_get_without_token(engine.url + f"/v1/jobs/{job}/image") == 401

    page = browser.new_page(viewport={"width": 1100, "height": 640})
    page.goto(f"{engine.url}/#token={engine.token}")
    page.click(f"tr[data-id='{job}']")
    page.wait_for_selector("#regions polygon.avoid", state="attached")
    page.wait_for_function("() => { const i = document.getElementById('photo');"
                           " return !i.hidden && i.complete && i.naturalWidth === 150; }")
    points = page.eval_on_selector_all("#regions polygon", "ps => ps.map(p => [p.getAttribute('class'), p.getAttribute('points')])")
    assert points == [["subject", "20,10 130,10 130,90 20,90"], ["avoid", "100,60 125,60 125,85 100,85"]]
    assert page.get_attribute("#regions", "viewBox") == "0 0 150 100"
    assert page.is_visible("#legend")
    # the outlines are drawn where the photo is: the subject's left edge at 20/150 of the width
    box = page.eval_on_selector("#canvas", "c => c.getBoundingClientRect().toJSON()")
    edge = page.eval_on_selector("#regions polygon.subject", "p => p.getBoundingClientRect().toJSON()")
    assert abs(edge["x"] - box["x"] - box["width"] * 20 / 150) < 3
    page.screenshot(path=str(tmp_path / "regions.png"))
    page.close()
    wait_for(lambda: _cancel(engine, job), timeout=30)
    assert engine.get(f"/v1/jobs/{job}/image").status_code == 409       # an ended job keeps no photo


def requests_get_without_token(url: str) -> int:
    import requests

    return requests.get(url, timeout=30).status_code


def _cancel(engine, job: str) -> bool:
    import requests

    requests.delete(f"{engine.url}/v1/jobs/{job}", headers=engine.headers(), timeout=30)
    return engine.get(f"/v1/jobs/{job}?preview=false").json()["state"] == "cancelled"
