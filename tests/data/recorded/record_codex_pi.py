"""Re-record the Codex and Pi sessions in ``codex/`` and ``pi/`` (by hand; needs npm, not run by the tests).

Each session runs the real CLI against the scripted OpenAI-compatible server in
``tests/openai_server.py`` on 127.0.0.1 (Codex: ``codex exec`` over the Responses API; Pi: ``pi --mode
rpc`` over Chat Completions), then copies the native session file here, byte-for-byte, as
``<name>.jsonl``, and writes ``<name>.requests.json``: every generation request the CLI sent, in order,
condensed to ``{"kind", "model", "tools", "context": [...]}`` (see :func:`condense_responses` and
:func:`condense_chat`), and ``<name>.system.txt``: the full system text the model got (see
:func:`_system_text`).

    npm install --prefix ~/.cache/teich/agents/openai__codex-0.169.0 @openai/codex@0.169.0
    npm install --prefix ~/.cache/teich/agents/mariozechner__pi-coding-agent-0.73.1 \\
        @mariozechner/pi-coding-agent@0.73.1
    python tests/data/recorded/record_codex_pi.py [--codex PATH] [--pi PATH] [NAME ...]

(Teich's own ``ensure_installed`` puts them there too.) Replies carry explicit token usage, so the
point where a CLI auto-compacts is fixed by the script, not by the length of its system prompt.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # tests/, for openai_server
import openai_server  # noqa: E402
from openai_server import Reply, ScriptedServer, Usage  # noqa: E402

AGENTS = Path(os.environ.get("TEICH_AGENTS_DIR") or Path.home() / ".cache" / "teich" / "agents")
DEFAULT_CODEX = AGENTS / "openai__codex-0.169.0" / "node_modules" / ".bin" / "codex"
DEFAULT_PI = AGENTS / "mariozechner__pi-coding-agent-0.73.1" / "node_modules" / ".bin" / "pi"
WORK = Path("/tmp/codex-pi-rec")  # fixed, so the recorded cwd paths are stable across re-recordings
MODEL = "scripted-model"
CODEX_COMPACT_MARKER = "You are performing a CONTEXT CHECKPOINT COMPACTION"
PI_COMPACT_MARKER = "You are a context summarization assistant"
TEXT_LIMIT = 300
API_KEY = "sk-recorder"


# -- the server: raw reasoning text on the Responses API ------------------------------------------


@dataclass
class RawReply(Reply):
    """A Reply whose Responses ``reasoning`` item also carries ``content: [{"type": "reasoning_text"}]``
    (the raw chain of thought, as gpt-oss style models send it), streamed with
    ``response.reasoning_text.delta``/``.done`` events."""

    raw_reasoning: str | None = None


class _Rendered(openai_server._Rendered):
    def response_items(self, summarize: bool) -> list[dict[str, Any]]:
        items = super().response_items(summarize)
        raw = getattr(self.reply, "raw_reasoning", None)
        for item in items:
            if item["type"] == "reasoning" and raw:
                item["content"] = [{"type": "reasoning_text", "text": raw}]
        return items

    def response_events(self, response_id: str, body: Mapping[str, Any], summarize: bool) -> Iterator[dict[str, Any]]:
        for event in super().response_events(response_id, body, summarize):
            item = event.get("item") or {}
            if event["type"] == "response.output_item.added" and item.get("type") == "reasoning" and "content" in item:
                event = {**event, "item": {**item, "content": []}}
            if event["type"] == "response.output_item.done" and item.get("type") == "reasoning":
                for index, part in enumerate(item.get("content") or ()):
                    where = {"item_id": item["id"], "output_index": event["output_index"], "content_index": index}
                    for piece in openai_server._pieces(part["text"], self.reply.chunk_size):
                        yield {"type": "response.reasoning_text.delta", **where, "delta": piece}
                    yield {"type": "response.reasoning_text.done", **where, "text": part["text"]}
            yield event


openai_server._Rendered = _Rendered  # the handler looks the class up in the module at request time


# -- condensing requests ---------------------------------------------------------------------------


def _cut(text: Any) -> str:
    text = text if isinstance(text, str) else json.dumps(text, ensure_ascii=False)
    return text if len(text) <= TEXT_LIMIT else text[:TEXT_LIMIT] + f"...[{len(text)} chars]"


def _parts_text(content: Any) -> tuple[str, int]:
    """The text of a content value (a str or a list of parts) and how many image parts it has."""
    if isinstance(content, str):
        return content, 0
    texts, images = [], 0
    for part in content or ():
        if not isinstance(part, Mapping):
            continue
        if part.get("type") in ("input_image", "image_url", "image"):
            images += 1
        elif isinstance(part.get("text"), str):
            texts.append(part["text"])
    return "\n".join(texts), images


def condense_responses(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A Responses API ``input`` as ``[{"role" | "type", "text", "call_id"?, "name"?, ...}]``."""
    context = []
    for item in body.get("input") or ():
        kind = item.get("type", "message")
        if kind == "message":
            text, images = _parts_text(item.get("content"))
            entry: dict[str, Any] = {"role": item.get("role"), "text": _cut(text)}
            if images:
                entry["images"] = images
        elif kind in ("function_call", "custom_tool_call", "local_shell_call"):
            arguments = item.get("arguments", item.get("input", item.get("action")))
            entry = {"type": kind, "call_id": item.get("call_id"), "name": item.get("name"), "text": _cut(arguments)}
        elif kind in ("function_call_output", "custom_tool_call_output"):
            output = item.get("output")
            text, images = _parts_text(output) if not isinstance(output, Mapping) else (output.get("content"), 0)
            entry = {"type": kind, "call_id": item.get("call_id"), "text": _cut(text)}
            if images:
                entry["images"] = images
        elif kind == "reasoning":
            entry = {
                "type": kind,
                "text": _cut("\n".join(p.get("text", "") for p in item.get("summary") or ())),
                "raw": _cut("\n".join(p.get("text", "") for p in item.get("content") or ())),
                "encrypted_content": item.get("encrypted_content") is not None,
            }
        else:
            entry = {"type": kind, "text": _cut(item)}
        context.append(entry)
    return context


