"""A scripted OpenAI-compatible HTTP server for tests (standard library only).

It speaks the two wire protocols the official ``openai`` SDK uses, closely enough that the SDK works
against it unmodified:

* ``POST /v1/chat/completions``: JSON, or ``text/event-stream`` chunks ending in ``data: [DONE]``
  (with a final usage chunk when ``stream_options.include_usage`` is set). Reasoning goes in the
  message/delta field ``reasoning_content`` (DeepSeek/vLLM) or whatever ``reasoning_field`` names
  (``"reasoning"`` for OpenRouter).
* ``POST /v1/responses``: a ``response`` object, or named SSE events (``response.created`` ...
  ``response.completed``), each carrying ``type`` and ``sequence_number``.
* ``GET /v1/models`` and ``GET /v1/models/{id}``.

Replies come from a script: a list consumed one entry per generation request, or a function called
with the request's JSON body. Entries are :class:`Reply` (a protocol-neutral answer), :class:`Fault`
(an HTTP error, a delay, a malformed body, a dropped connection), a plain ``str`` (shorthand for
``Reply(content=...)``), or a callable taking the JSON body and returning one of those.

Usage::

    with ScriptedServer([Reply(content="hi", reasoning="think")]) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="sk-test")
        ...
        assert server.requests[0].headers["authorization"] == "Bearer sk-test"
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from scripted_http import RecordedRequest, ScriptedHandler, ScriptedHTTPServer, new_id

__all__ = [
    "FAST_RETRY",
    "Fault",
    "RecordedRequest",
    "Reply",
    "ScriptedServer",
    "Usage",
    "count_tokens",
    "scripted_servers",
]

# Headers that make the openai SDK retry after ~1 ms instead of its 0.5-8 s exponential backoff.
# (``retry-after: 0`` does NOT do that: the SDK only honours values > 0 and falls back to backoff.)
FAST_RETRY: dict[str, str] = {"retry-after-ms": "1"}

_TOKEN = re.compile(r"\w+|[^\w\s]")
_PIECE = re.compile(r"\S+\s*|\s+")


def count_tokens(text: str | None) -> int:
    """The double's deterministic stand-in for a tokenizer: words and punctuation marks."""
    return len(_TOKEN.findall(text)) if text else 0


@dataclass
class Usage:
    """Token counts for a reply; any field left ``None`` is computed from the request/reply text.

    ``completion_tokens`` includes ``reasoning_tokens`` (the OpenAI convention). Maps to
    ``prompt_tokens``/``completion_tokens``/``completion_tokens_details.reasoning_tokens``/
    ``prompt_tokens_details.cached_tokens`` on Chat Completions and to ``input_tokens``/``output_tokens``/
    ``output_tokens_details.reasoning_tokens``/``input_tokens_details.cached_tokens`` on Responses.
    """

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    reasoning_tokens: int | None = None
    cached_tokens: int | None = None

    @classmethod
    def coerce(cls, value: Usage | Mapping[str, int] | None) -> Usage:
        if value is None:
            return cls()
        if isinstance(value, Usage):
            return value
        aliases = {"input_tokens": "prompt_tokens", "output_tokens": "completion_tokens"}
        return cls(**{aliases.get(key, key): number for key, number in value.items()})


@dataclass
class Reply:
    """One successful model answer, rendered in whichever protocol the request used.

    content: the assistant text (``None`` = no text; rendered as ``""`` unless there are tool calls,
        in which case Chat Completions sends ``content: null`` and Responses emits no message item).
    reasoning: reasoning text; Chat Completions puts it in ``message[reasoning_field]`` /
        ``delta[reasoning_field]``, Responses in a ``reasoning`` output item's ``summary_text``.
    tool_calls: dicts, either ``{"name", "arguments", "id"?}`` (``arguments`` a str or a JSON-able
        value) or the Chat wire form ``{"id", "type": "function", "function": {"name", "arguments"}}``.
    usage: a :class:`Usage`, a dict of its fields (``input_tokens``/``output_tokens`` accepted as
        aliases), or ``None`` to compute every count.
    finish_reason: defaults to ``"tool_calls"`` when there are tool calls, else ``"stop"``.
        (``"length"`` also makes a Responses reply ``status: "incomplete"``.)
    model: the model name reported; defaults to the request's ``model``.
    delay: seconds to wait before sending the response headers.
    stream_delay: seconds to wait between SSE events/chunks when streaming.
    chunk_size: characters per streamed delta; ``None`` streams word by word.
    """

    content: str | None = None
    reasoning: str | None = None
    tool_calls: Sequence[Mapping[str, Any]] | None = None
    usage: Usage | Mapping[str, int] | None = None
    finish_reason: str | None = None
    model: str | None = None
    delay: float = 0.0
    stream_delay: float = 0.0
    chunk_size: int | None = None


