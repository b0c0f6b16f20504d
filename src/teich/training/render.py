"""Rendering one training row through a tokenizer's chat template, with its supervision spans.

The row's messages are adapted to what the template can render (a documented policy, counted in
the report), rendered once by the template itself, and the spans located in that exact text.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from teich.errors import TeichError, TemplateError, first_line
from teich.schema import TrainingExample, text_of
from teich.training.spans import Span, SpanError, locate_spans
from teich.training.templates import TemplateProfile, render

IMAGE_PLACEHOLDER = "[image]"

ParallelToolCalls = Literal["split", "drop"]
"""What to do with a turn of several tool calls where the template renders one call per turn."""
Reasoning = Literal["keep", "last", "drop"]
"""Which assistant messages keep their reasoning in the rendered row."""


@dataclass
class RenderedRow:
    text: str
    spans: list[Span]
    notes: Counter[str] = field(default_factory=Counter)


def template_messages(
    example: TrainingExample,
    profile: TemplateProfile,
    parallel_tool_calls: ParallelToolCalls = "split",
    reasoning: Reasoning = "keep",
) -> tuple[list[dict[str, Any]], Counter[str]]:
    """The row's messages as template input, adapted to what the template renders.

    - ``reasoning="last"`` keeps the reasoning of the last assistant message only, ``"drop"`` of
      none (``"keep"``: all, as the row has it; a template may still leave some out, reported);

    - reasoning goes under the key the template reads (``reasoning_content`` or ``thinking``);
    - ``developer`` messages become ``system`` messages where the template has no developer role;
    - several leading system messages merge into one (joined by a blank line) where the template
      takes only one;
    - a system message after the conversation started becomes a ``user`` message where the
      template rejects or drops it (Qwen3.6: "System message must be at the beginning");
    - where a tool-call turn cannot carry both reasoning and content (GPT-OSS), the content goes
      into the reasoning (after it, if any): it is what the model writes before calling, and such
      a template renders it as reasoning (dropped where reasoning is dropped);
    - where a template renders one call per message (GPT-OSS), a turn with several calls becomes
      consecutive turns of one call each, each followed by its result, in the order the results came
      (``parallel_tool_calls="split"``); with ``"drop"`` it is left as it is, and the row is dropped;
    - tool-call arguments are passed as JSON text where the template cannot take objects;
    - content with image parts becomes text, each image an ``[image]`` placeholder, where the
      template cannot render parts (it would print them as a Python list, or drop the images).
    """
    if parallel_tool_calls not in ("split", "drop"):
        raise TeichError(f"parallel_tool_calls must be 'split' or 'drop', not {parallel_tool_calls!r}")
    if reasoning not in ("keep", "last", "drop"):
        raise TeichError(f"reasoning must be 'keep', 'last' or 'drop', not {reasoning!r}")
    notes: Counter[str] = Counter()
    messages = [m.to_dict() for m in example.messages]
    if reasoning != "keep":
        _strip_reasoning(messages, keep_last=reasoning == "last", notes=notes)
    if not profile.renders_parallel_calls and parallel_tool_calls == "split":
        messages = _split_parallel_calls(messages, notes)
    if profile.reasoning_key and profile.reasoning_key != "reasoning_content":
        for message in messages:
            if "reasoning_content" in message:
                message[profile.reasoning_key] = message.pop("reasoning_content")
    if profile.arguments_as_text:
        for message in messages:
            for call in message.get("tool_calls") or []:
                call["function"]["arguments"] = json.dumps(call["function"]["arguments"], ensure_ascii=False)
    key = profile.reasoning_key
    if key and not profile.renders_reasoning_beside_calls:
        for message in messages:
            if message.get("tool_calls") and text_of(message["content"]).strip():
                message[key] = "\n\n".join(filter(None, [message.get(key), text_of(message["content"])]))
                message["content"] = ""
                notes["content moved into reasoning on tool-call turns"] += 1
    if not profile.renders_developer:
        for message in messages:
            if message["role"] == "developer":
                message["role"] = "system"
                notes["developer message rendered as system"] += 1
    leading = next((i for i, m in enumerate(messages) if m["role"] != "system"), len(messages))
    if leading > 1 and not profile.renders_leading_systems:
        merged = "\n\n".join(text_of(m["content"]) for m in messages[:leading])
        messages[:leading] = [{"role": "system", "content": merged}]
        notes["leading system messages merged"] += leading - 1
        leading = 1
    if not profile.renders_content_parts:
        for message in messages:
            if isinstance(message["content"], list):
                message["content"] = "\n".join(_part_text(part) for part in message["content"])
                notes["image parts rendered as [image]"] += 1
    if not profile.renders_late_system:
        for message in messages[leading:]:
            if message["role"] == "system":
                message["role"] = "user"
                notes["late system message rendered as user"] += 1
    return messages, notes


def _strip_reasoning(messages: list[dict[str, Any]], keep_last: bool, notes: Counter[str]) -> None:
    """Remove the reasoning of every assistant message (but the last one with ``keep_last``)."""
    answers = [m for m in messages if m["role"] == "assistant"]
    for message in answers[:-1] if keep_last else answers:
        if message.pop("reasoning_content", None):
            notes["reasoning removed by the reasoning policy"] += 1


def _split_parallel_calls(messages: list[dict[str, Any]], notes: Counter[str]) -> list[dict[str, Any]]:
    """Turns with several calls as sequential one-call turns; the first keeps the reasoning and text."""
    split: list[dict[str, Any]] = []
    index = 0
    while index < len(messages):
        message = messages[index]
        index += 1
        calls = message.get("tool_calls") or []
        if message["role"] != "assistant" or len(calls) < 2:
            split.append(message)
            continue
        results = []
        while index < len(messages) and messages[index]["role"] == "tool":
            results.append(messages[index])
            index += 1
        by_id = {call["id"]: call for call in calls}
        answered = [r for r in results if r.get("tool_call_id") in by_id]
        order = [by_id.pop(r["tool_call_id"]) for r in answered] + list(by_id.values())
        for position, call in enumerate(order):
            first = {k: v for k, v in message.items() if k != "tool_calls"}
            turn = first if position == 0 else {k: v for k, v in first.items() if k in ("role", "train")}
            turn.setdefault("content", "")
            split.append({**turn, "tool_calls": [call]})
            split += [r for r in answered if r["tool_call_id"] == call["id"]]
        split += [r for r in results if r not in answered]
        notes["parallel tool calls split into one call per turn"] += 1
    return split


def render_row(
    example: TrainingExample,
    tokenizer: Any,
    profile: TemplateProfile,
    chat_template_kwargs: dict[str, Any],
    parallel_tool_calls: ParallelToolCalls = "split",
    reasoning: Reasoning = "keep",
) -> RenderedRow:
    """Render a row with the tokenizer's template and locate its spans; :class:`TemplateError` if impossible."""
    _check_results(example)
    messages, notes = template_messages(example, profile, parallel_tool_calls, reasoning)
    try:
        text = render(tokenizer, messages, example.tools, chat_template_kwargs)
    except Exception as error:  # Jinja raises whatever the template's author chose
        raise TemplateError(f"the chat template cannot render it: {first_line(error)}") from None
    try:
        located = locate_spans(text, messages, profile)
    except SpanError as error:
        raise TemplateError(f"supervision spans cannot be established: {error}") from None
    spans = [
        span if messages[span.message].get("train") is None else replace(span, train=messages[span.message]["train"])
        for span in located.spans
    ]
    unrendered = located.unrendered_reasoning
    if not profile.reasoning_key:  # a template that reads no reasoning field (Llama 3, Qwen2.5) renders none
        unrendered = sum(1 for m in messages if m["role"] == "assistant" and m.get("reasoning_content"))
    if unrendered:
        notes["reasoning not rendered by the template"] += unrendered
    if any(profile.special_pattern.search(text_of(m.get("content"))) for m in messages):
        notes["special-token text inside content"] += 1
    return RenderedRow(text, spans, notes)


def _check_results(example: TrainingExample) -> None:
    """:class:`TemplateError` for a tool result that answers no call made before it (no model produced that context)."""
    called: set[str] = set()
    for index, message in enumerate(example.messages):
        called.update(call.id for call in message.tool_calls or ())
        if message.role == "tool" and message.tool_call_id not in called:
            raise TemplateError(f"message {index}: tool result {message.tool_call_id!r} answers no call before it")


def _part_text(part: dict[str, Any]) -> str:
    return part.get("text", "") if part.get("type") == "text" else IMAGE_PLACEHOLDER

