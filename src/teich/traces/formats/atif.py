"""Harbor's Agent Trajectory Interchange Format (ATIF): one JSON document per trajectory
(``trajectory.json``), or one per line, ``{"schema_version": "ATIF-v1.x", "session_id", "agent",
"steps", "final_metrics", "notes", "extra"}``.

Reading: ``system``/``user`` steps become system/user messages (a system step marked
``extra.role: "developer"`` a developer one); an ``agent`` step becomes an assistant turn
(``message``, ``reasoning_content``, ``tool_calls``) followed by its ``observation`` results as tool
messages paired by ``source_call_id`` (a result with no call is what the model read next: a user
message); ``agent.tool_definitions`` are the declared tools.

Writing (:func:`to_atif`) is the reverse, targeting :data:`SCHEMA_VERSION`; the row's metadata
travels in the root ``extra.teich_metadata`` and comes back when the trajectory is read again.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import MappingProxyType
from typing import Any

from teich.errors import RecordError
from teich.schema import Content, Message, TrainingExample, text_of
from teich.traces.checks import NULL, check_call_name, check_tools, expect, field, objects
from teich.traces.conversation import Conversation, normalize_content
from teich.traces.protocol import Converted, Record, TraceFormat

#: The ATIF version :func:`to_atif` writes (the latest that harbor 0.26 defines).
SCHEMA_VERSION = "ATIF-v1.8"
_SOURCES = ("system", "user", "agent")
_STEP_REQUIRED = ("step_id", "source", "message")
_TOKEN_COUNTS = ("prompt_tokens", "completion_tokens", "cached_tokens")
_TEICH_METADATA = "teich_metadata"
# Metadata describing how a row was read (recomputed on every read), not the session itself.
_READ_METADATA = ("trace_type", "source_file", "source_line", "tool_schema_source", "inferred_tools")
_IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
_DATA_URL = re.compile(r"data:(image/[\w.+-]+)[;,]")


class Atif(TraceFormat):
    name = "atif"
    per_row = True  # each record is a whole trajectory (a ``.json`` document, or one line of a JSONL file)
    priority = 65  # after the session formats, before the generic row formats; its check is exact anyway

    def matches(self, records: list[Record]) -> bool:
        header = records[0] if records else {}
        version = header.get("schema_version")
        return isinstance(version, str) and version.startswith("ATIF") and isinstance(header.get("steps"), list)

    def check(self, record: Record) -> None:
        for key in ("agent", "extra", "final_metrics"):
            field(record, key, dict, NULL)
        check_tools(field(record, "agent.tool_definitions", list, NULL), "agent.tool_definitions")
        field(record, "subagent_trajectories", list, NULL)
        for index, step in enumerate(_checked_steps(record)):
            _check_step(step, f"steps[{index}]")

    def convert(self, records: list[Record], path: Path | None = None) -> Converted:
        (trajectory,) = records
        steps = trajectory["steps"]
        conversation = Conversation(
            metadata=_metadata(trajectory, steps), keep_result_tail=True, keep_orphan_results=True
        )
        agent = trajectory.get("agent") or {}
        conversation.use_model(agent.get("model_name"))
        conversation.tools = [_function_schema(t) for t in agent.get("tool_definitions") or []]
        for step in steps:
            _read_step(conversation, step)
        if trajectory.get("subagent_trajectories"):
            conversation.leave_out("embedded ATIF subagent trajectory", len(trajectory["subagent_trajectories"]))
        return conversation.finish(self.name)


def _checked_steps(trajectory: Record) -> list[Record]:
    """The steps, or a one-line error naming the first step that lacks a required field."""
    steps = field(trajectory, "steps", list)
    if not steps:
        raise RecordError("trajectory has no steps")
    for index, step in enumerate(steps):
        if not isinstance(step, dict):
            raise RecordError(f"steps[{index}] is not an object")
        missing = [key for key in _STEP_REQUIRED if key not in step]
        if missing:
            raise RecordError(f"steps[{index}] lacks required field {', '.join(map(repr, missing))}")
        if step["source"] not in _SOURCES:
            raise RecordError(f"steps[{index}] has unknown source {step['source']!r}")
        for call in step.get("tool_calls") or []:
            if not isinstance(call, dict) or "tool_call_id" not in call or "function_name" not in call:
                raise RecordError(f"steps[{index}] has a tool call without 'tool_call_id' and 'function_name'")
    checked: list[Record] = steps
    return checked


def _check_step(step: Record, where: str) -> None:
    """The fields of a step that conversion reads: content, reasoning, calls and results."""
    _check_content(step["message"], f"{where}.message")
    expect(step.get("reasoning_content"), f"{where}.reasoning_content", str, NULL)
    expect(step.get("extra"), f"{where}.extra", dict, NULL)
    for index, call in enumerate(objects(step.get("tool_calls"), f"{where}.tool_calls")):
        check_call_name(call, f"{where}.tool_calls[{index}]", "function_name")
        expect(call["tool_call_id"], f"{where}.tool_calls[{index}].tool_call_id", str)
    results = field(expect(step.get("observation"), f"{where}.observation", dict, NULL) or {}, "results", list, NULL)
    for index, result in enumerate(objects(results, f"{where}.observation.results")):
        at = f"{where}.observation.results[{index}]"
        _check_content(result.get("content"), f"{at}.content")
        extra = expect(result.get("extra"), f"{at}.extra", dict, NULL) or {}
        for key in ("tool_call_id", "name"):
            expect(extra.get(key), f"{at}.extra.{key}", str, NULL)
        expect(result.get("source_call_id"), f"{at}.source_call_id", str, NULL)


def _check_content(content: Any, where: str) -> None:
    """ATIF content: text, or a list of parts with text as text and images with a ``source`` object."""
    for index, part in enumerate(objects(content, where) if isinstance(content, list) else ()):
        if part.get("type") == "text":
            expect(part.get("text"), f"{where}[{index}].text", str, NULL)
        elif part.get("type") == "image":
            expect(part.get("source"), f"{where}[{index}].source", dict, NULL)


def _metadata(trajectory: Record, steps: list[Record]) -> dict[str, Any]:
    extra = dict(trajectory.get("extra") or {})
    saved = extra.pop(_TEICH_METADATA, None)
    metadata = {k: v for k, v in (saved or {}).items() if k not in _READ_METADATA} if isinstance(saved, dict) else {}
    agent = trajectory.get("agent") or {}
    found = {
        "session_id": trajectory.get("session_id"),
        "trajectory_id": trajectory.get("trajectory_id"),
        "agent": agent.get("name"),
        "agent_version": agent.get("version"),
        "atif_schema_version": trajectory.get("schema_version"),
        "timestamp": next((s["timestamp"] for s in steps if s.get("timestamp")), None),
        "notes": trajectory.get("notes"),
        "continued_trajectory_ref": trajectory.get("continued_trajectory_ref"),
        "atif_extra": extra or None,
        "copied_context_steps": sum(1 for s in steps if s.get("is_copied_context")) or None,
    }
    metadata.update({k: v for k, v in found.items() if v is not None})
    for key, value in _totals(trajectory.get("final_metrics"), steps).items():
        if value is not None:  # a row's own usage, kept in teich_metadata, is richer than ATIF's totals
            metadata.setdefault(key, value)
    return metadata


def _totals(final: Record | None, steps: list[Record]) -> dict[str, Any]:
    """Token usage and cost: the trajectory's ``final_metrics``, else the sum of the steps' ``metrics``."""
    if final:
        usage = {key: final.get(f"total_{key}") for key in _TOKEN_COUNTS}
        cost = final.get("total_cost_usd")
    else:
        metrics = [s["metrics"] for s in steps if isinstance(s.get("metrics"), dict)]
        usage = {key: _sum(m.get(key) for m in metrics) for key in _TOKEN_COUNTS}
        cost = _sum(m.get("cost_usd") for m in metrics)
    usage = {k: v for k, v in usage.items() if v is not None}
    return {"usage": usage or None, "cost": cost}


def _sum(values: Any) -> float | int | None:
    numbers = [v for v in values if isinstance(v, (int, float))]
    return sum(numbers) if numbers else None


def _function_schema(tool: dict[str, Any]) -> dict[str, Any]:
    """A tool definition in OpenAI's wrapped form (flat ``{"name", "parameters"}`` ones get the wrapper)."""
    if "function" in tool or "name" not in tool:
        return tool
    return {"type": "function", "function": tool}


