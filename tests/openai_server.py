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
import socket
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

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

_MAX_BODY = 64 * 1024 * 1024
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


@dataclass
class RecordedRequest:
    """A request as the server saw it. ``headers`` has lower-case names (``headers["authorization"]``)."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    raw: bytes
    time: float

    @property
    def json(self) -> Any:
        return self.body


ScriptEntry = Reply | Fault | str | Callable[[Any], Reply | Fault | str]
Script = Sequence[ScriptEntry] | Callable[[Any], Reply | Fault | str]


class _Abort(Exception):
    """The server is shutting down, or the connection is gone: stop handling this request."""


def _new_id(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:24]}"


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
        normalized.append({"id": call.get("id") or _new_id("call_"), "name": function["name"], "arguments": arguments})
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
            items.append({"id": _new_id("rs_"), "type": "reasoning", "summary": summary})
        if self.content or not self.tool_calls:
            status = "incomplete" if self.finish_reason == "length" else "completed"
            text = {"type": "output_text", "annotations": [], "logprobs": [], "text": self.content or ""}
            items.append(
                {"id": _new_id("msg_"), "type": "message", "status": status, "role": "assistant", "content": [text]}
            )
        for call in self.tool_calls:
            items.append(
                {
                    "id": _new_id("fc_"),
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


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    owner: ScriptedServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client hanging up (after a timeout, or mid-stream) is its business, not a server error.
        if not isinstance(sys.exc_info()[1], OSError):
            with self.owner._lock:
                self.owner._errors.append(traceback.format_exc())


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ScriptedOpenAI/1.0"
    sys_version = ""
    timeout = 15  # seconds of socket inactivity before an idle/stuck connection is dropped
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - BaseHTTPRequestHandler's name
        pass

    def setup(self) -> None:
        super().setup()
        self.server.owner._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.owner._track(self.connection, add=False)

    # -- plumbing ---------------------------------------------------------------------------------

    def _wait(self, seconds: float) -> None:
        if seconds > 0 and self.server.owner._stopping.wait(seconds):
            raise _Abort

    def _send_bytes(self, status: int, data: bytes, content_type: str, headers: Mapping[str, str] = ()) -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(data)))
        self.send_header("x-request-id", _new_id("req_"))
        self.send_header("openai-processing-ms", "1")
        for name, value in dict(headers).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _send_json(self, status: int, payload: Any, headers: Mapping[str, str] = ()) -> None:
        self._send_bytes(status, json.dumps(payload).encode(), "application/json", headers)

    def _start_stream(self) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("transfer-encoding", "chunked")
        self.send_header("cache-control", "no-cache")
        self.send_header("x-request-id", _new_id("req_"))
        self.end_headers()

    def _write_chunk(self, data: bytes) -> None:
        if self.server.owner._stopping.is_set():
            raise _Abort
        self.wfile.write(b"%X\r\n%s\r\n" % (len(data), data))

    def _end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")

    def _drop(self) -> None:
        """Close the connection abruptly, without finishing the response."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    # -- dispatch ---------------------------------------------------------------------------------

    def do_GET(self) -> None:  # noqa: N802 - BaseHTTPRequestHandler's name
        self._handle("GET")

    def do_POST(self) -> None:  # noqa: N802 - BaseHTTPRequestHandler's name
        self._handle("POST")

    def do_DELETE(self) -> None:  # noqa: N802 - BaseHTTPRequestHandler's name
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        owner = self.server.owner
        owner._enter()
        try:
            self._dispatch(method)
        except _Abort:
            self._drop()
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError):
            self.close_connection = True
        finally:
            owner._leave()

    def _dispatch(self, method: str) -> None:
        owner = self.server.owner
        length = int(self.headers.get("content-length") or 0)
        if length > _MAX_BODY:
            self.close_connection = True
            self._send_json(413, _error_body(413, "Request body too large."))
            return
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        path = self.path.split("?", 1)[0]
        owner._record(
            RecordedRequest(method, path, {k.lower(): v for k, v in self.headers.items()}, body, raw, time.time())
        )

        if owner.api_key is not None and self.headers.get("authorization") != f"Bearer {owner.api_key}":
            self._send_json(401, _error_body(401))
            return
        if method == "GET" and path == "/v1/models":
            self._send_json(200, {"object": "list", "data": [owner._model(name) for name in owner.models]})
            return
        if method == "GET" and path.startswith("/v1/models/"):
            name = path[len("/v1/models/") :]
            if name in owner.models:
                self._send_json(200, owner._model(name))
            else:
                self._send_json(404, _error_body(404, f"The model '{name}' does not exist"))
            return
        if method != "POST" or path not in ("/v1/chat/completions", "/v1/responses"):
            self._send_json(404, _error_body(404, f"Unknown request URL: {method} {path}."))
            return
        if not isinstance(body, dict):
            self._send_json(400, _error_body(400, "We could not parse the JSON body of your request."))
            return
        problem = owner._validate(path, body)
        if problem:
            self._send_json(400, _error_body(400, problem))
            return

        entry = owner._next(body)
        if isinstance(entry, Fault):
            self._wait(entry.delay)
            if entry.disconnect:
                if body.get("stream"):
                    rendered = _Rendered(entry.reply or Reply(content=""), body)
                    self._start_stream()
                    if path == "/v1/responses":
                        first = next(rendered.response_events(_new_id("resp_"), body, True))
                        first = {"type": first["type"], "sequence_number": 0, **first}
                        self._write_chunk(f"event: {first['type']}\ndata: {json.dumps(first)}\n\n".encode())
                    else:
                        chunk = next(rendered.chat_chunks(_new_id("chatcmpl-"), owner.reasoning_field, False))
                        self._write_chunk(b"data: " + json.dumps(chunk).encode() + b"\n\n")
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
        rendered = _Rendered(Reply(content=""), body)
        self._start_stream()
        if path == "/v1/responses":
            first = next(rendered.response_events(_new_id("resp_"), body, True))
            first = {"type": first["type"], "sequence_number": 0, **first}
            self._write_chunk(f"event: {first['type']}\ndata: {json.dumps(first)}\n\n".encode())
            self._write_chunk(b'event: response.in_progress\ndata: {"type": "response.in_progress", "sequ\n\n')
        else:
            first = next(rendered.chat_chunks(_new_id("chatcmpl-"), self.server.owner.reasoning_field, False))
            self._write_chunk(b"data: " + json.dumps(first).encode() + b"\n\n")
            self._write_chunk(b'data: {"id": "chatcmpl-broken", "choices": [{"delta": \n\n')
            self._write_chunk(b"data: [DONE]\n\n")
        self._end_stream()

    def _chat(self, rendered: _Rendered, body: Mapping[str, Any]) -> None:
        owner = self.server.owner
        completion_id = _new_id("chatcmpl-")
        if not body.get("stream"):
            self._send_json(200, rendered.chat_completion(completion_id, owner.reasoning_field))
            return
        options = body.get("stream_options") if isinstance(body.get("stream_options"), Mapping) else {}
        include_usage = bool(options.get("include_usage"))
        self._start_stream()
        for index, chunk in enumerate(rendered.chat_chunks(completion_id, owner.reasoning_field, include_usage)):
            if index:
                self._wait(rendered.reply.stream_delay)
            self._write_chunk(b"data: " + json.dumps(chunk).encode() + b"\n\n")
        self._write_chunk(b"data: [DONE]\n\n")
        self._end_stream()

    def _responses(self, rendered: _Rendered, body: Mapping[str, Any]) -> None:
        owner = self.server.owner
        response_id = _new_id("resp_")
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
            self._write_chunk(f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode())
        self._end_stream()


