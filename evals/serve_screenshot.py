"""A screenshot of `ragkit serve`'s page answering a sample-bench question with the real model.

Starts `ragkit serve` on a free loopback port with smollm2-135m, asks one question in headless
Debian chromium (Playwright's Python API, executable_path=/usr/bin/chromium), opens the first
citation and saves the page as a PNG (evals/results/serve/page.png). Stops the server at the end.

    .venv/bin/python evals/serve_screenshot.py --index /tmp/h11-index
    .venv/bin/python evals/serve_screenshot.py --index DIR --question "隼鸟客服热线是多少？" --lang zh --out /tmp/zh.png
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--index", required=True)
    ap.add_argument("--question", default="What is the maximum suction power of the Kestrel V7 robot vacuum?")
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--lang", choices=["en", "zh"], default="en")
    ap.add_argument("--out", default=str(ROOT / "evals" / "results" / "serve" / "page.png"))
    args = ap.parse_args()

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-c", "from ragkit.cli import main; main()", "serve", "--index",
                             args.index, "--model", args.model, "--port", str(port), "--max-tokens", "32",
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


def shoot(url: str, args) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS, headless=True)
        page = browser.new_page(viewport={"width": 1100, "height": 720})
        page.goto(url + "/")
        if args.lang == "zh":
            page.click("#lang")
        page.wait_for_selector("#index option", state="attached")
        page.fill("#question", args.question)
        page.click("#ask")
        expect(page.locator("#sources li").first).to_be_attached(timeout=180_000)
        chips = page.locator("#answer .chip")
        (chips.first if chips.count() else page.locator("#sources .chip").first).click()
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=args.out)
        print(f"answer: {page.text_content('#answer')}\nlatency: {page.text_content('#latency')}\nwrote {args.out}")
        browser.close()


if __name__ == "__main__":
    main()