def condense_chat(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Chat Completions ``messages`` as ``[{"role", "text", "tool_call_id"?, "tool_calls"?, ...}]``."""
    context = []
    for message in body.get("messages") or ():
        text, images = _parts_text(message.get("content"))
        entry: dict[str, Any] = {"role": message.get("role"), "text": _cut(text)}
        if images:
            entry["images"] = images
        for field in ("reasoning_content", "reasoning"):
            if message.get(field):
                entry[field] = _cut(message[field])
        if message.get("tool_call_id"):
            entry["tool_call_id"] = message["tool_call_id"]
        if message.get("tool_calls"):
            entry["tool_calls"] = [
                {"id": c.get("id"), "name": c["function"]["name"], "arguments": _cut(c["function"]["arguments"])}
                for c in message["tool_calls"]
            ]
        context.append(entry)
    return context


def _tool_names(body: Mapping[str, Any]) -> list[str]:
    names = []
    for tool in body.get("tools") or ():
        function = tool.get("function") if isinstance(tool.get("function"), Mapping) else tool
        names.append(function.get("name") or tool.get("type"))
    return names


def _user_texts(body: Mapping[str, Any]) -> list[str]:
    items = body.get("input") or body.get("messages") or ()
    return [_parts_text(i.get("content"))[0] for i in items if i.get("role") in ("user", "system", "developer")]


def classify(body: Mapping[str, Any]) -> str:
    """``compaction`` (a CLI's summarisation request) or ``main``."""
    texts = _user_texts(body)
    if any(t.startswith(CODEX_COMPACT_MARKER) for t in texts[-1:]) or any(
        t.startswith(PI_COMPACT_MARKER) for t in texts[:1]
    ):
        return "compaction"
    return "main"


class Router:
    """Answers main requests from the current turn's list and compaction requests with the next summary.

    Every reply gets explicit usage (``prompt_tokens`` = :attr:`DEFAULT_PROMPT_TOKENS` unless the
    reply says otherwise), so only the replies that ask for it push a CLI over its compaction limit.
    """

    DEFAULT_PROMPT_TOKENS = 2000

    def __init__(self, summaries: list[str] | None = None) -> None:
        self.turn: list[Reply] = []
        self.summaries = list(summaries or ())
        self.log: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, body: dict[str, Any]) -> Reply:
        kind = classify(body)
        self.log.append((kind, body))
        if kind == "compaction":
            reply: Reply = Reply(content=self.summaries.pop(0) if self.summaries else "Summary: work so far.")
        elif self.turn:
            reply = self.turn.pop(0)
        else:
            raise RuntimeError("no scripted reply left for this turn")
        if reply.usage is None:
            reply.usage = Usage(prompt_tokens=self.DEFAULT_PROMPT_TOKENS)
        return reply

    def requests(self) -> list[dict[str, Any]]:
        out = []
        for kind, body in self.log:
            chat = "messages" in body
            out.append(
                {
                    "kind": kind,
                    "model": body.get("model"),
                    "tools": _tool_names(body),
                    "context": condense_chat(body) if chat else condense_responses(body),
                }
            )
        return out


def usage(prompt_tokens: int) -> Usage:
    return Usage(prompt_tokens=prompt_tokens)


# -- Codex -------------------------------------------------------------------------------------------


def shell(command: str, call_id: str, **extra: Any) -> dict[str, Any]:
    """A Codex ``exec_command`` call."""
    return {"name": "exec_command", "arguments": {"cmd": command, **extra}, "id": call_id}


CODEX_COMPACTION_LIMITS = ["model_context_window = 100000", "model_auto_compact_token_limit = 50000"]
BIG = 60000  # prompt tokens reported to push Codex over model_auto_compact_token_limit


def _stopped_sleep(interrupt_signal: str, stopped: str) -> dict[str, Any]:
    """A session whose first turn's ``sleep 30`` is stopped by ``interrupt_signal`` 2 s after it starts,
    and whose second turn moves on (its answer says the sleep was ``stopped``)."""
    long_sleep = shell("sleep 30 && echo finished", "call_long_sleep", yield_time_ms=30000)
    return {
        "steps": [
            {
                "prompt": "Wait for the build: run `sleep 30` and then tell me it finished.",
                "replies": [Reply(content="I'll wait for it.", tool_calls=[long_sleep])],
                "interrupt_after": 2.0,
                "interrupt_signal": interrupt_signal,
            },
            {
                "prompt": "Never mind the wait. Just say hello.",
                "replies": [Reply(content=f"Hello! (The sleep was {stopped} before it finished.)")],
            },
        ],
    }


# Each Codex session: config lines, files, and steps. A step is a dict: ``prompt``, ``replies``,
# optional ``args`` (extra CLI flags), ``interrupt_after`` (seconds after the first command starts)
# and ``interrupt_signal`` (``"SIGINT"``, the default, or ``"SIGKILL"``).
CODEX_SESSIONS: dict[str, dict[str, Any]] = {
    "auto-compaction": {
        "config": CODEX_COMPACTION_LIMITS,
        "summaries": [
            "Progress: created notes.txt (alpha, beta) and counted its lines (2). Next: continue with the "
            "user's requests about notes.txt.",
            "Progress: notes.txt has alpha, beta, gamma (3 lines). Next: answer the user's next request.",
        ],
        "steps": [
            {
                "prompt": "Create notes.txt with the lines alpha and beta.",
                "replies": [
                    Reply(tool_calls=[shell("printf 'alpha\\nbeta\\n' > notes.txt", "call_write_notes")]),
                    Reply(content="Created notes.txt with two lines."),
                ],
            },
            {
                # the tool-call reply reports 60000 prompt tokens: Codex compacts mid-turn, before
                # sending the tool output back
                "prompt": "How many lines does notes.txt have?",
                "replies": [
                    Reply(tool_calls=[shell("wc -l notes.txt", "call_count_lines")], usage=usage(BIG)),
                    Reply(content="notes.txt has 2 lines."),
                ],
            },
            {
                # the final answer reports 60000: Codex compacts before the next turn
                "prompt": "Append gamma to notes.txt.",
                "replies": [
                    Reply(tool_calls=[shell("echo gamma >> notes.txt", "call_append_gamma")]),
                    Reply(content="Appended gamma.", usage=usage(BIG)),
                ],
            },
            {
                "prompt": "Show notes.txt.",
                "replies": [
                    Reply(tool_calls=[shell("cat notes.txt", "call_show_notes")]),
                    Reply(content="notes.txt contains alpha, beta and gamma."),
                ],
            },
        ],
    },
    "interrupted-call": _stopped_sleep("SIGINT", "interrupted"),
    # as interrupted-call, but the CLI (and the command's process group) is killed outright, so
    # Codex writes nothing for the unfinished call and must make up its output on resume
    "killed-call": _stopped_sleep("SIGKILL", "killed"),
    "two-models": {
        "steps": [
            {
                "prompt": "Print the working directory.",
                "args": ["-m", MODEL],
                "replies": [
                    Reply(tool_calls=[shell("pwd", "call_pwd")]),
                    Reply(content="The working directory is printed above."),
                ],
            },
            {
                "prompt": "Now list the files.",
                "args": ["-m", "scripted-model-large"],
                "replies": [
                    Reply(tool_calls=[shell("ls -a", "call_ls")]),
                    Reply(content="The directory holds only . and .."),
                ],
            },
        ],
    },
    "raw-reasoning": {
        "config": ['model_reasoning_summary = "detailed"', "show_raw_agent_reasoning = true"],
        "steps": [
            {
                "prompt": "What is 17 * 23? Check it with the shell.",
                "replies": [
                    RawReply(
                        reasoning="**Computing the product**\n\nI'll verify 17 * 23 with the shell.",
                        raw_reasoning="17 * 23 = 17 * 20 + 17 * 3 = 340 + 51 = 391. Let me check with expr.",
                        tool_calls=[shell("expr 17 \\* 23", "call_expr")],
                    ),
                    RawReply(
                        reasoning="**Confirming**\n\nThe shell printed 391.",
                        raw_reasoning="The shell says 391, matching my arithmetic.",
                        content="17 * 23 = 391.",
                    ),
                ],
            },
            {
                "prompt": "And 391 / 17?",
                "replies": [
                    RawReply(
                        reasoning="**Dividing**\n\n391 / 17 is 23 from the previous step.",
                        raw_reasoning="We just computed 17 * 23 = 391, so 391 / 17 = 23.",
                        content="391 / 17 = 23.",
                    )
                ],
            },
        ],
    },
}


def _codex_config(base_url: str, extra: list[str]) -> str:
    lines = [
        f'model = "{MODEL}"',
        'model_provider = "recorder"',
        'approval_policy = "never"',
        'sandbox_mode = "danger-full-access"',
        "check_for_update_on_startup = false",
        *extra,
        "",
        "[analytics]",
        "enabled = false",
        "",
        "[model_providers.recorder]",
        'name = "Recorder"',
        f'base_url = "{base_url}"',
        'wire_api = "responses"',
        'env_key = "RECORDER_API_KEY"',
        "request_max_retries = 0",
        "stream_max_retries = 0",
    ]
    return "\n".join(lines) + "\n"


def record_codex(name: str, spec: dict[str, Any], codex: str) -> Path:
    root = WORK / "codex" / name
    shutil.rmtree(root, ignore_errors=True)
    home, workspace = root / "home", root / "workspace"
    home.mkdir(parents=True)
    workspace.mkdir()
    router = Router(spec.get("summaries"))
    thread_id = None
    with ScriptedServer(router) as server:
        (home / "config.toml").write_text(_codex_config(server.base_url, spec.get("config", [])))
        env = {"PATH": os.environ["PATH"], "HOME": str(home), "CODEX_HOME": str(home), "RECORDER_API_KEY": API_KEY}
        flags = ["--json", "--skip-git-repo-check", "--dangerously-bypass-approvals-and-sandbox"]
        for index, step in enumerate(spec["steps"]):
            router.turn = list(step["replies"])
            args = [*flags, *step.get("args", ())]
            if thread_id is None:
                command = [codex, "exec", *args, "-C", str(workspace), step["prompt"]]
            else:
                command = [codex, "exec", "resume", *args, thread_id, step["prompt"]]
            stdout = _run_codex(
                command, workspace, env, step.get("interrupt_after"), step.get("interrupt_signal", "SIGINT")
            )
            for line in stdout.splitlines():
                if '"thread.started"' in line:
                    thread_id = thread_id or json.loads(line)["thread_id"]
            events = [json.loads(line).get("type") for line in stdout.splitlines() if line.startswith("{")]
            print(f"[codex/{name}] step {index}: events {events}")
            if router.turn:
                print(f"[codex/{name}] step {index}: {len(router.turn)} scripted replies unused", file=sys.stderr)
        if server.errors:
            print(f"[codex/{name}] server errors:\n" + "\n".join(server.errors), file=sys.stderr)
    (root / "requests.log.json").write_text(json.dumps(router.log, indent=1))
    found = sorted((home / "sessions").rglob(f"rollout-*{thread_id}.jsonl"))
    if len(found) != 1:
        raise SystemExit(f"[codex/{name}] rollout not found for {thread_id}")
    return _save("codex", name, found[0], router)


def _run_codex(
    command: list[str], cwd: Path, env: dict[str, str], interrupt_after: float | None, interrupt_signal: str
) -> str:
    """Run one ``codex exec``; with ``interrupt_after``, send ``interrupt_signal`` that many seconds after
    its first command starts (SIGINT to the CLI, as Ctrl-C; SIGKILL to its whole process group)."""
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, so a kill reaches the command it runs too
    )
    lines: list[str] = []
    assert process.stdout is not None
    if interrupt_after is not None:
        for line in process.stdout:
            lines.append(line)
            event = json.loads(line) if line.startswith("{") else {}
            if event.get("type") == "item.started" and event["item"].get("type") == "command_execution":
                time.sleep(interrupt_after)
                if interrupt_signal == "SIGKILL":
                    os.killpg(process.pid, signal.SIGKILL)
                else:
                    process.send_signal(signal.SIGINT)  # what Ctrl-C does
                break
    try:
        rest, stderr = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        process.kill()
        rest, stderr = process.communicate()
    if process.returncode:
        print(f"  codex exited {process.returncode}: {stderr.strip()[-500:]}", file=sys.stderr)
    return "".join(lines) + rest


