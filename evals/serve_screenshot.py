"""A screenshot of `ragkit serve`'s page: a knowledge base filled from the page and a conversation.

Starts `ragkit serve --data-dir TMP` on a free loopback port with a real model (smollm2-135m by
default), and in headless Debian chromium (Playwright, executable_path=/usr/bin/chromium) creates
a knowledge base, uploads sample files through the page's file input (one Chinese), waits for the
ingest, asks a question and a follow-up, opens the first citation and saves the page as a PNG
(evals/results/serve/page.png). With --index it asks over that index instead (no upload). Stops
the server at the end.

    .venv/bin/python evals/serve_screenshot.py
    .venv/bin/python evals/serve_screenshot.py --index DIR --question "隼鸟客服热线是多少？" --lang zh --out /tmp/zh.png
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--index", default=None)
    ap.add_argument("--files", nargs="*", default=[str(ROOT / "data/corpus/en/kestrel-care-plus.docx"),
                                                   str(ROOT / "data/corpus/en/faq.md"),
                                                   str(ROOT / "data/corpus/zh/returns-policy.txt")])
    ap.add_argument("--question", default="How long is the main unit covered under Kestrel Care+?")
    ap.add_argument("--follow-up", default="And the battery?")
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--lang", choices=["en", "zh"], default="en")
    ap.add_argument("--out", default=str(ROOT / "evals" / "results" / "serve" / "page.png"))
    args = ap.parse_args()

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    data = tempfile.mkdtemp(prefix="ragkit-shot-")
    where = ["--index", args.index] if args.index else ["--data-dir", data]
    proc = subprocess.Popen([sys.executable, "-c", "from ragkit.cli import main; main()", "serve", *where,
                             "--model", args.model, "--port", str(port), "--max-tokens", "32",
                             "--log-level", "warning"], env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        for _ in range(360):
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.5)
        else:
            raise SystemExit("ragkit serve did not come up")
        shoot(url, args)
    finally:
        proc.terminate()
        proc.wait(15)
        shutil.rmtree(data, ignore_errors=True)


def shoot(url: str, args) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS, headless=True)
        page = browser.new_page(viewport={"width": 1320, "height": 980})
        page.goto(url + "/")
        if args.lang == "zh":
            page.click("#lang")
        if not args.index:
            page.fill("#kb-name", "kestrel-docs")
            page.click("#kb-create")
            expect(page.locator("#kb-current")).to_have_text("kestrel-docs")
            page.set_input_files("#file-input", args.files)
            expect(page.locator("#job-status")).to_have_text(re.compile("^(Indexed|已索引)$"), timeout=300_000)
        page.wait_for_selector("#index option", state="attached")
        for question in [args.question, args.follow_up]:
            if not question:
                continue
            page.fill("#question", question)
            page.click("#ask")
            expect(page.locator("#ask")).to_be_enabled(timeout=600_000)
            print(f"Q: {question}\nA: {page.text_content('#answer')}", flush=True)
        chips = page.locator("#answer .chip")
        (chips.first if chips.count() else page.locator("#sources .chip").first).click()
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=args.out, full_page=True)
        print(f"latency: {page.text_content('#latency')}\nwrote {args.out}")
        browser.close()


if __name__ == "__main__":
    main()
