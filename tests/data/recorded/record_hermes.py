"""Re-record the Hermes Agent sessions in ``hermes/`` (by hand; needs the CLI, not run by the tests).

Each session runs the real ``hermes`` CLI (Nous Research's Hermes Agent, from PyPI) against the
scripted OpenAI-compatible server in ``tests/openai_server.py`` on 127.0.0.1 (Chat Completions,
streamed), then exports the session with ``hermes sessions export <file> --session-id <id>`` and keeps
that JSONL here, unchanged, as ``<name>.jsonl``. Next to it go ``<name>.requests.json`` (every
generation request the CLI sent, in order, condensed to ``{"kind", "model", "tools", "context"}``, see
:func:`condense_chat`) and ``<name>.system.txt`` (the full system message of the first main request).

    python3 -m venv /tmp/hermes-venv && /tmp/hermes-venv/bin/pip install hermes-agent==0.19.0
    python tests/data/recorded/record_hermes.py [--hermes PATH] [NAME ...]

Each session gets a fresh ``/tmp/hermes-rec/<name>/``: ``home/`` is ``HOME`` and ``home/.hermes`` is
``HERMES_HOME`` (holding ``config.yaml``, which points the ``custom`` provider at the server), and
``workspace/`` is the cwd. Turns are ``hermes chat -Q -q <prompt>`` and, resumed,
``hermes chat -Q -q <prompt> --resume <session id>``. The quiet (``-Q``) single-query path does not
start the background title generator, so no title request is made; one would be recognised by the
title prompt and answered (kind ``title``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # tests/, for openai_server
from openai_server import Reply, ScriptedServer, Usage  # noqa: E402

DEFAULT_HERMES = Path("/tmp/hermes-venv/bin/hermes")
WORK = Path("/tmp/hermes-rec")  # fixed, so the recorded cwd paths are stable across re-recordings
OUT = HERE / "hermes"
MODEL = "scripted-model"
API_KEY = "sk-recorder"
TEXT_LIMIT = 300
TITLE_MARKER = "Generate a short, descriptive title"
USAGE = Usage(prompt_tokens=2000, completion_tokens=20)


# -- condensing requests ---------------------------------------------------------------------------


def _cut(text: Any) -> str:
    text = text if isinstance(text, str) else json.dumps(text, ensure_ascii=False)
    return text if len(text) <= TEXT_LIMIT else text[:TEXT_LIMIT] + f"...[{len(text)} chars]"


def _parts_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "\n".join(p["text"] for p in content or () if isinstance(p, Mapping) and isinstance(p.get("text"), str))


def condense_chat(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Chat Completions ``messages`` as ``[{"role", "text", "tool_calls"?, "tool_call_id"?, ...}]``
    (``reasoning_content``/``reasoning`` too when an assistant message carries them)."""
    context = []
    for message in body.get("messages") or ():
        entry: dict[str, Any] = {"role": message.get("role"), "text": _cut(_parts_text(message.get("content")))}
        for name in ("reasoning_content", "reasoning"):
            if message.get(name):
                entry[name] = _cut(message[name])
        if message.get("tool_calls"):
            entry["tool_calls"] = [
                {"id": c.get("id"), "name": c["function"]["name"], "arguments": _cut(c["function"]["arguments"])}
                for c in message["tool_calls"]
            ]
        if message.get("tool_call_id"):
            entry["tool_call_id"] = message["tool_call_id"]
        context.append(entry)
    return context


def classify(body: Mapping[str, Any]) -> str:
    """``title`` (the auxiliary title generator) or ``main`` (the agent loop)."""
    texts = [_parts_text(m.get("content")) for m in body.get("messages") or ()]
    return "title" if any(TITLE_MARKER in t for t in texts) else "main"


# -- the server script -----------------------------------------------------------------------------


@dataclass
class Router:
    """Answers main-loop requests from ``main`` in order; side requests by kind. Logs every body."""

    main: list[Reply]
    log: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, body: dict[str, Any]) -> Reply:
        kind = classify(body)
        with self.lock:
            self.log.append((kind, body))
            if kind == "title":
                return Reply(content="Scripted session title", usage=USAGE)
            if not self.main:
                raise RuntimeError(f"script ran out at main request {sum(k == 'main' for k, _ in self.log)}")
            return self.main.pop(0)

    def requests(self) -> list[dict[str, Any]]:
        return [
            {
                "kind": kind,
                "model": body.get("model"),
                "tools": [t.get("function", t).get("name") for t in body.get("tools") or ()],
                "context": condense_chat(body),
            }
            for kind, body in self.log
        ]

    def offered_tools(self) -> list[dict[str, Any]]:
        """The tool schemas of the first main request, as sent."""
        return next(body.get("tools") or [] for kind, body in self.log if kind == "main")

    def system_text(self) -> str:
        body = next(body for kind, body in self.log if kind == "main")
        first = body["messages"][0]
        assert first["role"] == "system", first["role"]
        return _parts_text(first["content"])


def call(call_id: str, name: str, **arguments: Any) -> dict[str, Any]:
    return {"id": call_id, "name": name, "arguments": arguments}


# -- sessions --------------------------------------------------------------------------------------