# -- Pi ------------------------------------------------------------------------------------------------


def pi_call(name: str, call_id: str, **arguments: Any) -> dict[str, Any]:
    return {"name": name, "arguments": arguments, "id": call_id}


def _png(width: int = 4, height: int = 4) -> bytes:
    """A tiny solid red PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


PI_SMALL_WINDOW = {
    "contextWindow": 12000,
    "compaction": {"enabled": True, "reserveTokens": 2000, "keepRecentTokens": 25},
}
PI_BIG = 11000  # prompt tokens reported to push Pi over contextWindow - reserveTokens

# Each Pi session: files, model settings, and steps: {"prompt", "replies"} (a prompt the model
# answers), {"bash": command} (a user `!` command), ``expect_compaction`` to wait for compaction_end.
PI_SESSIONS: dict[str, dict[str, Any]] = {
    "auto-compaction": {
        "window": PI_SMALL_WINDOW,
        "summaries": [
            "## Goal\nKeep notes.txt up to date.\n\n## Progress\n- Created notes.txt (alpha, beta).\n"
            "- Counted its lines: 2.\n\n## Next Steps\n- Follow the user's next request."
        ],
        "steps": [
            {
                "prompt": "Create notes.txt with the lines alpha and beta.",
                "replies": [
                    Reply(
                        tool_calls=[pi_call("bash", "call_write_notes", command="printf 'alpha\\nbeta\\n' > notes.txt")]
                    ),
                    Reply(content="Created notes.txt with two lines."),
                ],
            },
            {
                # the final answer reports 11000 prompt tokens: Pi compacts after the turn
                "prompt": "How many lines does notes.txt have?",
                "replies": [
                    Reply(tool_calls=[pi_call("bash", "call_count_lines", command="wc -l notes.txt")]),
                    Reply(content="notes.txt has 2 lines.", usage=usage(PI_BIG)),
                ],
                "expect_compaction": True,
            },
            {
                "prompt": "Append gamma to notes.txt and show it.",
                "replies": [
                    Reply(tool_calls=[pi_call("bash", "call_append_gamma", command="echo gamma >> notes.txt")]),
                    Reply(tool_calls=[pi_call("read", "call_read_notes", path="notes.txt")]),
                    Reply(content="notes.txt now has alpha, beta and gamma."),
                ],
            },
        ],
    },
    "bash-execution": {
        "files": {"notes.txt": "alpha\nbeta\n"},
        "steps": [
            {"bash": "cat notes.txt"},
            {"bash": "ls missing-dir"},
            {
                "prompt": "What did my two commands show?",
                "replies": [
                    Reply(
                        content="`cat notes.txt` printed alpha and beta; `ls missing-dir` failed because the "
                        "directory does not exist."
                    )
                ],
            },
            {"bash": "wc -l notes.txt"},
            {
                "prompt": "And the last one?",
                "replies": [Reply(content="notes.txt has 2 lines.")],
            },
        ],
    },
    "image-no-vision": {
        "files": {"pixel.png": _png()},
        "steps": [
            {
                "prompt": "What colour is pixel.png?",
                "replies": [
                    Reply(tool_calls=[pi_call("read", "call_read_png", path="pixel.png")]),
                    Reply(content="I can't see images with this model; the read tool omitted the picture."),
                ],
            },
        ],
    },
}


class PiRpc:
    """``pi --mode rpc``: JSON commands on stdin, responses and events on stdout."""

    def __init__(self, command: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            command, cwd=cwd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        self._counter = 0
        self.stderr = b""
        threading.Thread(target=self._read, daemon=True).start()
        self._stderr_thread = threading.Thread(target=self._drain, daemon=True)
        self._stderr_thread.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:  # split on b"\n" only (the RPC framing)
            with contextlib.suppress(ValueError):
                self.events.put(json.loads(raw))

    def send(self, command: dict[str, Any]) -> str:
        self._counter += 1
        ident = f"rec-{self._counter}"
        assert self.process.stdin is not None
        self.process.stdin.write((json.dumps({"id": ident, **command}) + "\n").encode())
        self.process.stdin.flush()
        return ident

    def wait(self, done: Callable[[dict[str, Any]], bool], timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            event = self.events.get(timeout=max(0.1, deadline - time.monotonic()))
            self.seen.append(event)
            if event.get("type") == "response" and event.get("success") is False:
                raise RuntimeError(f"pi rejected a command: {event}")
            if done(event):
                return event

    def call(self, command: dict[str, Any], timeout: float = 120) -> dict[str, Any]:
        ident = self.send(command)
        return self.wait(lambda e: e.get("type") == "response" and e.get("id") == ident, timeout)

    def _drain(self) -> None:
        assert self.process.stderr is not None
        self.stderr = self.process.stderr.read()

    def close(self) -> str:
        """End the CLI by closing its stdin (RPC mode exits at end of input); its stderr."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._stderr_thread.join(timeout=5)
        return self.stderr.decode(errors="replace")


