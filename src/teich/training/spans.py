"""Typed supervision spans in a rendered conversation.

The text is the template's own rendering, untouched. Spans are found by walking the messages in
order with a cursor: each message's content is expected right after the template's gap from the
previous message (see :mod:`teich.training.templates`), and searched for from the cursor where a template
lays it out differently. Walking in order means text inside content (a log that prints
``<|im_end|>``, a quoted answer) can never be mistaken for structure.

An assistant turn is supervised from where generation starts (after the generation prompt) to the
end of its stop token, and split into pieces: reasoning, final answer, tool calls. Template text
before the first piece belongs to it; text between pieces belongs to the earlier one, except the
lead-in of the tool calls, which belongs to them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from teich.errors import TemplateError
from teich.training.templates import TemplateProfile

ASSISTANT_KINDS = ("reasoning", "final_answer", "tool_call")
CONTEXT_KINDS = ("system", "developer", "user", "tool_response")
KINDS = ASSISTANT_KINDS + CONTEXT_KINDS
_ROLE_KINDS = MappingProxyType({"system": "system", "developer": "developer", "user": "user", "tool": "tool_response"})
# Template text allowed between where generation starts and a turn's first piece, or between pieces.
_MAX_SCAFFOLD = 256


class SpanError(TemplateError):
    """The rendering does not contain a message as Teich expects; the row cannot be supervised."""


@dataclass(frozen=True)
class Span:
    kind: str
    start: int
    end: int
    message: int
    train: bool | None = None  # the message's own train flag, where the row sets one


@dataclass
class Located:
    spans: list[Span] = field(default_factory=list)
    unrendered_reasoning: int = 0
    """Assistant turns whose reasoning the template left out (Qwen3 drops it before the last user
    turn, GPT-OSS on tool-call turns followed by a final answer)."""


def locate_spans(text: str, messages: list[dict[str, Any]], profile: TemplateProfile) -> Located:
    """The typed spans of ``messages`` in ``text``, their template rendering."""
    walk = _Walk(text, profile, Located())
    cursor, previous = 0, None
    for index, message in enumerate(messages):
        if message["role"] == "assistant":
            cursor = _locate_turn(walk, message, index, previous, cursor, is_last=index == len(messages) - 1)
        else:
            cursor = _locate_context(walk, message, index, previous, cursor)
        previous = message["role"]
    return walk.located


@dataclass
class _Walk:
    """What every step of the walk through a rendering shares."""

    text: str
    profile: TemplateProfile
    located: Located


def _locate_context(walk: _Walk, message: dict[str, Any], index: int, previous: str | None, cursor: int) -> int:
    text, profile, located = walk.text, walk.profile, walk.located
    parts = _text_parts(message.get("content"))
    if not parts:
        return cursor
    gaps = profile.gaps.get(f"{previous}>{message['role']}", ())
    start: int | None = None
    end = cursor
    for part in parts:
        found = _find(text, part, cursor, gaps if start is None else ())
        if found is None:
            raise SpanError(f"message {index} ({message['role']}) is not in the rendered text")
        start = found[0] if start is None else start
        cursor = end = found[1]
    assert start is not None, "a message has at least one part"
    located.spans.append(Span(_ROLE_KINDS[message["role"]], start, end, index))
    return cursor


def _locate_turn(
    walk: _Walk, message: dict[str, Any], index: int, previous: str | None, cursor: int, *, is_last: bool
) -> int:
    text, profile, located = walk.text, walk.profile, walk.located
    calls = message.get("tool_calls") or []
    if calls and not profile.renders_tools:
        raise SpanError(f"message {index}: the chat template does not render tool calls")
    if len(calls) > 1 and not profile.renders_parallel_calls:
        raise SpanError(f"message {index}: the chat template renders only one tool call per message")
    start = _generation_start(text, index, previous, cursor, profile)
    pieces: list[tuple[str, int]] = []
    position = start
    reasoning = message.get(profile.reasoning_key) if profile.reasoning_key else None
    if reasoning:
        found = _find(text, reasoning, position, (), limit=_piece_limit(text, position, calls))
        if found is None:
            located.unrendered_reasoning += 1
        else:
            pieces.append(("reasoning", start))
            position = found[1]
    for part in _text_parts(message.get("content")):
        found = _find(text, part, position, (), limit=_piece_limit(text, position, calls))
        if found is None and calls:  # DeepSeek-V3 renders it on the first tool-call turn only
            raise SpanError(f"message {index} (assistant): the chat template leaves out the text before its tool calls")
        if found is None:
            raise SpanError(f"message {index} (assistant): its content is not in the rendered text")
        if not pieces or pieces[-1][0] != "final_answer":
            pieces.append(("final_answer", found[0] if pieces else start))
        position = found[1]
    for number, call in enumerate(calls):
        name = call["function"]["name"]
        at = text.find(name, position)
        if at < 0:
            raise SpanError(f"message {index}: tool call {name!r} is not in the rendered text")
        if number == 0:
            pieces.append(("tool_call", _lead_start(text, at, profile.tool_call_lead, position) if pieces else start))
        position = _after_arguments(text, call["function"].get("arguments"), at + len(name))
    end = _stop_end(text, position, profile, is_last)
    if end is None:
        raise SpanError(f"message {index}: no end-of-turn token after the assistant turn")
    if not pieces:
        pieces.append(("final_answer", start))
    bounds = [p[1] for p in pieces[1:]] + [end]
    located.spans.extend(Span(kind, s, e, index) for (kind, s), e in zip(pieces, bounds, strict=True) if e > s)
    return end


def _piece_limit(text: str, position: int, calls: list[dict[str, Any]]) -> int:
    """How far after ``position`` a turn's reasoning or text may start: within the template's
    scaffolding, and before its first tool call's name (a dropped one is not found in the arguments)."""
    limit = position + _MAX_SCAFFOLD
    at = text.find(calls[0]["function"]["name"], position) if calls else -1
    return limit if at < 0 else min(limit, at)


