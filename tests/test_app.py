"""`symdpo app` in a real browser: Debian's Chromium, headless, driven by Playwright (no browser download).

The app starts on localhost with the offline tiny presets; the test adds two demonstrations and a query,
runs the comparison and checks the page shows both models' answers (with real and blank demonstration
images), then checks the messages for a missing query image, a file that is no image and an unknown model.
A screenshot of the comparison is saved beside the test's files. `make test` installs Chromium; without it
this test fails (it is never skipped).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    port = _port()
    log = tmp_path_factory.mktemp("app") / "server.log"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONWARNINGS": "ignore"}
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "symdpo", "app", "--port", str(port)], env=env, cwd=ROOT,
                                stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 180
    while time.time() < deadline:
        assert proc.poll() is None, f"the app exited: {log.read_text()[-3000:]}"
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            time.sleep(0.5)
    else:
        raise AssertionError(f"the app did not answer on {url}: {log.read_text()[-3000:]}")
    yield url
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def page(app_url):
    from playwright.sync_api import sync_playwright

    assert CHROMIUM, "Debian's chromium is not installed; `make test` installs it (apt-get install chromium)"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1400, "height": 1200})
        yield page
        browser.close()


def _files(tmp_path: Path) -> list[Path]:
    colours = [(220, 30, 30), (30, 30, 220), (220, 40, 40)]
    paths = []
    for i, c in enumerate(colours):
        p = tmp_path / f"img{i}.png"
        Image.new("RGB", (64, 64), c).save(p)
        paths.append(p)
    return paths


def _fill(page, elem: str, text: str) -> None:
    page.locator(f"#{elem}").locator("textarea, input").first.fill(text)


def _upload(page, elem: str, path: Path) -> None:
    """Upload one file into a gradio File box; return once the server has it and the box lists its name."""
    with page.expect_response(lambda r: "/upload" in r.url and r.request.method == "POST", timeout=60000):
        page.locator(f"#{elem} input[type=file]").set_input_files(str(path))
    # gradio's file preview labels each row with the original name (the visible text is split in stem/ext spans)
    page.locator(f'#{elem} [aria-label="{path.name}"]').first.wait_for(timeout=60000)


def _compare(page) -> str:
    """Click Compare; return the result's text once it holds the table or a message (not the progress timer)."""
    page.click("#compare")
    page.wait_for_function("() => { const t = (document.querySelector('#result') || {}).innerText || '';"
                           " return t.includes('demonstration images') || t.includes('Cannot compare')"
                           " || t.includes('went wrong'); }", timeout=180000)
    return page.locator("#result").inner_text()


def test_two_models_compared_on_two_demonstrations_in_the_browser(page, app_url, tmp_path):
    red, blue, query = _files(tmp_path)
    page.goto(app_url)
    _upload(page, "demo-image-1", red)
    _fill(page, "demo-question-1", "what color is the shape?")
    _fill(page, "demo-answer-1", "red")
    _upload(page, "demo-image-2", blue)
    _fill(page, "demo-question-2", "what color is the shape?")
    _fill(page, "demo-answer-2", "blue")
    _upload(page, "query-image", query)
    _fill(page, "query-question", "what color is the shape?")
    text = _compare(page)
    for model in ("tiny-easyvqa", "tiny"):
        for condition in ("real", "blank"):
            assert any(line.split("\t")[:2] == [model, condition] or line.startswith(f"{model}\t{condition}")
                       for line in text.splitlines()), text
    assert "red:" in text and "blue:" in text  # each demonstration answer's score
    page.locator("#png").get_by_text(".png").first.wait_for(timeout=30000)  # the PNG to save
    page.screenshot(path=str(tmp_path / "app-comparison.png"), full_page=True)
    assert (tmp_path / "app-comparison.png").stat().st_size > 10_000


@pytest.mark.parametrize("case, message", [
    ("no query image", "the query needs an image"),
    ("not an image", "is not an image file"),
    ("unknown model", "unknown model 'no-such-model'"),
])
def test_bad_input_shows_a_message_on_the_page(page, app_url, tmp_path, case, message):
    red, blue, query = _files(tmp_path)
    page.goto(app_url)
    demo = red
    if case == "not an image":
        demo = tmp_path / "notes.txt"
        demo.write_text("not a picture")
    _upload(page, "demo-image-1", demo)
    _fill(page, "demo-question-1", "what color is the shape?")
    _fill(page, "demo-answer-1", "red")
    if case != "no query image":
        _upload(page, "query-image", query)
    _fill(page, "query-question", "what color is the shape?")
    if case == "unknown model":
        box = page.locator("#model-a input").first
        box.fill("no-such-model")
        box.press("Enter")
    text = _compare(page)
    assert message in text and "Traceback" not in page.content(), text
