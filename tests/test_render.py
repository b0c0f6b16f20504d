"""Rendering one row: the ``parallel_tool_calls`` choice for templates that render one call per turn."""

from __future__ import annotations

import pytest
from agent_rows import synthetic_rows
from model_families import family_tokenizer

from teich import TeichError, TrainingExample
from teich.training.render import TemplateError, render_row, template_messages
from teich.training.templates import profile_template

PARALLEL = TrainingExample.from_record(synthetic_rows()[0])  # three calls, answered out of order


def _render(family: str, parallel_tool_calls: str):
    tokenizer = family_tokenizer(family)
    return render_row(PARALLEL, tokenizer, profile_template(tokenizer), {}, parallel_tool_calls=parallel_tool_calls)


def _adapted(family: str, parallel_tool_calls: str) -> list[dict]:
    messages, _ = template_messages(PARALLEL, profile_template(family_tokenizer(family)), parallel_tool_calls)
    return messages


def test_split_makes_one_turn_per_call_in_result_order() -> None:
    row = _render("gptoss", "split")
    calls = [m["tool_calls"][0]["id"] for m in _adapted("gptoss", "split") if m.get("tool_calls")]
    assert calls == ["p3", "p1", "p2"]
    assert row.notes["parallel tool calls split into one call per turn"] == 1
    assert [s.kind for s in row.spans].count("tool_call") == 3


def test_drop_rejects_the_row_where_the_template_renders_one_call_per_turn() -> None:
    with pytest.raises(TemplateError, match="renders only one tool call per message"):
        _render("gptoss", "drop")


def test_drop_keeps_parallel_calls_a_template_renders() -> None:
    row = _render("qwen3_6", "drop")
    assert [len(m["tool_calls"]) for m in _adapted("qwen3_6", "drop") if m.get("tool_calls")] == [3]
    assert not row.notes["parallel tool calls split into one call per turn"]


def test_an_unknown_choice_is_an_error() -> None:
    with pytest.raises(TeichError, match="parallel_tool_calls must be 'split' or 'drop'"):
        _render("qwen3_6", "merge")