def _read_step(conversation: Conversation, step: Record) -> None:
    source = step["source"]
    if source == "agent":
        _read_agent_step(conversation, step)
    else:
        role = "developer" if source == "system" and (step.get("extra") or {}).get("role") == "developer" else source
        conversation.add(role, _content(conversation, step["message"]))
    for result in (step.get("observation") or {}).get("results") or []:
        _read_result(conversation, result)


def _read_agent_step(conversation: Conversation, step: Record) -> None:
    content = _content(conversation, step["message"])
    if isinstance(content, list) and any(part["type"] != "text" for part in content):
        conversation.leave_out("image in an ATIF agent message")
    calls = [
        conversation.call(c["function_name"], c.get("arguments"), c["tool_call_id"])
        for c in step.get("tool_calls") or []
    ]
    conversation.assistant(text=text_of(content), reasoning=step.get("reasoning_content"), tool_calls=calls)
    conversation.use_model(step.get("model_name"))
    if step.get("reasoning_effort") is not None:
        conversation.metadata["reasoning_effort"] = step["reasoning_effort"]


def _read_result(conversation: Conversation, result: Record) -> None:
    """A tool message for a result of a call; a result of no call is what the model read next (a user message)."""
    extra = result.get("extra") or {}
    content = _content(conversation, result.get("content"))
    call_id = result.get("source_call_id") or extra.get("tool_call_id")
    if call_id:
        conversation.tool_result(call_id, content, name=extra.get("name"), is_error=_is_error(extra))
    elif content:
        conversation.add("user", content)
    elif result.get("subagent_trajectory_ref"):
        conversation.leave_out("ATIF subagent trajectory reference")