@dataclass
class Fault:
    """A failure to inject instead of (or before) a reply.

    status: HTTP status for an error response (e.g. 400, 401, 429, 500, 503).
    body: the error body: ``None`` = the OpenAI envelope ``{"error": {"message", "type", "param",
        "code"}}``; a dict/list is sent as JSON; a str/bytes is sent verbatim.
    headers: extra response headers, e.g. ``{"retry-after": "1"}`` or :data:`FAST_RETRY`.
    delay: seconds to wait first. A Fault with only a delay then answers with ``reply`` (default
        ``Reply(content="")``), which is how to make a slow success.
    malformed: send a 200 whose body is not valid JSON (non-streaming), or an SSE stream whose
        second event carries invalid JSON (streaming).
    disconnect: drop the connection: with no response at all (non-streaming), or after the headers
        and first event without finishing the chunked body (streaming).
    reply: what a delay-only fault answers with after the delay.
    """

    status: int | None = None
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0
    malformed: bool = False
    disconnect: bool = False
    reply: Reply | None = None


ScriptEntry = Reply | Fault | str | Callable[[Any], Reply | Fault | str]
Script = Sequence[ScriptEntry] | Callable[[Any], Reply | Fault | str]


def _pieces(text: str, chunk_size: int | None) -> list[str]:
    if not text:
        return []
    if chunk_size:
        return [text[i : i + chunk_size] for i in range(0, len(text), chunk_size)]
    return _PIECE.findall(text)


def _normalize_tool_calls(tool_calls: Sequence[Mapping[str, Any]] | None) -> list[dict[str, str]]:
    normalized = []
    for call in tool_calls or ():
        function = call.get("function") if isinstance(call.get("function"), Mapping) else call
        arguments = function.get("arguments", "")
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments)
        normalized.append({"id": call.get("id") or new_id("call_"), "name": function["name"], "arguments": arguments})
    return normalized


def _request_text(body: Mapping[str, Any]) -> str:
    """All the text in a request, for the default prompt token count."""
    parts: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, str):
            parts.append(value)
        elif isinstance(value, Mapping):
            for key, item in value.items():
                if key not in ("role", "type", "tool_call_id", "call_id", "id"):
                    walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(body.get("messages"))
    walk(body.get("input"))
    walk(body.get("instructions"))
    return "\n".join(parts)


def _error_body(status: int, message: str | None = None) -> dict[str, Any]:
    kinds = {
        400: ("invalid_request_error", None, "Invalid request."),
        401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
        404: ("invalid_request_error", "not_found", "Not found."),
        429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests."),
        500: ("server_error", None, "The server had an error while processing your request."),
        503: ("server_error", "service_unavailable", "The server is overloaded or not ready yet."),
    }
    kind, code, default = kinds.get(status, ("server_error" if status >= 500 else "invalid_request_error", None, ""))
    return {"error": {"message": message or default or f"HTTP {status}", "type": kind, "param": None, "code": code}}


