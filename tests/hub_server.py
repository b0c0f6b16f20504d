"""A stand-in for the Hugging Face Hub's HTTP API, enough for ``huggingface_hub`` to create a dataset
repo and commit files to it (standard library only, on :mod:`scripted_http`).

It answers what ``HfApi.create_repo``, ``repo_info``, ``create_commit`` and ``upload_file`` send:

* ``POST /api/repos/create``: creates the repo (409 when it exists, as the Hub does).
* ``GET /api/datasets/{owner}/{name}[/revision/{rev}]``: the repo's id, visibility and last commit.
* ``POST /api/validate-yaml``: a card's metadata, always valid here.
* ``POST /api/datasets/{repo}/preupload/{rev}``: every file as a ``regular`` upload (base64 in the
  commit body; no LFS, so tests keep their files small and text, as the Hub would for those).
* ``POST /api/datasets/{repo}/commit/{rev}``: the NDJSON commit (a ``header`` line, then ``file``
  lines), stored as a :class:`Commit`.

Every request needs ``Authorization: Bearer ...`` (401 otherwise), and any other path gets a 404:
``huggingface_hub``'s best-effort ``GET /api/agent-harnesses`` (telemetry, sent without a token) is
refused, and it goes on without it. ``fail`` makes one endpoint answer an error the way the Hub does
(``X-Error-Message`` and a JSON ``error``).

Usage::

    with serving_hub(monkeypatch) as hub:   # huggingface_hub now talks to it, with HF_TOKEN set
        publish(folder, "me/data")
        assert hub.repos["me/data"].commits[0].files["train.jsonl"] == b"..."
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import huggingface_hub.constants
import pytest
from scripted_http import RecordedRequest, ScriptedHandler, ScriptedHTTPServer

TOKEN = "hf_test_token_0123456789"
_REPO_PATH = re.compile(r"^/api/datasets/(?P<repo>[^/]+/[^/]+)(?:/(?P<action>preupload|commit|revision)/[^/]+)?$")


@dataclass
class Commit:
    """One commit as the Hub received it: its summary and every file added, path -> bytes."""

    summary: str
    files: dict[str, bytes]
    oid: str


@dataclass
class HubRepo:
    """A dataset repo: its visibility and the commits made to it, oldest first."""

    private: bool
    commits: list[Commit] = field(default_factory=list)


class _HubHandler(ScriptedHandler):
    server_version = "hub-stand-in"
    request_id_header = "x-request-id"

    def dispatch(self, request: RecordedRequest) -> None:
        owner: HubServer = self.server.owner  # type: ignore[assignment]
        if not request.headers.get("authorization", "").startswith("Bearer "):
            self.send_error_reply(401, "Invalid credentials in Authorization header")
            return
        endpoint, repo = _route(request)
        if endpoint in owner.fail:
            self.send_error_reply(*owner.fail[endpoint])
            return
        handler = getattr(self, f"_{endpoint}", None)
        if handler is None:
            self.send_error_reply(404, f"no route for {request.method} {request.path}")
            return
        handler(owner, request, repo)

    def send_error_reply(self, status: int, message: str | None = None, headers: Mapping[str, str] = ()) -> None:
        text = message or "error"
        self._send_json(status, {"error": text}, {"x-error-message": text, **dict(headers)})

    def _create(self, owner: HubServer, request: RecordedRequest, _: str) -> None:
        body = request.body
        repo = f"{body['organization']}/{body['name']}" if body.get("organization") else body["name"]
        url = f"{owner.endpoint}/datasets/{repo}"
        if repo in owner.repos:
            self._send_json(409, {"error": "You already created this dataset repo", "url": url})
            return
        owner.repos[repo] = HubRepo(private=body.get("visibility") == "private" or body.get("private") is True)
        self._send_json(200, {"url": url, "name": repo})

    def _info(self, owner: HubServer, _: RecordedRequest, repo: str) -> None:
        if self._missing(owner, repo):
            return
        found = owner.repos[repo]
        sha = found.commits[-1].oid if found.commits else "0" * 40
        self._send_json(200, {"id": repo, "private": found.private, "sha": sha})

    def _validate(self, *_: Any) -> None:
        self._send_json(200, {"errors": [], "warnings": []})

    def _preupload(self, owner: HubServer, request: RecordedRequest, repo: str) -> None:
        if self._missing(owner, repo):
            return
        files = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in request.body["files"]]
        self._send_json(200, {"files": files})

    def _commit(self, owner: HubServer, request: RecordedRequest, repo: str) -> None:
        if self._missing(owner, repo):
            return
        lines = [json.loads(line) for line in request.raw.decode().splitlines() if line.strip()]
        header, *operations = lines
        assert header["key"] == "header", header
        files = {}
        for operation in operations:
            assert operation["key"] == "file" and operation["value"]["encoding"] == "base64", operation
            files[operation["value"]["path"]] = base64.b64decode(operation["value"]["content"])
        oid = hashlib.sha1(request.raw).hexdigest()
        owner.repos[repo].commits.append(Commit(header["value"]["summary"], files, oid))
        self._send_json(200, {"commitUrl": f"{owner.endpoint}/datasets/{repo}/commit/{oid}", "commitOid": oid})

    def _missing(self, owner: HubServer, repo: str) -> bool:
        if repo in owner.repos:
            return False
        self.send_error_reply(404, "Repository not found", {"x-error-code": "RepoNotFound"})
        return True


def _route(request: RecordedRequest) -> tuple[str, str]:
    """The endpoint a request is for (``create``, ``info``, ``validate``, ``preupload``, ``commit``), and its repo."""
    if request.method == "POST" and request.path == "/api/repos/create":
        return "create", ""
    if request.method == "POST" and request.path == "/api/validate-yaml":
        return "validate", ""
    match = _REPO_PATH.match(request.path)
    if match is None:
        return "unknown", ""
    action = match["action"]
    if request.method == "GET" and action in (None, "revision"):
        return "info", match["repo"]
    if request.method == "POST" and action in ("preupload", "commit"):
        return action, match["repo"]
    return "unknown", ""


class HubServer(ScriptedHTTPServer):
    """The Hub stand-in: :attr:`repos` holds what was created and committed; put ``endpoint ->
    (status, message)`` in :attr:`fail` to make an endpoint answer an error."""

    handler: ClassVar[type[ScriptedHandler]] = _HubHandler
    thread_name = "hub-stand-in"

    def __init__(self) -> None:
        super().__init__()
        self.repos: dict[str, HubRepo] = {}
        self.fail: dict[str, tuple[int, str]] = {}

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextlib.contextmanager
def serving_hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[HubServer]:
    """A running :class:`HubServer` that ``huggingface_hub`` talks to, with ``HF_TOKEN`` set to :data:`TOKEN`."""
    with HubServer() as hub:
        monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", hub.endpoint)
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        monkeypatch.setenv("HF_TOKEN", TOKEN)
        yield hub