def _pi_setup(agent_dir: Path, base_url: str, window: Mapping[str, Any]) -> None:
    agent_dir.mkdir(parents=True, exist_ok=True)
    model = {
        "id": MODEL,
        "name": MODEL,
        "reasoning": False,
        "input": ["text"],
        "contextWindow": window.get("contextWindow", 128000),
        "maxTokens": 4096,
        "cost": {"input": 0, "output": 0, "cacheRead": 0, "cacheWrite": 0},
    }
    provider = {"baseUrl": base_url, "api": "openai-completions", "apiKey": "RECORDER_API_KEY", "models": [model]}
    (agent_dir / "models.json").write_text(json.dumps({"providers": {"recorder": provider}}, indent=2))
    settings: dict[str, Any] = {
        "defaultProvider": "recorder",
        "defaultModel": MODEL,
        "quietStartup": True,
        "enableInstallTelemetry": False,
        "retry": {"enabled": False},
    }
    if "compaction" in window:
        settings["compaction"] = window["compaction"]
    (agent_dir / "settings.json").write_text(json.dumps(settings, indent=2))


def record_pi(name: str, spec: dict[str, Any], pi: str) -> Path:
    root = WORK / "pi" / name
    shutil.rmtree(root, ignore_errors=True)
    home, workspace = root / "home", root / "workspace"
    agent_dir = home / ".pi" / "agent"
    workspace.mkdir(parents=True)
    for file, content in spec.get("files", {}).items():
        (workspace / file).write_bytes(content if isinstance(content, bytes) else content.encode())
    router = Router(spec.get("summaries"))
    with ScriptedServer(router) as server:
        _pi_setup(agent_dir, server.base_url, spec.get("window", {}))
        env = {
            "PATH": os.environ["PATH"],
            "HOME": str(home),
            "PI_CODING_AGENT_DIR": str(agent_dir),
            "PI_OFFLINE": "1",
            "PI_SKIP_VERSION_CHECK": "1",
            "PI_TELEMETRY": "0",
            "RECORDER_API_KEY": API_KEY,
        }
        quiet = ["--no-extensions", "--no-skills", "--no-prompt-templates", "--no-context-files", "--no-themes"]
        command = [pi, "--provider", "recorder", "--model", MODEL, *quiet, "--offline", "--mode", "rpc"]
        rpc = PiRpc(command, workspace, env)
        try:
            for index, step in enumerate(spec["steps"]):
                if "bash" in step:
                    result = rpc.call({"type": "bash", "command": step["bash"]})
                    print(f"[pi/{name}] step {index}: bash -> {json.dumps(result.get('data'))[:200]}")
                    continue
                router.turn = list(step["replies"])
                rpc.call({"type": "prompt", "message": step["prompt"]})
                rpc.wait(lambda e: e.get("type") == "agent_end")
                if step.get("expect_compaction"):
                    end = rpc.wait(lambda e: e.get("type") == "compaction_end")
                    print(f"[pi/{name}] step {index}: compaction_end {json.dumps(end)[:300]}")
                while rpc.call({"type": "get_state"})["data"].get("isCompacting"):
                    time.sleep(0.2)
                print(f"[pi/{name}] step {index}: done")
                if router.turn:
                    print(f"[pi/{name}] step {index}: {len(router.turn)} scripted replies unused", file=sys.stderr)
            session_file = Path(rpc.call({"type": "get_state"})["data"]["sessionFile"])
        finally:
            stderr = rpc.close()
            (root / "rpc-events.json").write_text(json.dumps(rpc.seen, indent=1))
        if stderr.strip():
            print(f"[pi/{name}] stderr: {stderr.strip()[-500:]}", file=sys.stderr)
        if server.errors:
            print(f"[pi/{name}] server errors:\n" + "\n".join(server.errors), file=sys.stderr)
    (root / "requests.log.json").write_text(json.dumps(router.log, indent=1))
    return _save("pi", name, session_file, router)


