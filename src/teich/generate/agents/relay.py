"""The sandbox's one way out under ``sandbox.network: endpoint``.

Inside, the agent's base URL points at ``127.0.0.1:INSIDE_PORT`` on the sandbox's own loopback,
where a few lines of Node (the CLIs are npm packages, so node is always there) start the agent and
pass each connection on to a Unix socket in the run folder. On the host, Teich answers on that
socket: each HTTP request goes on to the configured endpoint (over TLS for ``https``) with the
endpoint's own ``Host`` header, and the answer streams back. The sandbox has no other network.
"""

from __future__ import annotations

import contextlib
import http.client
import socketserver
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import SplitResult, urlsplit

INSIDE_PORT = 41157  # on the sandbox's own loopback, where nothing else listens
_HOP_BY_HOP = frozenset({
    "connection", "expect", "host", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection",
    "te", "trailer", "transfer-encoding", "upgrade",
})  # fmt: skip
_FORWARDER = """
const net = require("node:net");
const { spawn } = require("node:child_process");
const [port, socket, command, ...args] = process.argv.slice(1);
const fail = (error, code) => { console.error(`teich relay: ${error.message}`); process.exit(code); };
const server = net.createServer((client) => {
  const relay = net.connect(socket);
  client.on("error", () => relay.destroy());
  relay.on("error", () => client.destroy());
  client.pipe(relay).pipe(client);
});
server.on("error", (error) => fail(error, 1));
server.listen(Number(port), "127.0.0.1", () => {
  const agent = spawn(command, args, { stdio: "inherit" });
  agent.on("error", (error) => fail(error, 127));
  agent.on("exit", (code) => process.exit(code ?? 1));
});
"""


def forwarded(argv: list[str], socket: Path) -> list[str]:
    """``argv`` started by the in-sandbox forwarder from ``127.0.0.1:INSIDE_PORT`` to ``socket``."""
    return ["node", "-e", _FORWARDER, "--", str(INSIDE_PORT), str(socket), *argv]


@contextlib.contextmanager
def relay(base_url: str, socket: Path) -> Iterator[str]:
    """Serve the endpoint ``base_url`` on the Unix socket ``socket`` while open; yields the base URL the
    agent uses inside the sandbox (the same path, on ``http://127.0.0.1:INSIDE_PORT``)."""
    endpoint = urlsplit(base_url)
    server = _Server(str(socket), _Forward)
    server.endpoint = endpoint
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        yield endpoint._replace(scheme="http", netloc=f"127.0.0.1:{INSIDE_PORT}").geturl()
    finally:
        server.shutdown()
        server.server_close()


class _Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True
    block_on_close = False  # a request still streaming when the run ends is dropped with it
    endpoint: SplitResult


class _Forward(BaseHTTPRequestHandler):
    """One request from the sandbox, sent on to the endpoint; the answer streamed back, then the
    connection closed (so no framing needs rewriting)."""

    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:
        self._forward()

    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_GET

    def _forward(self) -> None:
        length = self.headers.get("Content-Length")
        if length is None and "Transfer-Encoding" in self.headers:
            self.send_error(411, "the sandbox relay needs a Content-Length")
            return
        body = self.rfile.read(int(length)) if length else None
        endpoint = self.server.endpoint
        headers = {name: value for name, value in self.headers.items() if name.lower() not in _HOP_BY_HOP}
        headers["Host"] = endpoint.netloc.rpartition("@")[2]
        upstream = _connection(endpoint)
        try:
            upstream.request(self.command, self.path, body, headers)
            answer = upstream.getresponse()
        except OSError as error:
            self.send_error(502, f"the sandbox relay cannot reach the endpoint: {error}")
            return
        with contextlib.closing(upstream), contextlib.suppress(OSError):  # either side may go away mid-answer
            self._stream(answer)

    def _stream(self, answer: http.client.HTTPResponse) -> None:
        self.send_response_only(answer.status, answer.reason)
        for name, value in answer.getheaders():
            if name.lower() not in _HOP_BY_HOP:
                self.send_header(name, value)
        self.send_header("Connection", "close")
        self.end_headers()
        while chunk := answer.read1(1 << 16):
            self.wfile.write(chunk)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the agent reports what went wrong."""


def _connection(endpoint: SplitResult) -> http.client.HTTPConnection:
    if endpoint.scheme == "https":
        context = ssl.create_default_context()
        return http.client.HTTPSConnection(endpoint.hostname or "", endpoint.port, context=context)
    return http.client.HTTPConnection(endpoint.hostname or "", endpoint.port)