def _is_error(extra: dict[str, Any]) -> bool:
    """Whether a result's producer marked it failed (``is_error``; Harbor's Claude Code adapter's spellings too)."""
    metadata = extra.get("tool_result_metadata")
    nested = metadata.get("is_error") if isinstance(metadata, dict) else None
    return any(flag is True for flag in (extra.get("is_error"), extra.get("tool_result_is_error"), nested))


def _content(conversation: Conversation, message: Any) -> Content:
    """ATIF content (text, or ``ContentPart``s of text, image and audio) as Teich content; audio is left out."""
    if not isinstance(message, list):
        return message if isinstance(message, str) else ""
    parts = []
    for part in message:
        kind = part.get("type")
        if kind == "text":
            parts.append({"type": "text", "text": part.get("text") or ""})
        elif kind == "image":
            parts.append({"type": "image", "image": (part.get("source") or {}).get("path", "")})
        else:
            conversation.leave_out(f"ATIF {kind} content part")
    return normalize_content(parts)


FORMAT = Atif()


def to_atif(example: TrainingExample) -> dict[str, Any]:
    """A row as one ATIF trajectory (a JSON-ready dict that validates as Harbor's ``Trajectory``).

    Each assistant message is an ``agent`` step whose observation holds the tool messages that
    follow it; system and developer messages are ``system`` steps, user messages ``user`` steps.
    """
    metadata = example.metadata
    steps = _steps(example.messages)
    agent = {
        "name": str(metadata.get("agent") or metadata.get("trace_type") or "teich"),
        "version": str(metadata.get("agent_version") or metadata.get("cli_version") or "unknown"),
        "model_name": _text_or_none(metadata.get("model")),
        "tool_definitions": example.tools or None,
    }
    trajectory = {
        "schema_version": SCHEMA_VERSION,
        "session_id": _text_or_none(metadata.get("session_id")),
        "agent": _without_nulls(agent),
        "steps": steps,
        "final_metrics": _final_metrics(metadata, len(steps)),
        "extra": _root_extra(example),
    }
    return _without_nulls(trajectory)


def _steps(messages: list[Message]) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "tool":
            _add_result(steps, message)
            continue
        step: dict[str, Any] = {"step_id": len(steps) + 1, "source": _STEP_SOURCE[message.role]}
        step["message"] = _atif_content(message.content) if message.content is not None else ""
        if message.role == "developer":
            step["extra"] = {"role": "developer"}
        if message.role == "assistant":
            step["reasoning_content"] = message.reasoning_content
            step["tool_calls"] = [
                {"tool_call_id": c.id, "function_name": c.function.name, "arguments": c.function.arguments}
                for c in message.tool_calls or []
            ] or None
        steps.append(_without_nulls(step))
    return steps


