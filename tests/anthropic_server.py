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
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

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
    ``model`` defaults to the request's; ``chunk_size`` is characters per streamed delta."""

    content: Sequence[Mapping[str, Any]] | str
    stop_reason: str | None = None
    usage: Mapping[str, int] = field(default_factory=dict)
    model: str | None = None
    chunk_size: int = 12


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


@dataclass
class RecordedRequest:
    """A request as the server saw it. ``headers`` has lower-case names."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    time: float


Entry = Reply | Error | Sequence[Mapping[str, Any]] | str | int | Callable[[Any], Any]
Script = Sequence[Entry] | Callable[[Any], Any]


def _id(prefix: str) -> str:
    return prefix + uuid.uuid4().hex[:24]


def _tokens(value: Any) -> int:
    """A deterministic stand-in for a tokenizer: about four characters a token."""
    return max(1, len(value if isinstance(value, str) else json.dumps(value)) // 4)


def _coerce(entry: Any) -> Reply | Error:
    if isinstance(entry, (Reply, Error)):
        return entry
    if isinstance(entry, bool) or not isinstance(entry, (int, str, list, tuple)):
        raise TypeError(f"script entry must be blocks, str, int, Reply or Error, got {type(entry).__name__}")
    if isinstance(entry, int):
        return Error(entry)
    return Reply(entry)


def _blocks(reply: Reply) -> list[dict[str, Any]]:
    """The reply's content blocks, complete: tool ids and thinking signatures filled in."""
    content = [{"type": "text", "text": reply.content}] if isinstance(reply.content, str) else reply.content
    blocks = []
    for block in content:
        block = dict(block)
        if block["type"] == "tool_use":
            block = {
                "type": "tool_use",
                "id": block.get("id") or _id("toolu_"),
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
        "id": _id("msg_"),
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


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ScriptedAnthropic/1.0"
    timeout = 30
    server: Any

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - BaseHTTPRequestHandler's name
        pass

    def _send(self, status: int, payload: Any, headers: Mapping[str, str] = ()) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.send_header("request-id", _id("req_"))
        for name, value in dict(headers).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 - BaseHTTPRequestHandler's name
        self._handle("GET")

    def do_POST(self) -> None:  # noqa: N802 - BaseHTTPRequestHandler's name
        self._handle("POST")

    def _handle(self, method: str) -> None:
        owner: AnthropicServer = self.server.owner
        raw = self.rfile.read(int(self.headers.get("content-length") or 0))
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        path = self.path.split("?", 1)[0]
        owner._record(RecordedRequest(method, path, {k.lower(): v for k, v in self.headers.items()}, body, time.time()))
        try:
            if method == "POST" and path == "/v1/messages/count_tokens" and isinstance(body, dict):
                self._send(200, {"input_tokens": _message(Reply(""), body, [])["usage"]["input_tokens"]})
            elif method == "POST" and path == "/v1/messages" and isinstance(body, dict):
                self._messages(owner._next(body), body)
            elif method == "POST" and path == "/v1/messages":
                self._send(400, Error(400, "Request body is not a JSON object.").body())
            else:
                self._send(404, Error(404, f"Not found: {method} {path}").body())
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True

    def _messages(self, reply: Reply | Error, body: Mapping[str, Any]) -> None:
        if isinstance(reply, Error):
            self._send(reply.status, reply.body(), reply.headers)
            return
        message = _message(reply, body, _blocks(reply))
        if not body.get("stream"):
            self._send(200, message)
            return
        self.send_response(200)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("transfer-encoding", "chunked")
        self.send_header("cache-control", "no-cache")
        self.send_header("request-id", _id("req_"))
        self.end_headers()
        for event in _events(message, max(1, reply.chunk_size)):
            data = f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()
            self.wfile.write(b"%X\r\n%s\r\n" % (len(data), data))
        self.wfile.write(b"0\r\n\r\n")


class AnthropicServer:
    """An Anthropic Messages API server on 127.0.0.1 answering ``/v1/messages`` from ``script``.

    When a list script runs out, or a script function raises, the server answers 500 with
    ``x-should-retry: false`` and records the problem in :attr:`errors`.
    """

    def __init__(self, script: Script = ()) -> None:
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self.errors: list[str] = []
        self._script = script if callable(script) else list(script)
        self._position = 0
        self._httpd: ThreadingHTTPServer | None = None

    def start(self) -> AnthropicServer:
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        httpd.daemon_threads = True
        httpd.owner = self  # type: ignore[attr-defined]
        self._httpd = httpd
        threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def close(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> AnthropicServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def port(self) -> int:
        assert self._httpd is not None, "server is not running"
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``: the SDK's ``base_url`` and Claude Code's ``ANTHROPIC_BASE_URL``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received, in arrival order (a copy)."""
        with self._lock:
            return list(self._requests)

    @property
    def bodies(self) -> list[Any]:
        """The JSON bodies of the ``POST /v1/messages`` requests."""
        return [r.body for r in self.requests if r.path == "/v1/messages"]

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _next(self, body: Any) -> Reply | Error:
        try:
            with self._lock:
                if callable(self._script):
                    entry = self._script
                elif self._position < len(self._script):
                    entry = self._script[self._position]
                    self._position += 1
                else:
                    raise LookupError(f"script exhausted after {len(self._script)} entries")
            while callable(entry):
                entry = entry(body)
            return _coerce(entry)
        except Exception:
            problem = traceback.format_exc()
            with self._lock:
                self.errors.append(problem)
            message = "script failed: " + problem.strip().splitlines()[-1]
            return Error(500, message, headers={"x-should-retry": "false"})