class _Rendered:
    """A Reply resolved against a request: ids, tool calls and token counts fixed once."""

    def __init__(self, reply: Reply, body: Mapping[str, Any]) -> None:
        self.reply = reply
        self.model = reply.model or str(body.get("model") or "scripted-model")
        self.reasoning = reply.reasoning or ""
        self.tool_calls = _normalize_tool_calls(reply.tool_calls)
        self.content = reply.content if reply.content is not None else ("" if not self.tool_calls else None)
        self.finish_reason = reply.finish_reason or ("tool_calls" if self.tool_calls else "stop")
        usage = Usage.coerce(reply.usage)
        reasoning_tokens = (
            usage.reasoning_tokens if usage.reasoning_tokens is not None else count_tokens(self.reasoning)
        )
        completion = usage.completion_tokens
        if completion is None:
            completion = (
                count_tokens(self.content)
                + reasoning_tokens
                + sum(count_tokens(call["name"]) + count_tokens(call["arguments"]) for call in self.tool_calls)
            )
        self.prompt_tokens = (
            usage.prompt_tokens if usage.prompt_tokens is not None else max(1, count_tokens(_request_text(body)))
        )
        self.completion_tokens = completion
        self.reasoning_tokens = reasoning_tokens
        self.cached_tokens = usage.cached_tokens or 0
        self.created = int(time.time())

    # -- Chat Completions -------------------------------------------------------------------------

    def chat_usage(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": self.cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": self.reasoning_tokens,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    def chat_tool_calls(self) -> list[dict[str, Any]]:
        return [
            {"id": call["id"], "type": "function", "function": {"name": call["name"], "arguments": call["arguments"]}}
            for call in self.tool_calls
        ]

    def chat_completion(self, completion_id: str, reasoning_field: str) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": self.content, "refusal": None}
        if self.reasoning:
            message[reasoning_field] = self.reasoning
        if self.tool_calls:
            message["tool_calls"] = self.chat_tool_calls()
        return {
            "id": completion_id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": self.finish_reason}],
            "usage": self.chat_usage(),
            "service_tier": "default",
            "system_fingerprint": "fp_scripted",
        }

    def chat_chunks(self, completion_id: str, reasoning_field: str, include_usage: bool) -> Iterator[dict[str, Any]]:
        size = self.reply.chunk_size

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
            data = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "system_fingerprint": "fp_scripted",
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
            }
            if include_usage:
                data["usage"] = None
            return data

        yield chunk({"role": "assistant", "content": "", "refusal": None})
        for piece in _pieces(self.reasoning, size):
            yield chunk({reasoning_field: piece})
        for piece in _pieces(self.content or "", size):
            yield chunk({"content": piece})
        for index, call in enumerate(self.tool_calls):
            head = {"name": call["name"], "arguments": ""}
            yield chunk({"tool_calls": [{"index": index, "id": call["id"], "type": "function", "function": head}]})
            for piece in _pieces(call["arguments"], size or 16):
                yield chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
        yield chunk({}, self.finish_reason)
        if include_usage:
            final = chunk({})
            final["choices"] = []
            final["usage"] = self.chat_usage()
            yield final

    # -- Responses --------------------------------------------------------------------------------

    def responses_usage(self) -> dict[str, Any]:
        return {
            "input_tokens": self.prompt_tokens,
            "input_tokens_details": {"cached_tokens": self.cached_tokens, "cache_write_tokens": 0},
            "output_tokens": self.completion_tokens,
            "output_tokens_details": {"reasoning_tokens": self.reasoning_tokens},
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }

    def response_items(self, summarize: bool) -> list[dict[str, Any]]:
        """The finished output items, each with its id."""
        items: list[dict[str, Any]] = []
        if self.reasoning or self.reply.reasoning is not None:
            summary = [{"type": "summary_text", "text": self.reasoning}] if summarize and self.reasoning else []
            items.append({"id": new_id("rs_"), "type": "reasoning", "summary": summary})
        if self.content or not self.tool_calls:
            status = "incomplete" if self.finish_reason == "length" else "completed"
            text = {"type": "output_text", "annotations": [], "logprobs": [], "text": self.content or ""}
            items.append(
                {"id": new_id("msg_"), "type": "message", "status": status, "role": "assistant", "content": [text]}
            )
        for call in self.tool_calls:
            items.append(
                {
                    "id": new_id("fc_"),
                    "type": "function_call",
                    "status": "completed",
                    "arguments": call["arguments"],
                    "call_id": call["id"],
                    "name": call["name"],
                }
            )
        return items

    def response(
        self, response_id: str, body: Mapping[str, Any], items: list[dict[str, Any]], status: str
    ) -> dict[str, Any]:
        done = status in ("completed", "incomplete")
        if done and self.finish_reason == "length":
            status = "incomplete"
        reasoning = body.get("reasoning") if isinstance(body.get("reasoning"), Mapping) else {}
        return {
            "id": response_id,
            "object": "response",
            "created_at": self.created,
            "status": status,
            "background": False,
            "completed_at": int(time.time()) if done else None,
            "error": None,
            "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
            "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"),
            "max_tool_calls": None,
            "model": self.model,
            "output": items if done else [],
            "parallel_tool_calls": body.get("parallel_tool_calls", True),
            "previous_response_id": body.get("previous_response_id"),
            "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
            "service_tier": "default",
            "store": body.get("store", True),
            "temperature": body.get("temperature", 1.0),
            "text": {"format": {"type": "text"}, "verbosity": "medium"},
            "tool_choice": body.get("tool_choice", "auto"),
            "tools": body.get("tools", []),
            "top_logprobs": 0,
            "top_p": body.get("top_p", 1.0),
            "truncation": "disabled",
            "usage": self.responses_usage() if done else None,
            "user": None,
            "metadata": body.get("metadata") or {},
        }

    def response_events(self, response_id: str, body: Mapping[str, Any], summarize: bool) -> Iterator[dict[str, Any]]:
        """Responses stream events, without ``sequence_number`` (the writer numbers them)."""
        size = self.reply.chunk_size
        yield {"type": "response.created", "response": self.response(response_id, body, [], "in_progress")}
        yield {"type": "response.in_progress", "response": self.response(response_id, body, [], "in_progress")}
        items = self.response_items(summarize)
        for index, item in enumerate(items):
            base = {"item_id": item["id"], "output_index": index}
            if item["type"] == "reasoning":
                yield {"type": "response.output_item.added", "output_index": index, "item": {**item, "summary": []}}
                for summary_index, part in enumerate(item["summary"]):
                    where = {**base, "summary_index": summary_index}
                    yield {
                        "type": "response.reasoning_summary_part.added",
                        **where,
                        "part": {"type": "summary_text", "text": ""},
                    }
                    for piece in _pieces(part["text"], size):
                        yield {"type": "response.reasoning_summary_text.delta", **where, "delta": piece}
                    yield {"type": "response.reasoning_summary_text.done", **where, "text": part["text"]}
                    yield {"type": "response.reasoning_summary_part.done", **where, "part": dict(part)}
            elif item["type"] == "message":
                added = {**item, "status": "in_progress", "content": []}
                yield {"type": "response.output_item.added", "output_index": index, "item": added}
                for content_index, part in enumerate(item["content"]):
                    where = {**base, "content_index": content_index}
                    yield {"type": "response.content_part.added", **where, "part": {**part, "text": ""}}
                    for piece in _pieces(part["text"], size):
                        yield {"type": "response.output_text.delta", **where, "delta": piece, "logprobs": []}
                    yield {"type": "response.output_text.done", **where, "text": part["text"], "logprobs": []}
                    yield {"type": "response.content_part.done", **where, "part": dict(part)}
            else:  # function_call
                added = {**item, "status": "in_progress", "arguments": ""}
                yield {"type": "response.output_item.added", "output_index": index, "item": added}
                for piece in _pieces(item["arguments"], size or 16):
                    yield {"type": "response.function_call_arguments.delta", **base, "delta": piece}
                yield {"type": "response.function_call_arguments.done", **base, "arguments": item["arguments"]}
            yield {"type": "response.output_item.done", "output_index": index, "item": item}
        final = self.response(response_id, body, items, "completed")
        yield {"type": f"response.{final['status']}", "response": final}


