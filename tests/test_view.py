"""``teich view`` in a real headless Chromium (Debian's ``chromium``, driven by Playwright), on the
shared real traces prepared with the real offline Qwen3.6 tokenizer: the served pages and the static
export. Screenshots of every page go to ``$TEICH_SCREENSHOTS`` (default ``test-artifacts/screenshots``).
Without Chromium or Playwright the browser tests skip; the data tests still run."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from model_families import family_tokenizer

from teich import audit, relabel
from teich.errors import TeichError
from teich.view import ViewData, export_site, make_server
from teich.view.site import answer

CHROMIUM = Path("/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[1]
SCREENSHOTS = Path(os.environ.get("TEICH_SCREENSHOTS", REPO / "test-artifacts" / "screenshots"))
MAX_LENGTH = 32768  # pi.jsonl (~115k tokens) is dropped as oversized


@pytest.fixture(scope="module")
def view(shared_traces: Path) -> ViewData:
    return ViewData.open(shared_traces, family_tokenizer("qwen3_6"), max_length=MAX_LENGTH)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    playwright = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.exists():
        pytest.skip("chromium is not installed (apt-get install chromium)")
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=str(CHROMIUM))
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert not errors, errors


@pytest.fixture(scope="module")
def url(view: ViewData) -> Iterator[str]:
    server = make_server(view)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def _shot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=name != "tokens")


def _trained(page: Any) -> np.ndarray:
    """Which tokens the page shows as trained, once its labels are in."""
    page.wait_for_selector("#trained-count[data-trained]")
    return np.array(page.eval_on_selector_all("#tokens > span", "spans => spans.map(s => s.classList.contains('tr'))"))


def _labels(view: ViewData, row: int, **policy: Any) -> np.ndarray:
    dataset = view.prepared.select([view.prepared_index[row]])
    return np.array((relabel(dataset, **policy) if policy else dataset)[0]["labels"]) != -100


def _reasoning(view: ViewData, row: int) -> np.ndarray:
    record = view.prepared[view.prepared_index[row]]
    mask = np.zeros(record["num_tokens"], bool)
    for span in record["spans"]:
        if span["kind"] == "reasoning":
            mask[span["token_start"] : span["token_end"]] = True
    return mask


# ---------------------------------------------------------------- data, no browser


def test_token_pieces_are_the_rendered_text(view: ViewData):
    for row in view.prepared_index:
        record = view.prepared[view.prepared_index[row]]
        tokens = view.tokens(row, bits=True)
        assert "".join(tokens["pieces"]) == record["text"]
        assert len(tokens["pieces"]) == len(tokens["kinds"]) == len(tokens["bits"]) == record["num_tokens"]


def test_dropped_row_has_its_reason_and_no_tokens(view: ViewData):
    (dropped,) = [row for row in view.index(live=True)["rows"] if row["status"] == "dropped"]
    assert dropped["format"] == "pi" and dropped["reason"].startswith("oversized:")
    with pytest.raises(TeichError, match="no tokens"):
        view.tokens(dropped["row"], bits=False)


def test_server_refuses_unknown_paths_and_flags(view: ViewData):
    with pytest.raises(FileNotFoundError):
        answer(view, "/../pyproject.toml", "")
    with pytest.raises(TeichError, match="unknown flag"):
        answer(view, "/data/labels-0.js", "train_on_everything=1")
    assert answer(view, "/data/labels-0.js", "train_on_reasoning=0")[1].startswith(b'teichData("labels-0",')


# ---------------------------------------------------------------- in the browser


def test_dataset_page_lists_every_row_and_why_one_was_dropped(page: Any, url: str, view: ViewData):
    page.goto(url)
    page.wait_for_selector("#rows tbody tr[data-row]")
    assert page.locator("#rows tbody tr[data-row]").count() == view.row_count == 7
    dropped = page.locator("#rows tbody tr.st-row-dropped")
    assert dropped.count() == 1
    assert "oversized: 114511 tokens > max_length 32768" in dropped.inner_text()
    _shot(page, "dataset")
    page.select_option("#f-status", "dropped")
    assert page.locator("#rows tbody tr[data-row]").count() == 1
    page.select_option("#f-status", "")
    page.check("#f-errors")
    with_errors = [row["row"] for row in view.index(live=True)["rows"] if row["errors"]]
    assert page.locator("#rows tbody tr[data-row]").count() == len(with_errors) == 3


def test_conversation_page_pairs_calls_with_results(page: Any, url: str):
    page.goto(f"{url}#/row/0")
    page.wait_for_selector(".conversation .msg")
    assert page.locator(".call .result").count() == 13  # claude_code: every call answered
    assert page.locator(".result.is-error").count() == 2
    assert page.locator("details.reasoning").count() > 0
    assert page.locator(".tools details.tool").count() == 23
    _shot(page, "conversation")


def test_token_page_trains_what_audit_counts_and_reasoning_toggles_exactly(page: Any, url: str, view: ViewData):
    row = 1  # codex: reasoning, answers and tool calls
    page.goto(f"{url}#/tokens/{row}")
    before = _trained(page)
    dataset = view.prepared.select([view.prepared_index[row]])
    assert before.sum() == audit(dataset).supervised
    assert (before == _labels(view, row)).all()
    _shot(page, "tokens")
    page.uncheck("input[data-flag=train_on_reasoning]")
    page.wait_for_selector("#trained-count[data-query*='train_on_reasoning=0']")
    after = _trained(page)
    changed = before != after
    assert changed.sum() == audit(dataset).supervised - audit(dataset, train_on_reasoning=False).supervised > 0
    assert (after == _labels(view, row, train_on_reasoning=False)).all()
    assert _reasoning(view, row)[changed].all()
    assert int(page.locator("#kind-counts tr[data-kind=reasoning] .trained").inner_text()) == 0


def test_static_export_opens_from_file(page: Any, view: ViewData, tmp_path: Path):
    export_site(view, tmp_path / "site")
    page.goto((tmp_path / "site" / "index.html").as_uri())
    page.wait_for_selector("#rows tbody tr[data-row]")
    assert page.locator("#rows tbody tr[data-row]").count() == 7
    page.click("#rows tbody tr[data-row='3'] td.title a")
    page.wait_for_selector(".conversation .msg")
    page.goto(f"{(tmp_path / 'site' / 'index.html').as_uri()}#/tokens/1")
    assert (_trained(page) == _labels(view, 1)).all()
    page.uncheck("input[data-flag=train_on_reasoning]")
    page.check("input[data-flag=train_on_user]")
    page.wait_for_selector("#trained-count[data-query*='train_on_user=1']")
    assert (_trained(page) == _labels(view, 1, train_on_reasoning=False, train_on_user=True)).all()
    _shot(page, "export-tokens")
