"""A scripted Anthropic Messages API server for tests (standard library only).

It speaks the wire protocol of the official ``anthropic`` SDK and the Claude Code CLI closely enough
that both work against it unmodified:

* ``POST /v1/messages``: a ``message`` object, or (``stream: true``) the SSE events ``message_start``,
  ``ping``, ``content_block_start`` / ``content_block_delta`` (``text_delta``, ``thinking_delta``,
  ``signature_delta``, ``input_json_delta``) / ``content_block_stop``, ``message_delta`` (stop reason,
  usage) and ``message_stop``.
* ``POST /v1/messages/count_tokens``: ``{"input_tokens": N}``.
* anything else: 404 in Anthropic's error shape.

Replies come from a script: a list consumed one entry per ``/v1/messages`` request, or a function
called with the request's JSON body. An entry is a list of content blocks (``text``, ``thinking``,
``tool_use``; ids and signatures are filled in), a ``str`` (one text block), a :class:`Reply`
(blocks plus stop reason / usage / model), an :class:`Error` or a bare ``int`` status, or a callable
taking the JSON body and returning one of those.

Usage::

    with AnthropicServer([[{"type": "tool_use", "name": "Bash", "input": {"command": "ls"}}], "done"]) as server:
        client = anthropic.Anthropic(base_url=server.base_url, api_key="test-key")
        ...
        assert server.bodies[0]["model"]
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from scripted_http import RecordedRequest, ScriptedHandler, ScriptedHTTPServer, new_id

__all__ = ["AnthropicServer", "Error", "RecordedRequest", "Reply"]

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


@dataclass
class Reply:
    """One assistant message. ``stop_reason`` defaults to ``tool_use`` when a block is a tool call,
    else ``end_turn``; ``usage`` overrides the computed ``input_tokens``/``output_tokens``/cache counts;
    ``model`` defaults to the request's; ``chunk_size`` is characters per streamed delta; ``delay`` is
    seconds to wait before answering (a slow or hung model)."""

    content: Sequence[Mapping[str, Any]] | str
    stop_reason: str | None = None
    usage: Mapping[str, int] = field(default_factory=dict)
    model: str | None = None
    chunk_size: int = 12
    delay: float = 0.0


@dataclass
class Error:
    """An error response ``{"type": "error", "error": {"type", "message"}}`` with ``status``."""

    status: int = 500
    message: str | None = None
    type: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        default = "api_error" if self.status >= 500 else "invalid_request_error"
        kind = self.type or _ERROR_TYPES.get(self.status, default)
        return {"type": "error", "error": {"type": kind, "message": self.message or f"Scripted error {self.status}"}}


def _tokens(value: Any) -> int:
    """A deterministic stand-in for a tokenizer: about four characters a token."""
    return max(1, len(value if isinstance(value, str) else json.dumps(value)) // 4)


def _blocks(reply: Reply) -> list[dict[str, Any]]:
    """The reply's content blocks, complete: tool ids and thinking signatures filled in."""
    content = [{"type": "text", "text": reply.content}] if isinstance(reply.content, str) else reply.content
    blocks = []
    for block in content:
        block = dict(block)
        if block["type"] == "tool_use":
            block = {
                "type": "tool_use",
                "id": block.get("id") or new_id("toolu_"),
                "name": block["name"],
                "input": block.get("input", {}),
            }
        elif block["type"] == "thinking":
            block.setdefault("signature", "sig_" + uuid.uuid4().hex)
        blocks.append(block)
    return blocks


def _message(reply: Reply, body: Mapping[str, Any], blocks: list[dict[str, Any]]) -> dict[str, Any]:
    stop = reply.stop_reason or ("tool_use" if any(b["type"] == "tool_use" for b in blocks) else "end_turn")
    usage = {
        "input_tokens": _tokens([body.get("system"), body.get("messages"), body.get("tools")]),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": sum(_tokens(b) for b in blocks) or 1,
        "service_tier": "standard",
        **reply.usage,
    }
    return {
        "id": new_id("msg_"),
        "type": "message",
        "role": "assistant",
        "model": reply.model or body.get("model"),
        "content": blocks,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": usage,
    }


