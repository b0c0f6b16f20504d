"""The sandbox's command lines and the relay, without running an agent (see test_agents.py for that)."""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from teich.generate.agents.provider import API_KEY_ENV
from teich.generate.agents.relay import INSIDE_PORT, relay
from teich.generate.agents.sandbox import AGENT_GID, AGENT_UID, BACKENDS, Sandbox

IMAGE = "teich-agents:test"


@pytest.mark.parametrize("network", ["endpoint", "full"])
def test_docker_command(network):
    """An unprivileged user (never root), no capabilities or new privileges, a read-only root, only the
    run folder mounted, and no network but the relay's unless ``full``."""
    with Sandbox(BACKENDS["docker"], IMAGE, network).run("http://127.0.0.1:8000/v1") as run:
        argv = run.command(["pi", "-p", "hi"], install=None, env=["HOME", API_KEY_ENV])
        owner = run.workspace.stat().st_uid
    options, inner = argv[: argv.index(IMAGE)], argv[argv.index(IMAGE) + 1 :]
    values = {flag: options[i + 1] for i, flag in enumerate(options) if flag.startswith("--")}
    root = os.getuid() == 0
    user = (AGENT_UID, AGENT_GID) if root else (os.getuid(), os.getgid())
    assert values["--user"] == f"{user[0]}:{user[1]}" and owner == user[0]  # root hands the folder over
    assert values["--cap-drop"] == "ALL" and values["--security-opt"] == "no-new-privileges"
    assert "--read-only" in options and values["--tmpfs"].startswith("/tmp:")
    volumes = [options[i + 1] for i, flag in enumerate(options) if flag == "--volume"]
    assert all(volume.startswith(f"{run.root}/") for volume in volumes)
    assert [v for v in volumes if not v.endswith(":ro")] == [f"{p}:{p}" for p in (run.workspace, run.home)]
    assert [options[i + 1] for i, flag in enumerate(options) if flag == "--env"] == ["HOME", API_KEY_ENV]
    if network == "full":
        assert values["--network"] == "host" and inner == ["pi", "-p", "hi"]
        assert run.base_url == "http://127.0.0.1:8000/v1"
    else:
        assert values["--network"] == "none" and inner[:2] == ["node", "-e"]
        assert inner[-5:] == [str(INSIDE_PORT), str(run.relay), "pi", "-p", "hi"]
        assert run.base_url == f"http://127.0.0.1:{INSIDE_PORT}/v1"


class _Echo(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        answer = f"host={self.headers['Host']} path={self.path} body={body.decode()}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def https_endpoint(tmp_path) -> Iterator[tuple[str, Path]]:
    """An HTTPS server on localhost with a fresh self-signed certificate; yields its base URL and the cert."""
    if not shutil.which("openssl"):
        pytest.skip("needs openssl")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    command = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost"]
    command += ["-addext", "subjectAltName=DNS:localhost", "-keyout", str(key), "-out", str(cert)]
    subprocess.run(command, capture_output=True, check=True)
    server = HTTPServer(("127.0.0.1", 0), _Echo)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"https://localhost:{server.server_address[1]}/v1", cert
    server.shutdown()
    server.server_close()


def ask(path: Path, request: bytes) -> bytes:
    """Send a raw request on the Unix socket and read until the relay closes the connection."""
    with socket.socket(socket.AF_UNIX) as connection:
        connection.connect(str(path))
        connection.sendall(request)
        return b"".join(iter(lambda: connection.recv(65536), b""))


def test_relay_speaks_tls_to_an_https_endpoint(https_endpoint, tmp_path, monkeypatch):
    """The agent speaks plain HTTP to its loopback; the relay sends each request on over TLS, checking the
    endpoint's certificate, with the endpoint's own Host, and refuses an endpoint it cannot trust."""
    base_url, cert = https_endpoint
    request = f"POST /v1/responses HTTP/1.1\r\nHost: 127.0.0.1:{INSIDE_PORT}\r\nContent-Length: 2\r\n\r\nhi".encode()
    path = tmp_path / "relay.sock"
    with relay(base_url, path) as inside:
        untrusted = ask(path, request)
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
        trusted = ask(path, request)
    assert inside == f"http://127.0.0.1:{INSIDE_PORT}/v1"
    assert untrusted.startswith(b"HTTP/1.1 502") and b"CERTIFICATE_VERIFY_FAILED" in untrusted
    port = base_url.split(":")[2].split("/")[0]
    assert trusted.startswith(b"HTTP/1.1 200")
    assert trusted.endswith(f"host=localhost:{port} path=/v1/responses body=hi".encode())