class ScriptedServer:
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
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._requests: list[RecordedRequest] = []
        self._errors: list[str] = []
        self._in_flight = 0
        self._max_in_flight = 0
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.set_script(script)

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> ScriptedServer:
        if self._httpd is not None:
            return self
        self._stopping.clear()
        httpd = _HTTPServer(("127.0.0.1", 0), _Handler)
        httpd.owner = self
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="scripted-openai", daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving: wakes delayed handlers, drops open connections; returns within ~1 s."""
        httpd = self._httpd
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        httpd.server_close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=1.0)
        deadline = time.monotonic() + 1.0
        while self._in_flight and time.monotonic() < deadline:
            time.sleep(0.01)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> ScriptedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- public state -----------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("server is not running")
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``: pass as ``base_url`` to ``openai.OpenAI``/``AsyncOpenAI``."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received, in arrival order (a copy)."""
        with self._lock:
            return list(self._requests)

    @property
    def bodies(self) -> list[Any]:
        """The JSON bodies of the generation requests (``/chat/completions`` and ``/responses``)."""
        return [r.body for r in self.requests if r.path in ("/v1/chat/completions", "/v1/responses")]

    @property
    def errors(self) -> list[str]:
        """Problems on the server side: exhausted script, script exceptions, handler crashes."""
        with self._lock:
            return list(self._errors)

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def max_in_flight(self) -> int:
        """The most requests the server was handling at once (streams count until their last byte)."""
        return self._max_in_flight

    @property
    def remaining(self) -> int | None:
        """Unconsumed entries of a list script (``None`` for a function script)."""
        with self._lock:
            return None if self._function is not None else len(self._queue) - self._position

    def set_script(self, script: Script) -> None:
        """Replace the script (the position restarts at its first entry)."""
        with self._lock:
            if callable(script) and not isinstance(script, (Reply, Fault)):
                self._function: Callable[[Any], Reply | Fault | str] | None = script
                self._queue: list[ScriptEntry] = []
            else:
                if isinstance(script, (Reply, Fault, str)):
                    raise TypeError("script must be a list of entries or a function, not a single entry")
                self._function = None
                self._queue = list(script)
            self._position = 0

    def extend(self, *entries: ScriptEntry) -> None:
        """Append entries to a list script."""
        with self._lock:
            if self._function is not None:
                raise TypeError("the script is a function")
            self._queue.extend(entries)

    def reset(self) -> None:
        """Forget recorded requests, errors and the in-flight maximum."""
        with self._lock:
            self._requests.clear()
            self._errors.clear()
            self._max_in_flight = self._in_flight

    # -- used by the handler ----------------------------------------------------------------------

    def _track(self, connection: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def _enter(self) -> None:
        with self._lock:
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)

    def _leave(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

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

    def _next(self, body: Any) -> Reply | Fault:
        with self._lock:
            function = self._function
            entry: ScriptEntry | None = None
            if function is None:
                if self._position < len(self._queue):
                    entry = self._queue[self._position]
                    self._position += 1
                else:
                    message = f"script exhausted after {len(self._queue)} entries"
                    self._errors.append(message)
                    return Fault(500, _error_body(500, message), {"x-should-retry": "false"})
        try:
            resolved: Any = function(body) if function is not None else entry
            if callable(resolved) and not isinstance(resolved, (Reply, Fault)):
                resolved = resolved(body)
            if isinstance(resolved, str):
                resolved = Reply(content=resolved)
            if not isinstance(resolved, (Reply, Fault)):
                raise TypeError(f"script entry must be Reply, Fault or str, got {type(resolved).__name__}")
            return resolved
        except Exception:
            message = traceback.format_exc()
            with self._lock:
                self._errors.append(message)
            return Fault(
                500, _error_body(500, "script raised: " + message.strip().splitlines()[-1]), {"x-should-retry": "false"}
            )


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
