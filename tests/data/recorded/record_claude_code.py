"""Re-record the Claude Code sessions in ``claude_code/`` (by hand; needs npm, not run by the tests).

Each session runs the real ``claude`` CLI non-interactively (``claude -p``) against the scripted
Anthropic server in ``tests/anthropic_server.py``, then copies the native session file (and any
``<session-id>/subagents/`` folder) here under a descriptive name, byte-for-byte.

    npm install --prefix /tmp/claude-rec @anthropic-ai/claude-code@2.1.332
    python tests/data/recorded/record_claude_code.py [--claude PATH] [--keep DIR] [NAME ...]

The CLI refuses ``--dangerously-skip-permissions`` as root unless ``IS_SANDBOX=1``, which is set.
Every address is 127.0.0.1; the CLI is told to send no telemetry and make no non-essential requests.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # tests/, for anthropic_server
from anthropic_server import AnthropicServer, Error  # noqa: E402

OUT = HERE / "claude_code"
DEFAULT_CLAUDE = "/tmp/claude-rec/node_modules/.bin/claude"
WORK = Path("/tmp/claude-code-rec")  # fixed, so the recorded cwd paths are stable across re-recordings
SUBAGENT_MARKER = "[sub-agent task]"


def tool(name: str, **arguments: Any) -> dict[str, Any]:
    return {"type": "tool_use", "name": name, "input": arguments}


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def thinking(value: str) -> dict[str, Any]:
    return {"type": "thinking", "thinking": value}


def _texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    return [b.get("text", "") for b in content or () if isinstance(b, dict) and b.get("type") == "text"]


def _first_user_text(body: dict[str, Any]) -> str:
    for message in body.get("messages") or ():
        if message.get("role") == "user":
            return "\n".join(_texts(message.get("content")))
    return ""


def _last_user_text(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages") or ()):
        if message.get("role") == "user":
            return "\n".join(_texts(message.get("content")))
    return ""


def _system_text(body: dict[str, Any]) -> str:
    system = body.get("system")
    return system if isinstance(system, str) else "\n".join(_texts(system))


def classify(body: dict[str, Any]) -> str:
    """``main``, ``subagent``, ``compact`` (the /compact summarisation request) or ``side``."""
    if SUBAGENT_MARKER in _first_user_text(body):
        return "subagent"
    if "create a detailed summary of the conversation" in _last_user_text(body):
        return "compact"
    if not body.get("tools") or "haiku" in str(body.get("model")):
        return "side"
    return "main"


class Router:
    """Answers each request from the script of its kind; main replies come from the current turn's list.

    A turn's replies are a list (consumed in order) or a callable ``(body) -> entry`` (e.g. a
    persistent error). Side requests (titles, topic detection, ...) get a short text.
    """

    def __init__(self, subagent: list[Any] | None = None, compact: str | None = None) -> None:
        self.turn: list[Any] | Callable[[Any], Any] = []
        self.subagent = list(subagent or ())
        self.compact = compact
        self.log: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, body: dict[str, Any]) -> Any:
        kind = classify(body)
        self.log.append((kind, body))
        if kind == "subagent":
            return self.subagent.pop(0)
        if kind == "compact":
            return self.compact or "Summary: the conversation so far."
        if kind == "side":
            return "Scripted side answer."
        if callable(self.turn):
            return self.turn(body)
        return self.turn.pop(0)


# Each session: files to put in the workspace, the turns (prompt, main-loop replies), and optional
# sub-agent replies, compaction summary and extra environment.
SESSIONS: dict[str, dict[str, Any]] = {
    "parallel-calls": {
        "files": {"notes.txt": "alpha\nbeta\n"},
        "turns": [
            (
                "Run `echo one` and `echo two`, and read notes.txt.",
                [
                    [
                        text("I'll run both commands and read the file at once."),
                        tool("Bash", command="echo one", description="Print one"),
                        tool("Bash", command="echo two", description="Print two"),
                        tool("Read", file_path="{cwd}/notes.txt"),
                    ],
                    [text("The commands printed `one` and `two`; notes.txt contains `alpha` and `beta`.")],
                ],
            ),
            (
                "How many lines does notes.txt have?",
                [
                    [tool("Bash", command="wc -l notes.txt", description="Count lines in notes.txt")],
                    [text("notes.txt has 2 lines.")],
                ],
            ),
        ],
    },
    "subagent": {
        "files": {"data.csv": "id,value\n1,10\n2,20\n"},
        "turns": [
            (
                "Use a sub-agent to inspect the workspace and tell me what files it has.",
                [
                    [
                        text("I'll delegate the inspection to a sub-agent."),
                        tool(
                            "Agent",
                            description="Inspect workspace files",
                            prompt=f"{SUBAGENT_MARKER} List the files in the current directory and report them.",
                            subagent_type="general-purpose",
                            run_in_background=False,
                        ),
                    ],
                    [text("The sub-agent found one file: data.csv.")],
                ],
            ),
        ],
        "subagent": [
            [tool("Bash", command="ls -1", description="List files in the directory")],
            [text("The directory contains a single file: data.csv.")],
        ],
    },
    "api-error": {
        "env": {"CLAUDE_CODE_MAX_RETRIES": "1"},
        "turns": [
            ("Say hello.", lambda body: Error(500, "Internal server error (scripted)")),
            ("Please try again: say hello.", [[text("Hello! The API is answering again.")]]),
        ],
    },
    "compaction": {
        "turns": [
            (
                "Create hello.py that prints hello.",
                [
                    [tool("Write", file_path="{cwd}/hello.py", content='print("hello")\n')],
                    [text("Created hello.py.")],
                ],
            ),
            (
                "Run it.",
                [
                    [tool("Bash", command="python3 hello.py", description="Run hello.py")],
                    [text("It printed `hello`.")],
                ],
            ),
            ("/compact", []),
            (
                "Append a line that prints world, then run it.",
                [
                    [
                        tool(
                            "Bash",
                            command="echo 'print(\"world\")' >> hello.py && python3 hello.py",
                            description="Append a print and run the script",
                        )
                    ],
                    [text("hello.py now prints `hello` then `world`.")],
                ],
            ),
        ],
        "compact": (
            "<analysis>\nThe user created hello.py and ran it.\n</analysis>\n\n<summary>\n"
            "1. Primary request: the user asked for hello.py printing hello, then to run it.\n"
            '2. Files: hello.py (`print("hello")`).\n'
            "3. Current state: hello.py runs and prints hello.\n</summary>"
        ),
    },
    "tool-error-thinking": {
        "turns": [
            (
                "Show the contents of missing.txt.",
                [
                    [
                        thinking("The user wants missing.txt. I'll cat it; it may not exist."),
                        tool("Bash", command="cat missing.txt", description="Show missing.txt"),
                    ],
                    [
                        thinking("cat failed with exit status 1, so the file does not exist. I'll list the files."),
                        tool("Bash", command="ls -a", description="List files"),
                    ],
                    [text("missing.txt does not exist in the workspace (cat exited with status 1).")],
                ],
            ),
        ],
    },
}


def _fill(entry: Any, cwd: str) -> Any:
    """Put the workspace path into ``{cwd}`` placeholders of a scripted reply."""
    if isinstance(entry, list):
        return json.loads(json.dumps(entry).replace("{cwd}", cwd))
    return entry


def record(name: str, spec: dict[str, Any], claude: str) -> Path:
    root = WORK / name
    shutil.rmtree(root, ignore_errors=True)
    home, workspace = root / "home", root / "workspace"
    home.mkdir(parents=True)
    workspace.mkdir()
    for file, content in spec.get("files", {}).items():
        (workspace / file).write_text(content)
    session_id = str(uuid.uuid4())
    router = Router(spec.get("subagent"), spec.get("compact"))
    with AnthropicServer(router) as server:
        env = {
            "PATH": os.environ["PATH"],
            "HOME": str(home),
            "CLAUDE_CONFIG_DIR": str(home / ".claude"),
            "ANTHROPIC_BASE_URL": server.base_url,
            "ANTHROPIC_API_KEY": "test-key",
            "DISABLE_TELEMETRY": "1",
            "DISABLE_AUTOUPDATER": "1",
            "DISABLE_ERROR_REPORTING": "1",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "IS_SANDBOX": "1",
            **spec.get("env", {}),
        }
        for index, (prompt, replies) in enumerate(spec["turns"]):
            router.turn = replies if callable(replies) else [_fill(r, str(workspace)) for r in replies]
            session = ["--session-id", session_id] if index == 0 else ["--resume", session_id]
            command = [claude, "-p", prompt, *session, "--output-format", "json", "--dangerously-skip-permissions"]
            done = subprocess.run(command, cwd=workspace, env=env, capture_output=True, text=True, timeout=300)
            print(f"[{name}] turn {index}: rc={done.returncode} {done.stdout[-300:].strip()} {done.stderr[-300:]}")
            if not callable(replies) and router.turn:
                print(f"[{name}] turn {index}: {len(router.turn)} scripted replies unused", file=sys.stderr)
        if server.errors:
            print(f"[{name}] server errors:\n" + "\n".join(server.errors), file=sys.stderr)
    (root / "requests.log.json").write_text(json.dumps(router.log, indent=1))

    found = list((home / ".claude" / "projects").glob(f"*/{session_id}.jsonl"))
    if len(found) != 1:
        raise SystemExit(f"[{name}] session file not found for {session_id}")
    source = found[0]
    OUT.mkdir(parents=True, exist_ok=True)
    target = OUT / f"{name}.jsonl"
    shutil.copyfile(source, target)
    shutil.rmtree(OUT / name, ignore_errors=True)
    if (source.parent / session_id).is_dir():
        shutil.copytree(source.parent / session_id, OUT / name, copy_function=shutil.copyfile)
    _write_requests(name, router.log)
    return target


def _write_requests(name: str, log: list[tuple[str, dict[str, Any]]]) -> None:
    """What the model was offered and sent: per request its kind, model, tool names and a condensed
    context (each block's role, type, text, ids), and the first main request's system text."""
    main = [body for kind, body in log if kind == "main"]
    summary: dict[str, Any] = {
        "system": [block.get("text") for block in main[0].get("system") or ()] if main else [],
        "requests": [{"kind": kind, **_condensed(body)} for kind, body in log],
    }
    for kind in ("subagent", "compact"):
        bodies = [body for k, body in log if k == kind]
        if bodies:
            summary[f"{kind}_system"] = [block.get("text") for block in bodies[0].get("system") or ()]
    (OUT / f"{name}.requests.json").write_text(json.dumps(summary, indent=1, ensure_ascii=False) + "\n")


def _condensed(body: dict[str, Any]) -> dict[str, Any]:
    context = []
    for message in body.get("messages") or ():
        content = message.get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content or []
        for block in blocks:
            item = {"role": message.get("role"), "type": block.get("type")}
            text = block.get("text") if block.get("type") == "text" else block.get("content")
            if isinstance(text, str):
                item["text"] = text[:300]
            for key in ("id", "tool_use_id", "name"):
                if block.get(key):
                    item[key] = block[key]
            context.append(item)
    tools = [t.get("name") for t in body.get("tools") or ()]
    return {"model": body.get("model"), "tools": tools, "context": context}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help=f"sessions to record (default all: {', '.join(SESSIONS)})")
    parser.add_argument("--claude", default=DEFAULT_CLAUDE, help="the claude executable")
    args = parser.parse_args()
    version = subprocess.run([args.claude, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    print("Claude Code", version)
    for name in args.names or SESSIONS:
        print("recorded", record(name, SESSIONS[name], args.claude))


if __name__ == "__main__":
    main()
