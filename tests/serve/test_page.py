"""The page in a real browser: Debian's headless chromium driven by Playwright's Python API.

Playwright's own browser download cannot work here (no internet), so the test launches the
system chromium by `executable_path`. It asks a question, sees the answer arrive while the
stream is still open, clicks a citation chip and checks the passage shows with the cited text
highlighted; then Stop, the refusal look, untrusted HTML shown as text, the key field, Chinese.
It skips only where no Debian chromium can exist (not a Linux with apt-get); on Debian without
/usr/bin/chromium it fails and says how to install it (.ci/run does, before `make test`).
"""

from __future__ import annotations

import re
import shutil
import sys
import threading
from pathlib import Path

import pytest

from ragkit.generate.base import StopScanner
from ragkit.types import Completion

from .conftest import FakeGenerator
from .test_concurrency import wait_until

pytestmark = pytest.mark.browser
CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        if sys.platform.startswith("linux") and shutil.which("apt-get"):
            pytest.fail("/usr/bin/chromium is missing: apt-get update && apt-get install -y chromium (.ci/run does)")
        pytest.skip("no Debian chromium can exist on this system (not a Linux with apt-get)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS, headless=True)
        yield b
        b.close()


class PausingGenerator(FakeGenerator):
    """Streams `reply` word by word and waits on `pause` after the first `pause_after` words."""

    def __init__(self, reply, pause_after=3):
        super().__init__(reply)
        self.pause, self.pause_after = threading.Event(), pause_after

    def generate(self, prompt, decoding, on_token=None):
        self.prompts.append(prompt)
        scanner = StopScanner(decoding.stop, on_token)
        words = re.findall(r"\s*\S+", self.reply)
        for i, w in enumerate(words):
            if i == self.pause_after:
                assert self.pause.wait(20), "test never released the generator"
            try:
                scanner.feed(w)
            except Exception:
                self.cancelled.append(i)
                raise
        return Completion(scanner.finish(), 10, len(words), 1.0, 5.0, "stop")


def expect(locator):
    from playwright.sync_api import expect as pw_expect

    return pw_expect(locator)


def open_page(browser, srv):
    page = browser.new_page(viewport={"width": 1100, "height": 760})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(srv.url + "/")  # under the page's own CSP: waits use locators, never string eval
    return page, errors


def test_ask_stream_cite_and_read_the_passage(browser, serve):
    gen = PausingGenerator("The Falcon X2 warranty is 24 months [1].")
    srv = serve(generator=gen)
    page, errors = open_page(browser, srv)
    page.wait_for_selector("#index option", state="attached")
    page.fill("#question", "How long is the Falcon X2 warranty?")
    page.click("#ask")
    expect(page.locator("#answer")).to_contain_text("Falcon X2")
    assert page.is_enabled("#stop") and page.text_content("#answer").strip() == "The Falcon X2"  # mid-stream
    gen.pause.set()
    expect(page.locator("#sources li").first).to_be_attached()
    assert page.text_content("#answer") == "The Falcon X2 warranty is 24 months 1."  # the marker is a chip
    assert page.is_disabled("#stop")
    chip = page.locator("#answer .chip")
    assert chip.count() == 1 and chip.text_content() == "1"
    assert "retrieval" in page.text_content("#latency") and "first token" in page.text_content("#latency")
    assert not page.is_visible("#passage")
    chip.click()
    assert page.is_visible("#passage")
    meta = page.text_content("#passage-meta")
    assert re.search(r"\[1\] \S+ · chars \d+–\d+ · score 0\.\d{3}", meta), meta
    assert "24 months" in page.text_content("#passage-text mark")
    assert "refused" not in page.get_attribute("#answer-card", "class")
    assert errors == []


def test_stop_cancels_the_generation(browser, serve):
    gen = PausingGenerator("one two three four five six seven", pause_after=2)
    srv = serve(generator=gen)
    page, _ = open_page(browser, srv)
    page.wait_for_selector("#index option", state="attached")
    page.fill("#question", "Falcon X2 warranty?")
    page.click("#ask")
    expect(page.locator("#answer")).to_contain_text("two")
    page.click("#stop")
    expect(page.locator("#status")).to_have_text("Stopped")
    slot = next(iter(srv.server.config.app.state.slots.values()))
    wait_until(lambda: slot.cancel_requests == 1)  # the server saw the browser drop the stream
    gen.pause.set()  # the next token meets the cancelled request and stops the generator
    wait_until(lambda: gen.cancelled)
    assert gen.cancelled == [2]
    assert page.is_enabled("#ask") and page.text_content("#answer") == "one two"


def test_refusal_untrusted_html_key_and_chinese(browser, serve):
    gen = FakeGenerator("I don't know.")
    srv = serve(generator=gen, api_key="page-key")
    page, errors = open_page(browser, srv)
    expect(page.locator("#status")).to_contain_text("API key")
    page.fill("#key", "page-key")
    page.dispatch_event("#key", "change")
    page.wait_for_selector("#index option", state="attached")
    assert page.evaluate("sessionStorage.getItem('ragkit-key')") == "page-key"
    page.fill("#question", "Where do service note claims go?")
    page.click("#ask")
    expect(page.locator("#sources li").first).to_be_attached()
    assert "refused" in page.get_attribute("#answer-card", "class")
    assert page.is_visible("#refused-label") and page.text_content("#refused-label") == "Not in the documents"
    assert page.text_content("#answer").startswith("I don't know")
    row = page.locator("#sources li", has_text="notes.txt")
    row.locator(".chip").click()
    text = page.text_content("#passage-text")
    assert '<img src=x onerror="window.__pwned=1"><b>bold</b>' in text  # shown as text, not markup
    assert page.locator("#passage-text img, #passage-text b").count() == 0
    assert page.evaluate("window.__pwned") is None
    page.click("#lang")
    assert page.text_content("#ask") == "提问" and page.text_content("#refused-label") == "文档中没有答案"
    assert "检索" in page.text_content("#latency")
    assert errors == []
