"""The plumbing the scripted API servers share (standard library only).

:class:`ScriptedHTTPServer` runs a threaded HTTP server on 127.0.0.1, records every request, walks a
script (a list consumed one entry per generation request, or a function called with each request's
JSON body) and collects server-side problems in ``errors``. :class:`ScriptedHandler` reads and records
each request and sends JSON replies and chunked server-sent events. A server module subclasses both
and adds only its wire protocol: paths, reply shapes, stream events and error bodies
(``openai_server.py``, ``anthropic_server.py``).
"""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, TypeVar

__all__ = ["RecordedRequest", "ScriptedHTTPServer", "ScriptedHandler", "new_id"]

MAX_BODY = 64 * 1024 * 1024
_NO_RETRY = {"x-should-retry": "false"}  # the SDKs do not retry a failure that carries it
_Server = TypeVar("_Server", bound="ScriptedHTTPServer")


def new_id(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:24]}"


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


class _Abort(Exception):
    """The server is shutting down, or the connection is gone: stop handling this request."""


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    owner: ScriptedHTTPServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client hanging up (after a timeout, or mid-stream) is its business, not a server error.
        if not isinstance(sys.exc_info()[1], OSError):
            self.owner._error(traceback.format_exc())


class ScriptedHandler(BaseHTTPRequestHandler):
    """Reads and records a request, then hands it to :meth:`dispatch`; sends JSON and SSE replies.

    A subclass sets ``server_version`` and ``request_id_header``, and implements :meth:`dispatch` and
    :meth:`send_error_reply` (the protocol's error body).
    """

    protocol_version = "HTTP/1.1"
    sys_version = ""
    timeout = 15  # seconds of socket inactivity before an idle/stuck connection is dropped
    request_id_header = "request-id"
    json_headers: ClassVar[Mapping[str, str]] = {}  # sent with every non-streamed reply
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

    # -- what a protocol implements ---------------------------------------------------------------

    def dispatch(self, request: RecordedRequest) -> None:
        raise NotImplementedError

    def send_error_reply(self, status: int, message: str | None = None) -> None:
        raise NotImplementedError

    # -- sending ----------------------------------------------------------------------------------

    def _wait(self, seconds: float) -> None:
        if seconds > 0 and self.server.owner._stopping.wait(seconds):
            raise _Abort

    def _send_bytes(self, status: int, data: bytes, content_type: str, headers: Mapping[str, str] = ()) -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(data)))
        self.send_header(self.request_id_header, new_id("req_"))
        for name, value in {**self.json_headers, **dict(headers)}.items():
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
        self.send_header(self.request_id_header, new_id("req_"))
        self.end_headers()

    def _write_chunk(self, data: bytes) -> None:
        if self.server.owner._stopping.is_set():
            raise _Abort
        self.wfile.write(b"%X\r\n%s\r\n" % (len(data), data))

    def _write_event(self, payload: Any, event: str | None = None) -> None:
        """One server-sent event, ``data: <json>``, named ``event`` when given."""
        head = f"event: {event}\n" if event else ""
        self._write_chunk(f"{head}data: {json.dumps(payload)}\n\n".encode())

    def _end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")

    def _drop(self) -> None:
        """Close the connection abruptly, without finishing the response."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    # -- receiving --------------------------------------------------------------------------------

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
            request = self._receive(method)
            if request is not None:
                self.dispatch(request)
        except _Abort:
            self._drop()
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError):
            self.close_connection = True
        finally:
            owner._leave()

    def _receive(self, method: str) -> RecordedRequest | None:
        """Read and record the request (its body parsed as JSON, ``None`` if it is not); ``None`` if too large."""
        length = int(self.headers.get("content-length") or 0)
        if length > MAX_BODY:
            self.close_connection = True
            self.send_error_reply(413, "Request body too large.")
            return None
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        headers = {k.lower(): v for k, v in self.headers.items()}
        request = RecordedRequest(method, self.path.split("?", 1)[0], headers, body, raw, time.time())
        self.server.owner._record(request)
        return request


class ScriptedHTTPServer:
    """A server on 127.0.0.1 that answers generation requests from a script.

    A subclass sets ``handler`` (its :class:`ScriptedHandler`), ``generation_paths`` (the paths whose
    bodies :attr:`bodies` lists) and ``thread_name``, and implements :meth:`_coerce` (a script's
    value -> a reply or failure entry) and :meth:`_failure` (a 500 entry that the SDKs do not retry).

    When a list script runs out, or a script function raises, :meth:`_next` answers with that failure
    and records the problem in :attr:`errors`.
    """

    handler: ClassVar[type[ScriptedHandler]] = ScriptedHandler
    generation_paths: ClassVar[tuple[str, ...]] = ()
    thread_name: ClassVar[str] = "scripted-http"

    def __init__(self, script: Sequence[Any] | Callable[[Any], Any] = ()) -> None:
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

    def start(self: _Server) -> _Server:
        if self._httpd is not None:
            return self
        self._stopping.clear()
        httpd = _HTTPServer(("127.0.0.1", 0), self.handler)
        httpd.owner = self
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name=self.thread_name, daemon=True
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

    def __enter__(self: _Server) -> _Server:
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
    def requests(self) -> list[RecordedRequest]:
        """Every request received, in arrival order (a copy)."""
        with self._lock:
            return list(self._requests)

    @property
    def bodies(self) -> list[Any]:
        """The JSON bodies of the generation requests (those to ``generation_paths``)."""
        return [r.body for r in self.requests if r.path in self.generation_paths]

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

    def set_script(self, script: Sequence[Any] | Callable[[Any], Any]) -> None:
        """Replace the script (the position restarts at its first entry)."""
        with self._lock:
            if callable(script):
                self._function: Callable[[Any], Any] | None = script
                self._queue: list[Any] = []
            else:
                if isinstance(script, (str, bytes)) or not isinstance(script, Iterable):
                    raise TypeError("script must be a list of entries or a function, not a single entry")
                self._function = None
                self._queue = list(script)
            self._position = 0

    def extend(self, *entries: Any) -> None:
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

    # -- what a protocol implements ---------------------------------------------------------------

    def _coerce(self, value: Any) -> Any:
        """A script's (non-callable) value as a reply or failure entry; raises TypeError if it is neither."""
        raise NotImplementedError

    def _failure(self, message: str, headers: Mapping[str, str]) -> Any:
        """A 500 failure entry carrying ``message`` and the extra response ``headers``."""
        raise NotImplementedError

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

    def _error(self, problem: str) -> None:
        with self._lock:
            self._errors.append(problem)

    def _next(self, body: Any) -> Any:
        """The script's answer to one generation request: the next entry, or the function's return value,
        called with ``body`` while it is callable, then coerced."""
        with self._lock:
            entry, exhausted = self._function, None
            if entry is None and self._position < len(self._queue):
                entry = self._queue[self._position]
                self._position += 1
            elif entry is None:
                exhausted = f"script exhausted after {len(self._queue)} entries"
        if exhausted is not None:
            self._error(exhausted)
            return self._failure(exhausted, _NO_RETRY)
        try:
            while callable(entry):
                entry = entry(body)
            return self._coerce(entry)
        except Exception:
            problem = traceback.format_exc()
            self._error(problem)
            return self._failure("script raised: " + problem.strip().splitlines()[-1], _NO_RETRY)