@dataclass
class Session:
    turns: list[str]  # prompts; the first starts the session, the rest resume it
    replies: list[Reply]
    setup: Callable[[Path], None] = lambda workspace: None
    config: str = ""  # extra config.yaml text


SESSIONS: dict[str, Session] = {
    # The model writes a file with the terminal tool, gets the result, answers; a resumed second turn
    # runs one more terminal command and answers.
    "terminal-resume": Session(
        turns=[
            "Create a file notes.txt with the lines alpha and beta, using the shell.",
            "How many lines does notes.txt have now?",
        ],
        replies=[
            Reply(
                content="I'll write the file with a shell command.",
                tool_calls=[call("call_write_1", "terminal", command="printf 'alpha\\nbeta\\n' > notes.txt")],
                usage=USAGE,
            ),
            Reply(content="Created notes.txt with two lines: alpha and beta.", usage=USAGE),
            Reply(tool_calls=[call("call_count_2", "terminal", command="wc -l notes.txt")], usage=USAGE),
            Reply(content="notes.txt has 2 lines.", usage=USAGE),
        ],
    ),
    # Reasoning (streamed as ``reasoning_content``) on every reply; the first tool call fails (the shell
    # command exits 1), the second fails inside the tool (read_file on a missing file); then an answer.
    "reasoning-tool-error": Session(
        turns=["What is in missing.txt?"],
        replies=[
            Reply(
                reasoning="The user wants the contents of missing.txt. I'll cat it.",
                tool_calls=[call("call_cat_1", "terminal", command="cat missing.txt")],
                usage=USAGE,
            ),
            Reply(
                reasoning="cat failed with exit code 1. Let me try the read_file tool to be sure.",
                tool_calls=[call("call_read_2", "read_file", path="missing.txt")],
                usage=USAGE,
            ),
            Reply(
                reasoning="Both attempts say the file does not exist.",
                content="missing.txt does not exist in the working directory, so there is nothing to show.",
                usage=USAGE,
            ),
        ],
        setup=lambda workspace: (workspace / "present.txt").write_text("I am here.\n"),
    ),
}


def _config(base_url: str, extra: str) -> str:
    model = {"provider": "custom", "base_url": base_url, "api_key": API_KEY, "default": MODEL}
    return "model:\n" + "".join(f"  {key}: {value}\n" for key, value in model.items()) + extra


def _env(home: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OPENAI_", "ANTHROPIC_", "OPENROUTER_", "HERMES_", "NOUS_", "VIRTUAL_ENV"))
    }
    env.update(HOME=str(home), HERMES_HOME=str(home / ".hermes"), NO_COLOR="1", TERM="dumb")
    return env


def _run(cmd: list[str], *, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL
    )
    print(f"$ {' '.join(cmd[1:])}\n  rc={result.returncode} stdout={result.stdout.strip()[-400:]!r}", file=sys.stderr)
    if result.returncode != 0:
        print(result.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"{cmd[0]} failed with {result.returncode}")
    return result


def record(name: str, session: Session, hermes: Path) -> None:
    work = WORK / name
    shutil.rmtree(work, ignore_errors=True)
    home, workspace = work / "home", work / "workspace"
    (home / ".hermes").mkdir(parents=True)
    workspace.mkdir(parents=True)
    session.setup(workspace)
    router = Router(list(session.replies))
    env = _env(home)
    with ScriptedServer(router, models=[MODEL]) as server:
        (home / ".hermes" / "config.yaml").write_text(_config(server.base_url, session.config))
        session_id = None
        for prompt in session.turns:
            cmd = [str(hermes), "chat", "-Q", "-q", prompt]
            if session_id:
                cmd += ["--resume", session_id]
            result = _run(cmd, cwd=workspace, env=env)
            found = re.findall(r"session_id: (\S+)", result.stderr)
            if not found or (session_id and found[-1] != session_id):
                raise SystemExit(f"unexpected session id in {result.stderr[-500:]!r}")
            session_id = found[-1]
        if server.errors:
            raise SystemExit(f"server errors: {server.errors}")
        if router.main:
            raise SystemExit(f"{len(router.main)} scripted replies left over")
        export = work / "export.jsonl"
        _run([str(hermes), "sessions", "export", str(export), "--session-id", session_id], cwd=workspace, env=env)
    OUT.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(export, OUT / f"{name}.jsonl")
    (OUT / f"{name}.requests.json").write_text(json.dumps(router.requests(), indent=1, ensure_ascii=False) + "\n")
    (OUT / f"{name}.system.txt").write_text(router.system_text())
    (OUT / f"{name}.tools.json").write_text(json.dumps(router.offered_tools(), indent=1, ensure_ascii=False) + "\n")
    print(f"{name}: session {session_id}, {len(router.log)} requests -> {OUT / name}.jsonl", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--hermes", type=Path, default=DEFAULT_HERMES, help=f"the hermes CLI (default {DEFAULT_HERMES})"
    )
    parser.add_argument("names", nargs="*", metavar="NAME", help=", ".join(SESSIONS))
    args = parser.parse_args()
    unknown = set(args.names) - set(SESSIONS)
    if unknown:
        parser.error(f"unknown session(s): {', '.join(sorted(unknown))}")
    for name in args.names or SESSIONS:
        record(name, SESSIONS[name], args.hermes)


if __name__ == "__main__":
    main()