class _Handler(ScriptedHandler):
    server_version = "ScriptedOpenAI/1.0"
    request_id_header = "x-request-id"
    json_headers = {"openai-processing-ms": "1"}

    def send_error_reply(self, status: int, message: str | None = None) -> None:
        self._send_json(status, _error_body(status, message))

    def dispatch(self, request: RecordedRequest) -> None:
        owner = self.server.owner
        method, path, body = request.method, request.path, request.body
        if owner.api_key is not None and self.headers.get("authorization") != f"Bearer {owner.api_key}":
            self.send_error_reply(401)
            return
        if method == "GET" and path == "/v1/models":
            self._send_json(200, {"object": "list", "data": [owner._model(name) for name in owner.models]})
            return
        if method == "GET" and path.startswith("/v1/models/"):
            name = path[len("/v1/models/") :]
            if name in owner.models:
                self._send_json(200, owner._model(name))
            else:
                self.send_error_reply(404, f"The model '{name}' does not exist")
            return
        if method != "POST" or path not in ("/v1/chat/completions", "/v1/responses"):
            self.send_error_reply(404, f"Unknown request URL: {method} {path}.")
            return
        if not isinstance(body, dict):
            self.send_error_reply(400, "We could not parse the JSON body of your request.")
            return
        problem = owner._validate(path, body)
        if problem:
            self.send_error_reply(400, problem)
            return

        entry = owner._next(body)
        if isinstance(entry, Fault):
            self._wait(entry.delay)
            if entry.disconnect:
                if body.get("stream"):
                    self._start_stream()
                    self._write_first_event(path, _Rendered(entry.reply or Reply(content=""), body), body)
                self._drop()
                return
            if entry.status is not None:
                payload = entry.body if entry.body is not None else _error_body(entry.status)
                if isinstance(payload, (str, bytes)):
                    data = payload.encode() if isinstance(payload, str) else payload
                    self._send_bytes(entry.status, data, "text/plain; charset=utf-8", entry.headers)
                else:
                    self._send_json(entry.status, payload, entry.headers)
                return
            if entry.malformed:
                self._malformed(path, body, entry.headers)
                return
            entry = entry.reply or Reply(content="")
        self._wait(entry.delay)
        rendered = _Rendered(entry, body)
        if path == "/v1/chat/completions":
            self._chat(rendered, body)
        else:
            self._responses(rendered, body)

    def _malformed(self, path: str, body: Mapping[str, Any], headers: Mapping[str, str]) -> None:
        if not body.get("stream"):
            self._send_bytes(
                200, b'{"id": "broken", "object": "chat.completion", "choices": [', "application/json", headers
            )
            return
        self._start_stream()
        self._write_first_event(path, _Rendered(Reply(content=""), body), body)
        if path == "/v1/responses":
            self._write_chunk(b'event: response.in_progress\ndata: {"type": "response.in_progress", "sequ\n\n')
        else:
            self._write_chunk(b'data: {"id": "chatcmpl-broken", "choices": [{"delta": \n\n')
            self._write_chunk(b"data: [DONE]\n\n")
        self._end_stream()

    def _write_first_event(self, path: str, rendered: _Rendered, body: Mapping[str, Any]) -> None:
        """The first event of a stream (what a fault sends before it breaks the stream)."""
        if path == "/v1/responses":
            first = next(rendered.response_events(new_id("resp_"), body, True))
            self._write_event({"type": first["type"], "sequence_number": 0, **first}, first["type"])
        else:
            self._write_event(next(rendered.chat_chunks(new_id("chatcmpl-"), self.server.owner.reasoning_field, False)))

    def _chat(self, rendered: _Rendered, body: Mapping[str, Any]) -> None:
        owner = self.server.owner
        completion_id = new_id("chatcmpl-")
        if not body.get("stream"):
            self._send_json(200, rendered.chat_completion(completion_id, owner.reasoning_field))
            return
        options = body.get("stream_options") if isinstance(body.get("stream_options"), Mapping) else {}
        include_usage = bool(options.get("include_usage"))
        self._start_stream()
        for index, chunk in enumerate(rendered.chat_chunks(completion_id, owner.reasoning_field, include_usage)):
            if index:
                self._wait(rendered.reply.stream_delay)
            self._write_event(chunk)
        self._write_chunk(b"data: [DONE]\n\n")
        self._end_stream()

    def _responses(self, rendered: _Rendered, body: Mapping[str, Any]) -> None:
        owner = self.server.owner
        response_id = new_id("resp_")
        reasoning = body.get("reasoning") if isinstance(body.get("reasoning"), Mapping) else {}
        summarize = not owner.strict_reasoning_summary or bool(reasoning.get("summary"))
        if not body.get("stream"):
            items = rendered.response_items(summarize)
            self._send_json(200, rendered.response(response_id, body, items, "completed"))
            return
        self._start_stream()
        for sequence_number, event in enumerate(rendered.response_events(response_id, body, summarize)):
            if sequence_number:
                self._wait(rendered.reply.stream_delay)
            event = {"type": event["type"], "sequence_number": sequence_number, **event}
            self._write_event(event, event["type"])
        self._end_stream()