def _events(message: dict[str, Any], chunk: int) -> Iterator[dict[str, Any]]:
    def pieces(text: str) -> list[str]:
        return [text[i : i + chunk] for i in range(0, len(text), chunk)]

    usage = message["usage"]
    start = {**message, "content": [], "stop_reason": None, "usage": {**usage, "output_tokens": 1}}
    yield {"type": "message_start", "message": start}
    yield {"type": "ping"}
    for index, block in enumerate(message["content"]):
        kind = block["type"]
        if kind == "text":
            yield {"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}
            deltas = [{"type": "text_delta", "text": p} for p in pieces(block["text"])]
        elif kind == "thinking":
            empty = {"type": "thinking", "thinking": "", "signature": ""}
            yield {"type": "content_block_start", "index": index, "content_block": empty}
            deltas = [{"type": "thinking_delta", "thinking": p} for p in pieces(block["thinking"])]
            deltas.append({"type": "signature_delta", "signature": block["signature"]})
        elif kind == "tool_use":
            yield {"type": "content_block_start", "index": index, "content_block": {**block, "input": {}}}
            deltas = [{"type": "input_json_delta", "partial_json": p} for p in pieces(json.dumps(block["input"]))]
        else:  # e.g. redacted_thinking: sent whole
            yield {"type": "content_block_start", "index": index, "content_block": block}
            deltas = []
        for delta in deltas:
            yield {"type": "content_block_delta", "index": index, "delta": delta}
        yield {"type": "content_block_stop", "index": index}
    delta = {"stop_reason": message["stop_reason"], "stop_sequence": None}
    yield {"type": "message_delta", "delta": delta, "usage": {"output_tokens": usage["output_tokens"]}}
    yield {"type": "message_stop"}


class _Handler(ScriptedHandler):
    server_version = "ScriptedAnthropic/1.0"
    timeout = 30

    def send_error_reply(self, status: int, message: str | None = None) -> None:
        self._send_json(status, Error(status, message).body())

    def dispatch(self, request: RecordedRequest) -> None:
        method, path, body = request.method, request.path, request.body
        if method == "POST" and path == "/v1/messages/count_tokens" and isinstance(body, dict):
            self._send_json(200, {"input_tokens": _message(Reply(""), body, [])["usage"]["input_tokens"]})
        elif method == "POST" and path == "/v1/messages" and isinstance(body, dict):
            self._messages(self.server.owner._next(body), body)
        elif method == "POST" and path == "/v1/messages":
            self.send_error_reply(400, "Request body is not a JSON object.")
        else:
            self.send_error_reply(404, f"Not found: {method} {path}")

    def _messages(self, reply: Reply | Error, body: Mapping[str, Any]) -> None:
        if isinstance(reply, Error):
            self._send_json(reply.status, reply.body(), reply.headers)
            return
        self._wait(reply.delay)
        message = _message(reply, body, _blocks(reply))
        if not body.get("stream"):
            self._send_json(200, message)
            return
        self._start_stream()
        for event in _events(message, max(1, reply.chunk_size)):
            self._write_event(event, event["type"])
        self._end_stream()


class AnthropicServer(ScriptedHTTPServer):
    """An Anthropic Messages API server on 127.0.0.1 answering ``/v1/messages`` from ``script``: a list of
    entries (content blocks, ``str``, :class:`Reply`, :class:`Error`, ``int``, or ``callable(body) -> entry``)
    consumed one per request, or a single callable ``(body) -> entry`` called for every request.

    When a list script runs out, or a script function raises, the server answers 500 with
    ``x-should-retry: false`` and records the problem in :attr:`errors`.
    """

    handler = _Handler
    generation_paths = ("/v1/messages",)
    thread_name = "scripted-anthropic"

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``: the SDK's ``base_url`` and Claude Code's ``ANTHROPIC_BASE_URL``."""
        return f"http://127.0.0.1:{self.port}"

    def _coerce(self, value: Any) -> Reply | Error:
        if isinstance(value, (Reply, Error)):
            return value
        if isinstance(value, bool) or not isinstance(value, (int, str, list, tuple)):
            raise TypeError(f"script entry must be blocks, str, int, Reply or Error, got {type(value).__name__}")
        if isinstance(value, int):
            return Error(value)
        return Reply(value)

    def _failure(self, message: str, headers: Mapping[str, str]) -> Error:
        return Error(500, message, headers=headers)
