"""Every real trace in ../shared/traces converts, with concrete facts checked per format."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from teich import TrainingExample, detect_trace_type
from teich.schema import text_of


def _calls(example: TrainingExample) -> list:
    return [c for m in example.messages for c in m.tool_calls or []]


def _assert_paired(example: TrainingExample) -> None:
    """Every tool message answers an earlier call with the same id, and carries its tool name."""
    seen = {}
    for message in example.messages:
        for call in message.tool_calls or []:
            seen[call.id] = call.function.name
        if message.role == "tool":
            assert message.tool_call_id in seen, message.tool_call_id
            assert message.name == seen[message.tool_call_id]


def _assert_turn_order(example: TrainingExample) -> None:
    """No two assistant messages in a row: split fragments of a model turn were merged."""
    roles = [m.role for m in example.messages]
    assert all(not (a == b == "assistant") for a, b in zip(roles, roles[1:], strict=False))


@pytest.mark.parametrize(
    ("stem", "expected"),
    [
        ("codex", "codex"),
        ("pi", "pi"),
        ("claude_code", "claude_code"),
        ("droid", "droid"),
        ("hermes", "hermes"),
        ("cursor", "cursor"),
        ("openclaw", "openclaw"),
    ],
)
def test_detects_each_format(shared_traces, stem, expected):
    records = [json.loads(line) for line in (shared_traces / f"{stem}.jsonl").read_text().splitlines()]
    assert detect_trace_type(records) == expected


def test_unknown_records_are_not_detected():
    assert detect_trace_type([{"hello": "world"}]) is None
    assert detect_trace_type([]) is None


def test_every_shared_trace_converts_completely(shared_examples):
    assert set(shared_examples) == {"codex", "pi", "claude_code", "droid", "hermes", "cursor", "openclaw"}
    for stem, example in shared_examples.items():
        assert example.messages[-1].role == "assistant", stem
        assert example.metadata["trace_type"] == stem
        assert example.metadata["source_file"].endswith(f"{stem}.jsonl")
        _assert_paired(example)
        _assert_turn_order(example)


def test_codex(shared_examples):
    ex = shared_examples["codex"]
    roles = Counter(m.role for m in ex.messages)
    assert roles == {"system": 1, "developer": 2, "user": 1, "assistant": 14, "tool": 18}
    assert ex.system.startswith("You are Codex")
    developer = [m.content for m in ex.messages if m.role == "developer"]
    assert developer[0].startswith("<permissions instructions>")
    assert developer[1].startswith("<environment_context>")  # harness context, typed, never dropped
    assert ex.prompt == "make me a dashboard for rss, youtube, and newsletters all in one place"
    names = Counter(c.function.name for c in _calls(ex))
    assert names == {"exec_command": 11, "write_stdin": 6, "apply_patch": 1}
    first = _calls(ex)[0]
    assert first.id == "call_KfgAB59GHO2dNnwGyadkb29Q"
    assert first.function.arguments["workdir"] == "/workspace"
    patch = next(c for c in _calls(ex) if c.function.name == "apply_patch")
    assert patch.function.arguments["input"].startswith("*** Begin Patch")  # free-form input wrapped
    reasoning = [m.reasoning_content for m in ex.messages if m.reasoning_content]
    assert len(reasoning) == 3 and reasoning[0].startswith("**Planning app development**")
    # the first model turn: function_call, reasoning and commentary merged in semantic order
    turn = next(m for m in ex.messages if m.role == "assistant")
    assert turn.reasoning_content and turn.content.startswith("I’ll first inspect") and len(turn.tool_calls) == 1
    assert ex.messages[-1].content.startswith("Built a React/Vite dashboard")
    # every tool Codex 0.130.0 offers (recorded from that CLI), not only the three it called
    names = {t["function"]["name"] for t in ex.tools}
    assert len(names) == 11 and {"exec_command", "write_stdin", "apply_patch", "update_plan", "view_image"} <= names
    assert ex.metadata["tool_schema_source"] == "catalog" and ex.metadata["tool_catalog"]["version"] == "0.130.0"
    meta = ex.metadata
    assert (meta["session_id"], meta["cli_version"], meta["model"], meta["provider"], meta["cwd"]) == (
        "019e1fee-81dd-7201-9fa9-8896944f0911",
        "0.130.0",
        "openai/gpt-5.5",
        "openrouter",
        "/workspace",
    )
    assert meta["usage"]["total_tokens"] == 304756
    assert meta["timestamp"] == "2026-05-13T06:03:05.161Z"


def test_pi(shared_examples):
    ex = shared_examples["pi"]
    roles = Counter(m.role for m in ex.messages)
    assert roles == {"user": 19, "assistant": 156, "tool": 144}
    assert ex.prompt.startswith("Analyze GitHub issue(s): https://github.com/badlogic/pi-mono/issues/732")
    assert len(ex.follow_up_prompts) == 18
    assert ex.follow_up_prompts[0].startswith("editor has access to tui")
    assert Counter(c.function.name for c in _calls(ex)) == {"bash": 66, "read": 47, "edit": 30, "write": 1}
    assert all(m.reasoning_content for m in ex.messages if m.role == "assistant")
    image_results = [m for m in ex.messages if isinstance(m.content, list)]
    assert len(image_results) == 1 and image_results[0].role == "tool"
    image = next(p for p in image_results[0].content if p["type"] == "image")
    assert image["image"].startswith("data:image/jpeg;base64,/9j/")
    assert ex.metadata["model"] == "claude-opus-4-5" and ex.metadata["provider"] == "anthropic"
    assert ex.metadata["cost"] > 10


def test_claude_code(shared_examples):
    ex = shared_examples["claude_code"]
    roles = Counter(m.role for m in ex.messages)
    # 18 assistant records (one per content block) are 12 API responses (12 distinct message ids): 12 turns
    assert roles == {"user": 1, "assistant": 12, "tool": 13}
    assert Counter(c.function.name for c in _calls(ex)) == {"Bash": 11, "ToolSearch": 1, "WebFetch": 1}
    first = ex.messages[1]
    assert first.reasoning_content.startswith("The user wants me to download a random dataset")
    assert first.content == "Let me find and download a dataset from Hugging Face."
    assert first.tool_calls[0].function.arguments == {"query": "select:WebFetch", "max_results": 1}
    errored = next(m for m in ex.messages if m.tool_call_id == "toolu_01D1fp5oqW3EsHvqK5CSAhGR")
    assert errored.content == "Request failed with status code 400"
    assert ex.messages[-1].content.startswith("Here's the report:")
    assert ex.metadata["cli_version"] == "2.1.77" and ex.metadata["model"] == "claude-opus-4-6"
    assert ex.metadata["usage"]["output_tokens"] > 0


def test_droid(shared_examples):
    ex = shared_examples["droid"]
    assert ex.messages[0].role == "developer" and ex.messages[0].content.startswith("<system-reminder>")
    assert ex.prompt == "where are you"
    assert ex.follow_up_prompts[-1] == "move it to droid folder"
    # the cancelled TodoWrite result never reached the model
    assert ex.metadata["session_left_out"]["shown to the user only, never sent to the model"] == 1
    assert not any(m.tool_call_id == "TodoWrite_1" for m in ex.messages)
    names = Counter(c.function.name for c in _calls(ex))
    assert names["Execute"] == 13 and names["TodoWrite"] == 3 and sum(names.values()) == 22
    assert sum(1 for m in ex.messages if m.role == "tool") == 21  # the last call was never answered
    assert all(m.reasoning_content for m in ex.messages if m.role == "assistant")
    assert ex.messages[-1].tool_calls[0].id == "Execute_22"


def test_hermes(shared_examples):
    ex = shared_examples["hermes"]
    assert ex.system.startswith("You are Hermes Agent")
    assert ex.prompt == "where are you"
    assert ex.metadata["trimmed_trailing_user_turns"] == 1  # the unanswered last question
    (call,) = _calls(ex)
    assert call.function.name == "browser_navigate"
    assert call.function.arguments == {"url": "https://finance.yahoo.com"}
    result = next(m for m in ex.messages if m.role == "tool")
    assert result.tool_call_id == call.id and result.name == "browser_navigate"
    assert ex.messages[4].reasoning_content.startswith("The user is asking about the stock market today")
    assert ex.metadata["model"] == "moonshotai/Kimi-K2.6"
    assert ex.metadata["timestamp"].startswith("2026-06-18T")


def test_cursor(shared_examples):
    ex = shared_examples["cursor"]
    assert [m.role for m in ex.messages] == ["user", "assistant", "tool", "assistant"]
    assert ex.messages[1].reasoning_content == "Need a directory listing."
    assert ex.messages[1].tool_calls[0].function.arguments == {"command": "ls"}
    assert ex.messages[2].content == "README.md\nsrc" and ex.messages[2].tool_call_id == "call-shell"
    assert ex.tools[0]["function"]["name"] == "Shell" and ex.metadata["tool_schema_source"] == "declared"


def test_openclaw(shared_examples):
    ex = shared_examples["openclaw"]
    assert [m.role for m in ex.messages] == ["user", "assistant"]
    assert ex.messages[1].reasoning_content == "First session, BOOTSTRAP.md exists. Let me follow it."
    assert text_of(ex.messages[1].content).startswith("Hey! I just came online")
    assert ex.metadata["trimmed_trailing_user_turns"] == 1
    assert ex.metadata["thinking_level"] == "low"