class ScriptedServer(ScriptedHTTPServer):
    """An OpenAI-compatible server on 127.0.0.1 that answers from a script.

    Parameters:
        script: a list of entries (:class:`Reply`, :class:`Fault`, ``str``, or ``callable(body) -> entry``)
            consumed one per ``/chat/completions`` or ``/responses`` request, or a single callable
            ``(body) -> Reply | Fault | str`` called for every such request.
        reasoning_field: the Chat Completions message/delta field carrying reasoning
            (``"reasoning_content"``; ``"reasoning"`` for OpenRouter style).
        models: the ids ``GET /v1/models`` lists.
        api_key: when set, requests without ``Authorization: Bearer <api_key>`` get a 401.
        validate: reject (400) chat requests without ``model``/``messages`` and responses requests
            without ``model``, as the real API does.
        strict_reasoning_summary: like the real Responses API, send reasoning summary text only when
            the request asked for it (``reasoning={"summary": ...}``); the reasoning item is still sent.

    When a list script runs out, or a script function raises, the server answers 500 with
    ``x-should-retry: false`` (so the SDK does not retry) and records the problem in :attr:`errors`.
    """

    handler = _Handler
    generation_paths = ("/v1/chat/completions", "/v1/responses")
    thread_name = "scripted-openai"

    def __init__(
        self,
        script: Script = (),
        *,
        reasoning_field: str = "reasoning_content",
        models: Sequence[str] = ("scripted-model",),
        api_key: str | None = None,
        validate: bool = True,
        strict_reasoning_summary: bool = False,
    ) -> None:
        self.reasoning_field = reasoning_field
        self.models = list(models)
        self.api_key = api_key
        self.validate = validate
        self.strict_reasoning_summary = strict_reasoning_summary
        super().__init__(script)

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``: pass as ``base_url`` to ``openai.OpenAI``/``AsyncOpenAI``."""
        return f"http://127.0.0.1:{self.port}/v1"

    def _coerce(self, value: Any) -> Reply | Fault:
        if isinstance(value, str):
            value = Reply(content=value)
        if not isinstance(value, (Reply, Fault)):
            raise TypeError(f"script entry must be Reply, Fault or str, got {type(value).__name__}")
        return value

    def _failure(self, message: str, headers: Mapping[str, str]) -> Fault:
        return Fault(500, _error_body(500, message), headers)

    def _model(self, name: str) -> dict[str, Any]:
        return {"id": name, "object": "model", "created": 1700000000, "owned_by": "scripted"}

    def _validate(self, path: str, body: Mapping[str, Any]) -> str | None:
        if not self.validate:
            return None
        if not isinstance(body.get("model"), str) or not body["model"]:
            return "you must provide a model parameter"
        if path == "/v1/chat/completions":
            messages = body.get("messages")
            if not isinstance(messages, list) or not messages:
                return "'messages' must be a non-empty array"
        return None


@contextlib.contextmanager
def scripted_servers() -> Iterator[Callable[..., ScriptedServer]]:
    """A server factory: ``make(script, **options)`` starts a :class:`ScriptedServer`; all are closed on exit.

    The fixture a test module declares (importing a fixture trips ruff's F811)::

        @pytest.fixture
        def scripted_server():
            with scripted_servers() as make:
                yield make
    """
    servers: list[ScriptedServer] = []

    def make(script: Script = (), **options: Any) -> ScriptedServer:
        server = ScriptedServer(script, **options).start()
        servers.append(server)
        return server

    try:
        yield make
    finally:
        for server in servers:
            server.close()
