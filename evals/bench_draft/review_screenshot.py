"""A screenshot of `ragkit bench review` on a drafted bench, in Debian's headless chromium.

    python evals/bench_draft/review_screenshot.py BENCH INDEX OUT.png [ITEM_ID]

Serves the review page for BENCH (passages from INDEX) on a free loopback port, opens it at
ITEM_ID (default: the first item) and saves the page as OUT.png. The bench file is not changed.
"""

from __future__ import annotations

import socket
import sys
import threading
import time
from pathlib import Path


def main(bench: str, index: str, out: str, item: str | None = None) -> None:
    import uvicorn
    from playwright.sync_api import sync_playwright

    from ragkit.benchset.records import read_records
    from ragkit.benchset.review import create_review_app, load_passages
    from ragkit.index import Index

    records = read_records(bench)
    app = create_review_app(bench, load_passages(records, Index.open(index)))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    try:
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                  args=["--headless", "--no-sandbox", "--disable-gpu"])
            page = b.new_page(viewport={"width": 1200, "height": 760})
            page.goto(f"http://127.0.0.1:{port}/")
            page.wait_for_selector("#id:not(:empty)")
            ids = [r["id"] for r in records]
            for _ in range(ids.index(item) if item in ids else 0):
                page.keyboard.press("j")
            page.wait_for_timeout(300)
            Path(out).parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=out, full_page=True)
            b.close()
    finally:
        server.should_exit = True


if __name__ == "__main__":
    main(*sys.argv[1:5])
