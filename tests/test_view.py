"""``teich view`` in a real headless Chromium (Debian's ``chromium``, driven by Playwright), on the
shared real traces prepared with the real offline Qwen3.6 tokenizer: the served pages and the static
export. Screenshots of every page go to ``$TEICH_SCREENSHOTS`` (default ``test-artifacts/screenshots``).
Without Chromium or Playwright the browser tests skip; the data tests still run."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from model_families import family_tokenizer

from teich import audit, cli, load_traces, prepare_data, relabel
from teich.cli import policy_options
from teich.errors import TeichError
from teich.privacy.anonymize import PLACEHOLDER, Placeholders, anonymize, placeholder_kind
from teich.view import ViewData, export_site, make_server
from teich.view import data as view_data
from teich.view.site import answer

CHROMIUM = Path("/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[1]
SCREENSHOTS = Path(os.environ.get("TEICH_SCREENSHOTS", REPO / "test-artifacts" / "screenshots"))
MAX_LENGTH = 32768  # pi.jsonl (~115k tokens) is dropped as oversized
TOKEN_SPANS = "#tokens > .chunk > span"  # the token page draws a row in chunks


@pytest.fixture(scope="module")
def view(shared_traces: Path) -> ViewData:
    view = ViewData.open(shared_traces, family_tokenizer("qwen3_6"), max_length=MAX_LENGTH)
    view.prepare()  # every row at once, as the static export does
    return view


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
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page="tokens" not in name)  # token pages: a screenful


def _trained(page: Any) -> np.ndarray:
    """Which tokens the page shows as trained, once its labels are in and every chunk is drawn."""
    page.wait_for_selector("#trained-count[data-trained]")
    page.wait_for_selector("#tokens[data-drawn]", state="attached")
    return np.array(page.eval_on_selector_all(TOKEN_SPANS, "spans => spans.map(s => s.classList.contains('tr'))"))


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


def test_long_row_token_page_draws_every_token_once_and_toggles_exactly(page: Any, url: str, view: ViewData):
    row = max(view.prepared_index, key=lambda r: view.prepared[view.prepared_index[r]]["num_tokens"])
    record = view.prepared[view.prepared_index[row]]
    tokens = len(view.tokenizer(record["text"], add_special_tokens=False)["input_ids"])
    assert tokens == record["num_tokens"] >= 10_000
    dataset = view.prepared.select([view.prepared_index[row]])
    page.goto(f"{url}#/tokens/{row}")
    page.wait_for_selector("#trained-count[data-trained]")  # first paint: counted, first chunks drawn
    assert int(page.get_attribute("#trained-count", "data-trained")) == audit(dataset).supervised
    page.uncheck("input[data-flag=train_on_reasoning]")  # most likely while later chunks are being drawn
    page.wait_for_selector("#trained-count[data-query*='train_on_reasoning=0']")
    after = _trained(page)
    assert len(after) == tokens and page.locator("#tokens > .chunk").count() > 1
    assert page.eval_on_selector("#tokens", "tokens => tokens.textContent") == record["text"]
    per_kind = page.eval_on_selector_all("#kind-counts tr[data-kind] td:nth-child(2)", "ts => ts.map(t => t.innerText)")
    assert sum(int(count.replace(",", "")) for count in per_kind) == tokens
    changed = _labels(view, row) != after
    assert changed.sum() == audit(dataset).supervised - audit(dataset, train_on_reasoning=False).supervised > 0
    assert _reasoning(view, row)[changed].all()
    assert (after == _labels(view, row, train_on_reasoning=False)).all()
    page.click("#next-trained")
    _shot(page, "tokens-trained")
    last = tokens - 3  # a token of the last chunk names itself when pointed at
    page.locator(TOKEN_SPANS).nth(last).hover()
    assert page.inner_text("#token-info").startswith(f"token {last} · id {record['input_ids'][last]} ·")


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


# ---------------------------------------------------------------- policy, plots, redaction, sub-agents, CLI

RECORDED_CLAUDE = Path(__file__).parent / "data" / "recorded" / "claude_code"
PLANTED = " Mail jane.doe@acme-mail.com; token ghp_aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3z5A; again jane.doe@acme-mail.com"


@contextlib.contextmanager
def _served(view: ViewData) -> Iterator[str]:
    server = make_server(view)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def anonymized(shared_traces: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shared Claude Code session with an e-mail (twice) and a GitHub token planted in its first
    prompt, redacted by teich's own ``anonymize``."""
    folder = tmp_path_factory.mktemp("anonymized")
    lines = (shared_traces / "claude_code.jsonl").read_text(encoding="utf-8").splitlines()
    first = next(i for i, line in enumerate(lines) if json.loads(line).get("type") == "user")
    record = json.loads(lines[first])
    record["message"]["content"] += PLANTED
    lines[first] = json.dumps(record)
    (folder / "claude_code.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    anonymize(folder / "claude_code.jsonl", folder / "anonymized.jsonl")
    return folder / "anonymized.jsonl"


def test_policy_option_parses_like_the_policy():
    assert policy_options(["train_on_reasoning=false,train_on_user=1", "max_supervised_tokens=2048"]) == {
        "train_on_reasoning": False,
        "train_on_user": True,
        "max_supervised_tokens": 2048,
    }
    assert policy_options(["train_turns=last", "max_supervised_tokens=none"]) == {
        "train_turns": "last",
        "max_supervised_tokens": None,
    }
    for bad in ("train_on_reasoning=maybe", "train_on_everything=1", "train_turns=first", "max_supervised_tokens=-1"):
        with pytest.raises(TeichError):
            policy_options([bad])


def test_policy_sets_trained_counts_plots_and_toggles(page: Any, view: ViewData):
    policy = {"train_on_reasoning": False, "train_on_user": True}
    chosen = ViewData.of_prepared("policy", view.prepared, view.tokenizer, **policy)
    expected = audit(relabel(view.prepared, **policy))  # relabelled by teich's own relabel, not the viewer
    assert sum(row["trained"] for row in chosen.index(live=True)["rows"]) == expected.supervised
    with _served(chosen) as address:
        page.goto(address)
        page.wait_for_selector("#by-kind .bar-row")
        bars = page.eval_on_selector_all(
            "#by-kind .bar-row", "rows => rows.map(r => [r.dataset.kind, r.querySelector('.bar-n').textContent])"
        )
        by_kind = {kind: n for kind, n in expected.by_kind.items() if n}
        assert {kind: int(n.replace(",", "")) for kind, n in bars} == by_kind
        assert "reasoning" not in by_kind and by_kind["user"] > 0
        heights = page.eval_on_selector_all(
            ".hist rect", "rects => rects.map(r => r.querySelector('title').textContent)"
        )
        assert len(heights) == 16
        assert sum(int(title.split(": ")[1].split()[0]) for title in heights) == len(chosen.prepared)
        _shot(page, "dataset-policy")
        page.goto(f"{address}#/tokens/1")
        page.wait_for_selector("#trained-count[data-trained]")
        assert not page.is_checked("input[data-flag=train_on_reasoning]")
        assert page.is_checked("input[data-flag=train_on_user]")
        assert (
            int(page.get_attribute("#trained-count", "data-trained")) == audit(chosen.prepared.select([1])).supervised
        )


def test_redactions_are_counted_and_highlighted(page: Any, anonymized: Path):
    text = anonymized.read_text(encoding="utf-8")
    expected = {"email": text.count("<EMAIL_"), "secret:github_token": text.count("<SECRET:github_token_")}
    assert expected == {"email": 2, "secret:github_token": 1}  # both planted values were redacted
    assert "jane.doe@acme-mail.com" not in text
    view = ViewData.open(anonymized)
    with _served(view) as address:
        page.goto(address)
        page.wait_for_selector("#redactions tr[data-kind]")
        panel = page.eval_on_selector_all(
            "#redactions tr", "rows => rows.map(r => [r.dataset.kind, r.cells[1].textContent])"
        )
        assert {kind: int(n) for kind, n in panel} == expected
        assert page.inner_text("#rows tbody tr[data-row='0'] .ph") == str(sum(expected.values()))
        _shot(page, "dataset-redacted")
        page.goto(f"{address}#/row/0")
        page.wait_for_selector(".conversation .msg")
        marks = page.eval_on_selector_all("mark.ph", "marks => marks.map(m => m.dataset.kind)")
        assert {kind: marks.count(kind) for kind in set(marks)} == expected
        assert page.locator("#row-redactions .ph").count() == 2
        page.locator("mark.ph").first.scroll_into_view_if_needed()
        _shot(page, "conversation-redacted")


def test_anonymizer_placeholders_match_the_pattern():
    placeholders = Placeholders()
    written = [
        placeholders.placeholder(kind, secret, "v")
        for kind, secret in [("email", False), ("ip_address", False), ("github_token", True)]
    ]
    assert [placeholder_kind(PLACEHOLDER.fullmatch(p)) for p in written] == [
        "email",
        "ip_address",
        "secret:github_token",
    ]


def test_sub_agent_rows_link_to_their_parent_both_ways(page: Any, tmp_path: Path):
    shutil.copy(RECORDED_CLAUDE / "subagent.jsonl", tmp_path / "subagent.jsonl")
    shutil.copytree(RECORDED_CLAUDE / "subagent", tmp_path / "subagent")
    sessions = [json.loads(line) for line in (tmp_path / "subagent.jsonl").read_text().splitlines()]
    calls = [
        block["id"]
        for record in sessions
        if record.get("type") == "assistant"
        for block in record["message"]["content"]
        if block.get("type") == "tool_use" and block["name"] in ("Task", "Agent")
    ]
    view = ViewData.open(tmp_path)
    (child,) = [row for row, example in enumerate(view.sources) if example.metadata.get("sub_agent")]
    (parent,) = [row for row in range(view.row_count) if row != child]
    with _served(view) as address:
        page.goto(f"{address}#/row/{parent}")
        page.wait_for_selector("#child-links a")
        assert page.get_attribute("#child-links a", "href") == f"#/row/{child}"
        assert page.get_attribute(f".call[data-call='{calls[0]}'] a.sub-agent", "href") == f"#/row/{child}"
        _shot(page, "conversation-parent")
        page.click(f".call[data-call='{calls[0]}'] a.sub-agent")
        page.wait_for_selector("#parent-link a")
        assert page.get_attribute("#parent-link a", "href") == f"#/row/{parent}"
        assert calls[0] in page.inner_text("#parent-link")


def test_tokenizer_that_cannot_load_offline_is_one_error_line(
    monkeypatch: pytest.MonkeyPatch, shared_traces: Path, tmp_path: Path
):
    from huggingface_hub import constants
    from typer.testing import CliRunner

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    for name, why in [
        ("nobody/no-such-tokenizer", "not in the Hugging Face cache, and the Hub cannot be reached"),
        (str(tmp_path), "the folder has none of tokenizer.json"),
        (str(tmp_path / "missing"), "no such folder"),
    ]:
        result = CliRunner().invoke(
            cli.app, ["view", str(shared_traces), "--tokenizer", name, "--export", str(tmp_path / "site")]
        )
        assert result.exit_code == 1
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: cannot load tokenizer {name!r}") and why in lines[0], (
            result.output
        )