# -- saving --------------------------------------------------------------------------------------------


def _system_text(router: Router) -> str:
    """The full text of the first item of the first main request: Codex's base instructions (a
    ``developer`` message) or Pi's system prompt, exactly as sent (``requests.json`` cuts it short)."""
    body = next(body for kind, body in router.log if kind == "main")
    first = (body.get("input") or body.get("messages"))[0]
    return _parts_text(first.get("content"))[0]


def _save(agent: str, name: str, source: Path, router: Router) -> Path:
    out = HERE / agent
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"{name}.jsonl"
    shutil.copyfile(source, target)
    requests = out / f"{name}.requests.json"
    requests.write_text(json.dumps(router.requests(), indent=1, ensure_ascii=False) + "\n")
    system = out / f"{name}.system.txt"
    system.write_text(_system_text(router))
    for path in (target, requests, system):
        if path.stat().st_size > 1_000_000:
            print(f"warning: {path} is over 1 MB", file=sys.stderr)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    names = [f"codex/{n}" for n in CODEX_SESSIONS] + [f"pi/{n}" for n in PI_SESSIONS]
    parser.add_argument("names", nargs="*", help=f"sessions to record (default all: {', '.join(names)})")
    parser.add_argument("--codex", default=str(DEFAULT_CODEX), help="the codex executable")
    parser.add_argument("--pi", default=str(DEFAULT_PI), help="the pi executable")
    args = parser.parse_args()
    for name in args.names or names:
        agent, _, session = name.partition("/")
        if agent == "codex":
            version = subprocess.run([args.codex, "--version"], capture_output=True, text=True).stdout.strip()
            print(version, "->", record_codex(session, CODEX_SESSIONS[session], args.codex))
        elif agent == "pi":
            done = subprocess.run([args.pi, "--version"], capture_output=True, text=True)
            version = (done.stdout or done.stderr).strip()  # pi prints its version on stderr
            print("pi", version, "->", record_pi(session, PI_SESSIONS[session], args.pi))
        else:
            raise SystemExit(f"unknown session {name}: use one of {', '.join(names)}")


if __name__ == "__main__":
    main()