_STEP_SOURCE = MappingProxyType({"system": "system", "developer": "system", "user": "user", "assistant": "agent"})


def _add_result(steps: list[dict[str, Any]], message: Message) -> None:
    """A tool message as an observation result of the agent step before it (an empty one if there is none)."""
    if not steps or steps[-1]["source"] != "agent":
        steps.append({"step_id": len(steps) + 1, "source": "agent", "message": ""})
    step = steps[-1]
    call_names = {c["tool_call_id"]: c["function_name"] for c in step.get("tool_calls") or []}
    result: dict[str, Any] = {"content": _atif_content(message.content) if message.content is not None else ""}
    extra: dict[str, Any] = {"is_error": True} if message.is_error else {}
    if message.tool_call_id in call_names:
        result["source_call_id"] = message.tool_call_id
        if message.name and message.name != call_names[message.tool_call_id]:
            extra["name"] = message.name
    else:  # a result of no call in this step: the reference must stay out of source_call_id
        extra.update(tool_call_id=message.tool_call_id, name=message.name)
    result["extra"] = _without_nulls(extra) or None
    step.setdefault("observation", {"results": []})["results"].append(_without_nulls(result))


def _atif_content(content: Content) -> str | list[dict[str, Any]]:
    """Teich content as ATIF content: text, or ``ContentPart``s with images as ``{media_type, path}`` sources."""
    if content is None or isinstance(content, str):
        return content or ""
    parts = []
    for part in content:
        if part.get("type") == "image":
            location = part.get("image") or ""
            parts.append({"type": "image", "source": {"media_type": _image_type(location), "path": location}})
        else:
            parts.append({"type": "text", "text": part.get("text") or ""})
    return parts


def _image_type(location: str) -> str:
    """The MIME type of an image URL, data URL or path (ATIF allows JPEG, PNG, GIF and WebP; PNG when unsure)."""
    match = _DATA_URL.match(location)
    if match:
        kind = match.group(1).replace("image/jpg", "image/jpeg")
    else:
        suffix = Path(location.split("?")[0]).suffix.lower().lstrip(".")
        kind = f"image/{'jpeg' if suffix == 'jpg' else suffix}"
    return kind if kind in _IMAGE_TYPES else "image/png"


def _final_metrics(metadata: dict[str, Any], step_count: int) -> dict[str, Any]:
    """Totals where the row's metadata has them (usage spellings of the formats Teich reads), and the step count."""
    usage: dict[str, Any] = metadata["usage"] if isinstance(metadata.get("usage"), dict) else {}
    totals = {
        "total_prompt_tokens": _first_int(usage, "prompt_tokens", "input_tokens", "input"),
        "total_completion_tokens": _first_int(usage, "completion_tokens", "output_tokens", "output"),
        "total_cached_tokens": _first_int(
            usage, "cached_tokens", "cached_input_tokens", "cache_read_tokens", "cache_read_input_tokens", "cacheRead"
        ),
        "total_cost_usd": metadata.get("cost") if isinstance(metadata.get("cost"), (int, float)) else None,
        "total_steps": step_count,
    }
    return _without_nulls(totals)


def _first_int(usage: dict[str, Any], *keys: str) -> int | None:
    return next((int(usage[k]) for k in keys if isinstance(usage.get(k), int) and not isinstance(usage[k], bool)), None)


def _root_extra(example: TrainingExample) -> dict[str, Any] | None:
    """The root ``extra``: what an ATIF source had there, and the row's metadata under ``teich_metadata``."""
    metadata = {k: v for k, v in example.metadata.items() if k not in ("source_file", "source_line")}
    extra = metadata.pop("atif_extra", None)
    extra = dict(extra) if isinstance(extra, dict) else {}
    if metadata:
        extra[_TEICH_METADATA] = metadata
    return extra or None


def _text_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _without_nulls(mapping: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in mapping.items() if v is not None}