# ---------------------------------------------------------------- lazy preparation of loaded rows


@pytest.fixture(scope="module")
def full(shared_traces: Path) -> tuple[Any, Any]:
    """The shared traces prepared by one ``prepare_data`` call, independently of the viewer."""
    rows = load_traces(shared_traces)
    return prepare_data(rows, family_tokenizer("qwen3_6"), max_length=MAX_LENGTH, strict=False, return_report=True)


def test_lazy_rows_and_background_batches_equal_one_prepare(
    monkeypatch: pytest.MonkeyPatch, shared_traces: Path, full: tuple[Any, Any]
):
    monkeypatch.setattr(view_data, "BATCH_ROWS", 3)
    monkeypatch.setattr(view_data, "CACHED_ROWS", 4)
    dataset, report = full
    lazy = ViewData.open(shared_traces, family_tokenizer("qwen3_6"), max_length=MAX_LENGTH)
    assert lazy.prepared is None and {row["status"] for row in lazy.index(live=True)["rows"]} == {"preparing"}
    for row in range(lazy.row_count):  # each row prepared alone, on demand
        if row in report.dropped:
            with pytest.raises(TeichError, match="no tokens: dropped \\(oversized"):
                lazy.tokens(row, bits=False)
            continue
        record = dataset[report.kept_row_ids.index(row)]
        tokens = lazy.tokens(row, bits=False)
        assert tokens["ids"] == record["input_ids"]
        assert tokens["trained"] == "".join("0" if label == -100 else "1" for label in record["labels"])
    assert list(lazy._recent) == [3, 4, 5, 6]  # the last rows asked for, no more
    lazy.start().join()
    assert lazy.progress()["reports"]["prepare"] == report.to_dict()
    rows = lazy.index(live=True)["rows"]
    assert [row["tokens"] for row in rows if row["tokens"] is not None] == dataset["num_tokens"]
    assert {row["row"]: row["reason"] for row in rows if row["status"] == "dropped"} == report.dropped
    assert lazy.stats()["audit"] == audit(dataset).to_dict()