def _generation_start(text: str, index: int, previous: str | None, cursor: int, profile: TemplateProfile) -> int:
    """Where the model starts generating turn ``index``: after the gap from the previous message."""
    leads = profile.gaps.get(f"{previous}>assistant") or tuple(
        lead for key, gaps in profile.gaps.items() if key.endswith(">assistant") for lead in gaps
    )
    for lead in sorted(leads, key=len, reverse=True):
        if text.startswith(lead, cursor):
            return cursor + len(lead)
    header = min(leads, key=len, default="")
    at = text.find(header, cursor) if header else -1
    if at < 0:
        raise SpanError(f"message {index} (assistant): the start of the turn is not in the rendered text")
    return at + len(header)


def _lead_start(text: str, name_at: int, lead: str, floor: int) -> int:
    """Start of the longest tail of ``lead`` that ends right before the first tool call's name."""
    for size in range(min(len(lead), name_at - floor), 0, -1):
        if text.startswith(lead[-size:], name_at - size):
            return name_at - size
    return name_at


def _after_arguments(text: str, arguments: Any, position: int) -> int:
    """Where a tool call's rendered argument values end, following them in order from ``position``.

    A value may contain a stop token (a command that prints ``<|im_end|>``): the end of the turn is
    only searched for after the values. Each value must start within the template's scaffolding of
    the previous one; where one is not found (a template that renders it differently), the values
    after it are not followed. Arguments passed as JSON text are one value.
    """
    values = [arguments] if isinstance(arguments, str) else list((arguments or {}).values())
    for value in values:
        rendered = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        if not rendered.strip():
            continue
        # Qwen3.5's template writes a boolean or null with Jinja's ``string`` filter (True, False, None):
        # the JSON form would only be found further on, in the text after the call
        forms = [rendered, str(value)] if isinstance(value, bool) or value is None else [rendered]
        matches = [_find(text, form, position, (), limit=position + _MAX_SCAFFOLD) for form in forms]
        found = min((m for m in matches if m is not None), default=None)
        if found is None:
            break
        position = found[1]
    return position


def _stop_end(text: str, position: int, profile: TemplateProfile, is_last: bool) -> int | None:
    """The end of the first stop token after ``position``; for the last turn of a template that
    writes no stop token there (GLM stops on the next role marker), the end of the text."""
    end = None
    for stop in profile.stop_tokens:  # each search only as far as an earlier end could be
        at = text.find(stop, position) if end is None else text.find(stop, position, end - 1)
        if at >= 0:
            end = at + len(stop)
    if end is not None:
        return end
    return len(text.rstrip()) if is_last else None


def _find(
    text: str, content: str, cursor: int, gaps: tuple[str, ...], limit: int | None = None
) -> tuple[int, int] | None:
    """Where ``content`` (or the form a template renders it in) is, at or after ``cursor``.

    Right after a known gap it is checked in place, plain forms first, then JSON-encoded ones;
    otherwise searched for, the earliest match winning (the longest form on a tie), and only
    accepted if it starts by ``limit``, JSON-encoded forms only where no plain form is found.
    """
    plain = _plain_forms(content)
    found = _in_place(text, plain, cursor, gaps)
    if found is None and gaps:
        found = _in_place(text, _json_forms(content, plain), cursor, gaps)
    if found is None:
        found = _search(text, plain, cursor, limit) or _search(text, _json_forms(content, plain), cursor, limit)
    return found


def _in_place(text: str, forms: list[str], cursor: int, gaps: tuple[str, ...]) -> tuple[int, int] | None:
    """A form right after one of the gaps that starts at ``cursor``."""
    for gap in gaps:
        if text.startswith(gap, cursor):
            at = cursor + len(gap)
            for form in forms:
                if text.startswith(form, at):
                    return at, at + len(form)
    return None


def _search(text: str, forms: list[str], cursor: int, limit: int | None) -> tuple[int, int] | None:
    """The earliest form at or after ``cursor`` starting by ``limit`` (the longest on a tie)."""
    stop = len(text) if limit is None else limit
    matches = [(text.find(form, cursor, stop + len(form)), len(form)) for form in forms]
    matches = [(at, size) for at, size in matches if at >= 0]
    if not matches:
        return None
    at, size = min(matches, key=lambda m: (m[0], -m[1]))
    return at, at + size


def _plain_forms(content: str) -> list[str]:
    """Verbatim or trimmed, longest first.

    Trailing whitespace is never part of a form: whether the template kept it or not, it cannot be
    told apart from the template's own text that follows, so it is left to the gap after it.
    """
    text = content.rstrip()
    return sorted({f for f in (text, text.lstrip("\n"), text.lstrip()) if f}, key=len, reverse=True)


def _json_forms(content: str, plain: list[str]) -> list[str]:
    """JSON-encoded, as templates that ``tojson`` a message render it, where that differs from the plain forms."""
    escapes = (True, False) if not content.isascii() else (True,)
    forms = {json.dumps(form, ensure_ascii=ascii)[1:-1] for form in (content, content.strip()) for ascii in escapes}
    return sorted((f for f in forms if f.strip() and f not in plain), key=len, reverse=True)


def _text_parts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content] if content.strip() else []
    return [p["text"] for p in content or [] if p.get("type") == "text" and p.get("text", "").strip()]
