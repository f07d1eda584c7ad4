"""The server's web page in a real headless Chromium: Debian's chromium and
chromium-driver (scripts/test.sh installs them), driven by Selenium. Typing a
sentence shows its translation and the attention heatmap; an LM checkpoint
shows the prompt form and continues the prompt. Skips, saying why, only when
the browser or its driver is not installed."""

from __future__ import annotations

import contextlib
import json
import shutil
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import uvicorn

from nmt.inference.loading import load_generator, load_translator
from nmt.search import BeamConfig
from nmt.serve import listen
from nmt.serving.app import create_app
from nmt.serving.engines import GenerationEngine, TranslationEngine
from nmt.serving.limits import Limits

CPU = torch.device("cpu")
WAIT = 30  # seconds for the page to answer (a tiny model answers in milliseconds)
# what the headless browser must not do on a machine without internet
CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",  # tests run as root (CI)
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1200,900",
]


def find_browser() -> tuple[str, str]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        missing = [
            n for n, p in (("chromium", chromium), ("chromedriver", driver)) if not p
        ]
        pytest.skip(
            f"{' and '.join(missing)} not installed: scripts/test.sh installs Debian's "
            "chromium and chromium-driver (as root: apt-get install chromium "
            "chromium-driver)"
        )
    return chromium, driver


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    chromium, driver = find_browser()
    webdriver = pytest.importorskip(
        "selenium.webdriver", reason="selenium not installed (the dev extra has it)"
    )
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium')}")
    # a driver path given here: Selenium does not look for (or download) one
    service = webdriver.ChromeService(executable_path=driver)
    chrome = webdriver.Chrome(options=options, service=service)
    chrome.set_page_load_timeout(WAIT)
    yield chrome
    chrome.quit()


@contextlib.contextmanager
def live_server(engine) -> Iterator[str]:
    """The app served by uvicorn in a thread on 127.0.0.1; yields its URL."""
    sock = listen("127.0.0.1", 0)
    config = uvicorn.Config(create_app(engine, Limits()), log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]})
    thread.start()
    try:
        deadline = time.monotonic() + WAIT
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive()
            time.sleep(0.05)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(WAIT)
        sock.close()


def wait_for(browser, css: str, check=lambda elements: bool(elements)):
    """The elements matching `css` once `check` accepts them."""
    from selenium.webdriver.common.by import By

    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        elements = browser.find_elements(By.CSS_SELECTOR, css)
        if check(elements):
            return elements
        time.sleep(0.05)
    error = browser.find_element(By.ID, "error").text
    pytest.fail(f"{css} did not appear; the page says: {error!r}")


def fill(browser, element_id: str, text: str) -> None:
    from selenium.webdriver.common.by import By

    box = browser.find_element(By.ID, element_id)
    box.clear()
    box.send_keys(text)


def test_page_translates_a_sentence_and_draws_its_attention(
    browser, tiny_checkpoint, tmp_path
):
    from selenium.webdriver.common.by import By

    translator, cfg = load_translator(tiny_checkpoint, device=CPU, precision="fp32")
    engine = TranslationEngine(
        translator, cfg, path=str(tiny_checkpoint), defaults=BeamConfig(beam_size=3)
    )
    sentence = "ein mann fährt fahrrad ."
    with live_server(engine) as url:
        browser.get(url + "/")
        wait_for(browser, "#translate-panel", lambda e: e and e[0].is_displayed())
        assert "de → en" in browser.find_element(By.ID, "model").text
        fill(browser, "source", sentence)
        fill(browser, "beam", "2")
        browser.find_element(By.ID, "translate").click()
        (shown,) = wait_for(browser, ".translation")
        rows = wait_for(browser, "table.heatmap tbody tr")
        heads = browser.find_elements(By.CSS_SELECTOR, "table.heatmap thead th")
        cells = browser.find_elements(By.CSS_SELECTOR, "table.heatmap td")
        browser.save_screenshot(str(tmp_path / "page.png"))
        request = urllib.request.Request(
            url + "/translate",
            data=json.dumps({"text": sentence, "beam": 2, "attention": True}).encode(),
        )
        with urllib.request.urlopen(request, timeout=WAIT) as answer:
            (expected,) = json.load(answer)["results"]
    attention = expected["attention"]
    assert shown.text == expected["translation"].strip()
    assert len(rows) == len(attention["tgt_tokens"]) > 0
    assert len(heads) == len(attention["src_tokens"]) + 1  # + the corner
    assert len(cells) == len(attention["tgt_tokens"]) * len(attention["src_tokens"])
    assert Path(tmp_path / "page.png").stat().st_size > 0


def test_page_continues_a_prompt_for_an_lm(browser, tiny_lm_checkpoint):
    from selenium.webdriver.common.by import By

    generator, cfg = load_generator(tiny_lm_checkpoint, device=CPU, precision="fp32")
    engine = GenerationEngine(generator, cfg, path=str(tiny_lm_checkpoint))
    with live_server(engine) as url:
        browser.get(url + "/")
        wait_for(browser, "#generate-panel", lambda e: e and e[0].is_displayed())
        assert not browser.find_element(By.ID, "translate-panel").is_displayed()
        fill(browser, "prompt", "ROMEO:")
        fill(browser, "max-chars", "20")
        fill(browser, "seed", "5")
        browser.find_element(By.ID, "generate").click()
        (shown,) = wait_for(
            browser, "#continuation", lambda e: e and e[0].text.startswith("ROMEO:")
        )
        assert "seed 5" in browser.find_element(By.ID, "seed-used").text
    assert len(shown.text) > len("ROMEO:")