def test_a_failed_background_batch_is_named_and_the_rows_before_stay_counted(
    monkeypatch: pytest.MonkeyPatch, shared_traces: Path
):
    monkeypatch.setattr(view_data, "BATCH_ROWS", 3)
    prepare, calls = view_data.prepare_data, []

    def second_batch_fails(rows: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(len(rows))
        if len(calls) == 2:
            raise RuntimeError("tokenizer went away\nsecond line")
        return prepare(rows, *args, **kwargs)

    monkeypatch.setattr(view_data, "prepare_data", second_batch_fails)
    lazy = ViewData.open(shared_traces, family_tokenizer("qwen3_6"), max_length=MAX_LENGTH)
    lazy.start().join(300)
    progress = lazy.progress()
    assert progress["failure"] == "preparing rows 3-5 failed: tokenizer went away"
    assert progress["done"] == 3 and progress["reports"]["prepare"]["counts"]["rows_in"] == 3
    statuses = [row["status"] for row in lazy.index(live=True)["rows"]]
    assert statuses[3:] == ["not prepared"] * 4 and "preparing" not in statuses
    assert lazy.stats()["audit"] is not None  # the page's kinds plot answers, for the rows prepared
    assert calls == [3, 3]  # no batch after the failed one


def test_dataset_page_lists_rows_while_preparing_and_token_page_prepares_its_row(
    page: Any, monkeypatch: pytest.MonkeyPatch, shared_traces: Path, full: tuple[Any, Any]
):
    dataset, report = full
    monkeypatch.setattr(view_data, "BATCH_ROWS", 3)
    gate = threading.Event()
    add_batch = ViewData._add_batch

    def held(self: ViewData, start: int, *args: Any) -> None:
        if start:  # the first batch is counted, the others wait for the gate
            assert gate.wait(120)
        add_batch(self, start, *args)

    monkeypatch.setattr(ViewData, "_add_batch", held)
    lazy = ViewData.open(shared_traces, family_tokenizer("qwen3_6"), max_length=MAX_LENGTH)
    with _served(lazy) as address:
        page.goto(address)
        page.wait_for_selector("#rows tbody tr[data-row]")
        page.wait_for_selector("#preparing:has-text('preparing 3/7')")
        assert page.locator("#rows tbody tr[data-row]").count() == 7
        assert page.locator("#rows tbody tr.st-row-preparing").count() == 4
        _shot(page, "dataset-preparing")
        row = max(
            (r for r in report.kept_row_ids if r >= 3),
            key=lambda r: len(dataset[report.kept_row_ids.index(r)]["input_ids"]),
        )
        record = dataset[report.kept_row_ids.index(row)]
        page.goto(f"{address}#/tokens/{row}")
        trained = _trained(page)
        assert not gate.is_set() and lazy.progress()["done"] == 3  # opened before the background pass got to it
        assert page.evaluate(f"store['tokens-{row}'].ids") == record["input_ids"]
        assert (trained == (np.array(record["labels"]) != -100)).all()
        assert (
            int(page.get_attribute("#trained-count", "data-trained"))
            == audit(dataset.select([report.kept_row_ids.index(row)])).supervised
        )
        gate.set()
        page.goto(address)
        page.wait_for_selector("#by-kind .bar-row")
        assert page.inner_text("#preparing") == ""
        statuses = page.eval_on_selector_all(
            "#rows tbody tr[data-row]",
            "rows => rows.map(r => [Number(r.dataset.row), r.querySelector('.badge').textContent])",
        )
        assert {row: status for row, status in statuses} == {
            row: "dropped" if row in report.dropped else "trimmed" if row in report.trimmed else "kept"
            for row in range(7)
        }
        counts = page.eval_on_selector_all(
            "#report tr", "rows => rows.map(r => [r.cells[0].textContent, r.cells[1].textContent])"
        )
        expected = report.to_dict()["counts"]
        assert {name: int(n.replace(",", "")) for name, n in counts[: len(expected)]} == {
            name.replace("_", " "): value for name, value in expected.items()
        }
        _shot(page, "dataset-prepared")
