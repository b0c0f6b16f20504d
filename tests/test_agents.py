"""``teich generate`` with the real Codex, Pi and Claude Code CLIs (from npm) and Hermes Agent (from PyPI)
in a bubblewrap sandbox, against the scripted server speaking each CLI's wire protocol (Codex: Responses
API over SSE; Pi and Hermes: Chat Completions over SSE; Claude Code: Anthropic Messages API over SSE) on
127.0.0.1."""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import anthropic_server
import pytest
import yaml
from model_families import family_tokenizer
from openai_server import Fault, Reply, scripted_servers
from typer.testing import CliRunner

from teich import TrainingExample, audit, load_traces, mask_data, prepare_data
from teich.cli import app
from teich.generate.agents.sandbox import AGENT_UID
from teich.generate.providers import PROVIDERS

pytestmark = pytest.mark.skipif(
    not (shutil.which("bwrap") and shutil.which("npm")), reason="needs bubblewrap and npm (.ci/run installs them)"
)
OUTSIDE = Path.home() / ".teich-sandbox-escape-test"
SHELL = {
    "codex": ("exec_command", "cmd"),
    "pi": ("bash", "command"),
    "claude-code": ("Bash", "command"),
    "hermes": ("terminal", "command"),
}
WIRE = {"codex": "responses", "pi": "chat", "claude-code": "chat", "hermes": "chat"}  # Claude Code: Messages API
# what the native file's first record holds (Hermes' export is one session row)
FIRST_RECORD = {
    "codex": ("type", "session_meta"),
    "pi": ("type", "session"),
    "claude-code": ("type", "queue-operation"),
    "hermes": ("source", "cli"),
}
SCHEMAS = {"claude-code": "declared"}  # its sessions record the tools sent; the others' rows take tools.json


@pytest.fixture
def scripted_server():
    with scripted_servers() as make:
        yield make


# Hermes starts slowly (about 5 s a turn): its runs of the shared tests are slow ones, bar the session below
@pytest.fixture(scope="module", params=["codex", "pi", "claude-code", pytest.param("hermes", marks=pytest.mark.slow)])
def agent(request) -> str:
    PROVIDERS[request.param].install()  # npm or PyPI, once per machine (cached)
    return request.param


@pytest.fixture
def agent_server(agent, scripted_server):
    """Starts the scripted server for ``agent``'s wire protocol from an OpenAI-style reply function
    (see :func:`by_prompt`); for Claude Code, an Anthropic server translating each reply."""
    started: list[anthropic_server.AnthropicServer] = []

    def start(reply):
        if agent != "claude-code":
            return scripted_server(reply)
        started.append(anthropic_server.AnthropicServer(lambda body: _anthropic(reply(_prompts_only(body)))).start())
        return started[-1]

    yield start
    for server in started:
        server.close()


def _prompts_only(body: dict[str, Any]) -> dict[str, Any]:
    """The user's own prompts of an Anthropic request, without the reminders Claude Code adds to them."""
    texts = [
        block["text"] if isinstance(block, dict) else block
        for message in body["messages"]
        if message["role"] == "user"
        for block in (message["content"] if isinstance(message["content"], list) else [message["content"]])
        if isinstance(block, str) or block.get("type") == "text"
    ]
    return {"messages": [{"role": "user", "content": t} for t in texts if not t.startswith("<system-reminder>")]}


def _anthropic(reply: Reply | Fault) -> anthropic_server.Reply | anthropic_server.Error:
    """An OpenAI-style scripted reply as the same Anthropic message (thinking, text, tool calls)."""
    if isinstance(reply, Fault):
        message = (reply.body or {}).get("error", {}).get("message")
        return anthropic_server.Error(reply.status or 500, message)
    blocks: list[dict[str, Any]] = [{"type": "thinking", "thinking": reply.reasoning}] if reply.reasoning else []
    blocks += [{"type": "text", "text": reply.content}] if reply.content else []
    for call in reply.tool_calls or []:
        blocks.append({"type": "tool_use", "id": call["id"], "name": call["name"], "input": call["arguments"]})
    return anthropic_server.Reply(blocks, delay=reply.delay)


def make_project(folder: Path, server, agent: str, prompts: list[Any], **overrides: Any) -> Path:
    (folder / "prompts.jsonl").write_text("".join(json.dumps(p) + "\n" for p in prompts))
    config = {
        "agent": {"provider": agent},
        "model": {"model": "scripted-model"},
        "api": {"provider": "custom", "wire_api": WIRE[agent], "base_url": server.base_url, "api_key": "sk-agent"},
        "prompts_file": "prompts.jsonl",
        "concurrency": 1,
        "sandbox": {"backend": "bwrap"},
        "retry": {"max_attempts": 1, "backoff_seconds": 0.01, "timeout_seconds": 60},
    }
    for section, values in overrides.items():
        config[section] = {**config.get(section, {}), **values}
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    return folder / "config.yaml"


def shell_call(agent: str, command: str, call_id: str) -> dict[str, Any]:
    name, key = SHELL[agent]
    return {"name": name, "arguments": {key: command}, "id": call_id}


def by_prompt(script: dict[str, list[Reply | Fault]]):
    """Replies chosen by the conversation's first user prompt, in order, per conversation."""

    def reply(body: dict[str, Any]) -> Reply | Fault:
        items = body.get("messages") or body.get("input") or []
        texts = [_text(item) for item in items if item.get("role") == "user"]
        prompt = next((key for key in script for text in texts if key in text), None)
        return script[prompt].pop(0) if prompt else Fault(status=400)

    return reply


def _text(item: dict[str, Any]) -> str:
    content = item.get("content")
    if isinstance(content, str):
        return content
    return " ".join(part.get("text", "") for part in content or [] if isinstance(part, dict))


def generate(config: Path, *args: str):
    return CliRunner().invoke(app, ["generate", "-c", str(config), *args])


def test_agent_session_end_to_end(agent, tmp_path, agent_server):
    """A tool call that writes a file, its result, a final answer, and a follow-up in the same session."""
    prompt, follow_up = "Create hello.txt saying hello", "Append a second line"
    script = {
        prompt: [
            Reply(
                reasoning="Write the file with the shell.",
                tool_calls=[shell_call(agent, "echo hello > hello.txt", "c1")],
            ),
            Reply(content="Created hello.txt."),
            Reply(tool_calls=[shell_call(agent, "echo again >> hello.txt", "c2")]),
            Reply(content="Appended."),
        ]
    }
    server = agent_server(by_prompt(script))
    config = make_project(tmp_path, server, agent, [{"prompt": prompt, "follow_up_prompts": [follow_up]}])
    result = generate(config)
    assert result.exit_code == 0, result.output + str(server.errors)
    (session,) = [p for p in (tmp_path / "output").glob("*.jsonl")]
    first = json.loads(session.read_text().splitlines()[0])
    key, value = FIRST_RECORD[agent]
    assert first[key] == value  # the native file, unchanged
    assert (tmp_path / "sandbox" / session.stem / "hello.txt").read_text() == "hello\nagain\n"
    (row,) = [TrainingExample.from_record(r) for r in load_traces(tmp_path / "output")]
    assert row.metadata["trace_type"] == agent.replace("-", "_")
    assert [row.prompt, *row.follow_up_prompts] == [prompt, follow_up]
    calls = [c for m in row.messages for c in m.tool_calls or []]
    name, key = SHELL[agent]
    assert [c.function.name for c in calls] == [name, name]
    assert calls[0].function.arguments[key] == "echo hello > hello.txt"
    results = [m for m in row.messages if m.role == "tool"]
    assert [m.tool_call_id for m in results] == [c.id for c in calls]
    assert row.messages[-1].role == "assistant" and row.messages[-1].content == "Appended."
    # every tool the CLI offers is declared, also those never called
    declared = {t["function"]["name"] for t in row.tools}
    assert name in declared and len(declared) >= 4
    assert row.metadata["tool_schema_source"] == SCHEMAS.get(agent, "snapshot")
    assert json.loads((tmp_path / "output" / "tools.json").read_text())
    card = (tmp_path / "output" / "README.md").read_text()
    assert "- agent-traces\n" in card and f"- {agent}\n" in card and "sk-agent" not in card
    # the trace trains: tool-call tokens are supervised
    tokenizer = family_tokenizer("qwen3_6")
    dataset = prepare_data(tmp_path / "output", tokenizer, tokenize=True)
    trainer = SimpleNamespace(train_dataset=dataset, eval_dataset=None, args=SimpleNamespace(max_length=None))
    masked = mask_data(trainer, tokenizer=tokenizer, train_on_reasoning=False, audit=False).train_dataset[0]
    trained = [t for t, label in zip(masked["input_ids"], masked["labels"], strict=True) if label != -100]
    assert "echo hello > hello.txt" in tokenizer.decode(trained)
    assert audit(trainer.train_dataset).by_kind["tool_call"] > 0
    (prepared,) = dataset
    tool_spans = [s for s in prepared["spans"] if s["kind"] == "tool_call"]
    assert len(tool_spans) == 2 and name in prepared["text"][tool_spans[0]["start"] : tool_spans[0]["end"]]


@pytest.mark.parametrize("agent", ["hermes"], indirect=True)
def test_hermes_session_end_to_end(agent, tmp_path, agent_server):
    """The end-to-end session with Hermes in the default run (its other runs are slow ones)."""
    test_agent_session_end_to_end(agent, tmp_path, agent_server)


def test_sandbox_keeps_writes_inside_the_workspace(agent, tmp_path, agent_server):
    OUTSIDE.unlink(missing_ok=True)
    prompt = "Try to write outside"
    script = {
        prompt: [
            Reply(tool_calls=[shell_call(agent, f"echo escaped > {OUTSIDE}", "c1")]),
            Reply(content="Could not write there."),
        ]
    }
    server = agent_server(by_prompt(script))
    config = make_project(tmp_path, server, agent, [prompt])
    result = generate(config)
    assert result.exit_code == 0, result.output
    assert not OUTSIDE.exists()
    (row,) = [TrainingExample.from_record(r) for r in load_traces(tmp_path / "output")]
    (output,) = [m.content for m in row.messages if m.role == "tool"]
    assert "Read-only file system" in str(output)


@pytest.fixture
def host_listener() -> Iterator[tuple[int, list[bytes]]]:
    """A TCP listener on the host's 127.0.0.1 (not the endpoint); yields its port and what reached it."""
    listener = socket.create_server(("127.0.0.1", 0))
    received: list[bytes] = []

    def accept() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            with connection:
                received.append(connection.recv(100))

    threading.Thread(target=accept, daemon=True).start()
    yield listener.getsockname()[1], received
    listener.shutdown(socket.SHUT_RDWR)
    listener.close()


def tool_outputs(folder: Path) -> list[str]:
    (row,) = [TrainingExample.from_record(r) for r in load_traces(folder)]
    return [_printed(str(m.content)) for m in row.messages if m.role == "tool"]


def _printed(content: str) -> str:
    """What a shell command printed: Hermes' terminal tool returns it as JSON (``output``, ``error``)."""
    try:
        result = json.loads(content)
    except json.JSONDecodeError:
        return content
    if not (isinstance(result, dict) and "output" in result):
        return content
    return f"{result['output']}\n{result.get('error') or ''}"


def test_sandbox_holds(agent, tmp_path, agent_server, host_listener):
    """Run by root (as on GPU boxes) or not, the agent's shell is an unprivileged user without
    capabilities that sees nothing of the host's homes, secrets or other projects, writes nowhere on the
    host, and reaches nothing on the network but the endpoint (through the relay)."""
    token = f"s3cr3t-{time.time_ns()}"  # the planted files' content, in none of their names
    secret = Path.home() / f".teich-secret-{tmp_path.name}"  # /root/... when root runs the tests
    other = tmp_path / "other-project"
    other.mkdir()
    (other / "notes.txt").write_text(token)
    port, received = host_listener
    script: dict[str, list[Reply | Fault]] = {}
    server = agent_server(by_prompt(script))
    escapes = {
        "uid": "id -u; id -g",
        "privileges": "grep -E '^(CapEff|CapPrm|CapBnd|NoNewPrivs)' /proc/self/status",
        "home secret": f"cat {secret}",
        "shadow": "cat /etc/shadow; cat /etc/gshadow; ls /etc/ssh /etc/ssl/private",
        "other project": f"ls {other}; cat {other / 'notes.txt'}",
        "this repository": f"ls {Path(__file__).parent}",
        "remount": "mount -o remount,rw /; mount -o remount,rw /usr; echo escaped > /usr/teich-escape",
        "invoker home": f"echo escaped > {OUTSIDE}",
        "sysctl": "cat /proc/sys/kernel/core_uses_pid > /proc/sys/kernel/core_uses_pid",
        "host port": f"bash -c 'echo escaped > /dev/tcp/127.0.0.1/{port}'",
        "endpoint port": f"bash -c 'echo escaped > /dev/tcp/127.0.0.1/{urlsplit(server.base_url).port}'",
    }
    secret.write_text(token)
    OUTSIDE.unlink(missing_ok=True)
    prompt = "Try to escape"
    calls = [Reply(tool_calls=[shell_call(agent, command, f"c{i}")]) for i, command in enumerate(escapes.values())]
    script[prompt] = [*calls, Reply(content="Stayed inside.")]
    (tmp_path / "project").mkdir()
    config = make_project(tmp_path / "project", server, agent, [prompt])
    try:
        result = generate(config)
    finally:
        secret.unlink()
    assert result.exit_code == 0, result.output + str(server.errors)  # the endpoint stayed reachable
    outputs = dict(zip(escapes, tool_outputs(tmp_path / "project" / "output"), strict=True))
    assert f"{AGENT_UID}\n{AGENT_UID}" in outputs["uid"]
    for line in ("CapEff:\t0000000000000000", "CapPrm:\t0000000000000000", "CapBnd:\t0000000000000000"):
        assert line in outputs["privileges"]
    assert "NoNewPrivs:\t1" in outputs["privileges"]
    for name in ("home secret", "shadow", "other project", "this repository"):
        assert token not in outputs[name] and "No such file or directory" in outputs[name], name
    assert "test_agents.py" not in outputs["this repository"]
    assert outputs["remount"].count("must be superuser") == 2 and "Read-only file system" in outputs["remount"]
    assert not Path("/usr/teich-escape").exists()
    assert "Read-only file system" in outputs["invoker home"] and not OUTSIDE.exists()
    assert "Read-only file system" in outputs["sysctl"]
    for name in ("host port", "endpoint port"):
        assert "Connection refused" in outputs[name], name
    assert received == []


def test_full_network_reaches_the_host(agent, tmp_path, agent_server, host_listener):
    """``sandbox.network: full`` shares the host's network: the same connection goes through."""
    port, received = host_listener
    prompt = "Connect"
    command = f"bash -c 'echo reached > /dev/tcp/127.0.0.1/{port}'"
    script = {prompt: [Reply(tool_calls=[shell_call(agent, command, "c1")]), Reply(content="Connected.")]}
    server = agent_server(by_prompt(script))
    config = make_project(tmp_path, server, agent, [prompt], sandbox={"network": "full"})
    result = generate(config)
    assert result.exit_code == 0, result.output + str(server.errors)
    deadline = time.monotonic() + 5
    while not received and time.monotonic() < deadline:
        time.sleep(0.05)
    assert received == [b"reached\n"]


def test_server_errors_and_hangs_go_to_failures_and_the_batch_goes_on(agent, tmp_path, agent_server):
    script = {
        "broken": [Fault(status=400, body={"error": {"message": "bad request", "type": "invalid_request_error"}})] * 20,
        "slow": [Reply(content="too late", delay=30)] * 5,
        "fine": [Reply(content="All good.")],
    }
    server = agent_server(by_prompt(script))
    config = make_project(tmp_path, server, agent, ["broken", "slow", "fine"], retry={"timeout_seconds": 8})
    result = generate(config)
    assert result.exit_code == 1
    assert "1 done, 2 failed" in result.output
    errors = {
        json.loads(p.read_text())["prompt"]: json.loads(p.read_text())["error"]
        for p in (tmp_path / "failures").glob("*.json")
    }
    assert set(errors) == {"broken", "slow"}
    assert "did not finish within 8 s" in errors["slow"]
    assert "exited with code" in errors["broken"]
    records = [json.loads(p.read_text()) for p in (tmp_path / "failures").glob("*.json")]
    (record,) = [r for r in records if r["prompt"] == "broken"]
    assert "bad request" in record["agent_output"]  # what the agent printed is kept
    assert [r["prompt"] for r in load_traces(tmp_path / "output")] == ["fine"]


def test_resume_counts_only_complete_sessions(agent, tmp_path, agent_server):
    # Claude Code answers a 400 by retrying its request in simpler forms (six requests in all)
    script = {"first": [Reply(content="One.")], "second": [Fault(status=400)] * 20 + [Reply(content="Two.")]}
    server = agent_server(by_prompt(script))
    config = make_project(tmp_path, server, agent, ["first", "second"])
    assert generate(config).exit_code == 1  # "second" failed
    script["second"] = [Reply(content="Two.")]
    result = generate(config, "--resume")
    assert result.exit_code == 0, result.output
    assert "1 done, 0 failed, 1 already done" in result.output
    assert sorted(r["prompt"] for r in load_traces(tmp_path / "output")) == ["first", "second"]
    assert not list((tmp_path / "failures").glob("*.json"))


def test_docker_backend(tmp_path, scripted_server, monkeypatch):
    """sandbox.backend auto picks Docker when an engine answers: the image is built from the shipped
    Dockerfile once, and each turn runs in it with only the run folder mounted, reaching the endpoint
    through the relay (the stand-in runs the container's command on the host)."""
    prefix = PROVIDERS["pi"].install()
    fake = tmp_path / "fake-bin"
    fake.mkdir()
    state = tmp_path / "docker-state"
    image_path = f"{prefix / 'node_modules' / '.bin'}:{Path(shutil.which('node')).parent}:/usr/bin:/bin"
    stand_in = Path(__file__).parent / "fake_docker.py"
    settings = f'FAKE_DOCKER_STATE="{state}" FAKE_DOCKER_PATH="{image_path}"'  # Teich passes docker no extras
    (fake / "docker").write_text(f'#!/bin/sh\n{settings} exec "{sys.executable}" "{stand_in}" "$@"\n')
    (fake / "docker").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:{os.environ['PATH']}")
    script = {
        "one": [Reply(tool_calls=[shell_call("pi", "echo hi > hi.txt", "c1")]), Reply(content="Done.")],
        "two": [Reply(content="Also done.")],
    }
    server = scripted_server(by_prompt(script))
    project = tmp_path / "project"
    project.mkdir()
    config = make_project(project, server, "pi", ["one"], sandbox={"backend": "auto"})
    result = generate(config)
    assert result.exit_code == 0, result.output
    (project / "prompts.jsonl").write_text('"one"\n"two"\n')
    assert generate(config, "--resume").exit_code == 0
    calls = [json.loads(line) for line in (state / "calls.jsonl").read_text().splitlines()]
    builds = [c for c in calls if c[0] == "build"]
    assert len(builds) == 1  # the second run found the image
    build = builds[0]
    assert "CODEX_VERSION=0.169.0" in build and "PI_VERSION=0.73.1" in build and "HERMES_VERSION=0.19.0" in build
    assert build[build.index("--file") + 1].endswith("teich/generate/agents/Dockerfile")
    tag = build[build.index("--tag") + 1]
    assert tag.startswith("teich-agents:")
    runs = [c for c in calls if c[0] == "run"]
    assert len(runs) == 2
    for run in runs:
        assert run[:4] == ["run", "--rm", "--network", "none"] and tag in run  # only the relay leads out
        workspace = run[run.index("--workdir") + 1]
        assert f"{workspace}:{workspace}" in run
        inner = run[run.index(tag) + 1 :]
        assert inner[:2] == ["node", "-e"]  # the relay's forwarder, which starts the CLI
        assert inner[inner.index("--") + 3] == "pi"  # the CLI from the image's PATH, not the host install
        passed = [run[i + 1] for i, flag in enumerate(run) if flag == "--env"]
        assert "TEICH_AGENT_API_KEY" in passed and "PATH" not in passed
        assert not any("sk-agent" in part for part in run)  # the key is passed by name, never on argv
    snapshots = sorted(p.name for p in (project / "sandbox").iterdir())
    assert len(snapshots) == 2
    assert any((project / "sandbox" / name / "hi.txt").exists() for name in snapshots)
    assert sorted(r["prompt"] for r in load_traces(project / "output")) == ["one", "two"]


def test_a_session_the_full_output_cannot_take_is_spilled_and_resumed(agent, tmp_path, agent_server, monkeypatch):
    """The disk fills as the session is copied into the output: one line names what was kept and
    where; ``--resume`` moves the kept session into place without asking the model again."""
    import errno

    import teich.generate.agents.provider as provider

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    script = {"Say done": [Reply(content="Done.")]}
    server = agent_server(by_prompt(script))
    config = make_project(tmp_path, server, agent, [{"prompt": "Say done"}])
    copy = shutil.copyfile

    def full_output(source, target, *args, **kwargs):
        if Path(target).parent == tmp_path / "output":
            Path(target).write_bytes(Path(source).read_bytes()[:10])  # part of it lands, as on a full disk
            raise OSError(errno.ENOSPC, "No space left on device")
        return copy(source, target, *args, **kwargs)

    monkeypatch.setattr(provider.shutil, "copyfile", full_output)
    result = generate(config)
    assert result.exit_code == 1 and "Traceback" not in result.output
    (line,) = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert "No space left on device" in line and "the session was kept in" in line and "--resume" in line
    assert not list((tmp_path / "output").glob("*.jsonl"))  # no partial session under a session's name
    asked = len(server.requests)
    monkeypatch.setattr(provider.shutil, "copyfile", copy)
    result = generate(config, "--resume")
    assert result.exit_code == 0, result.output
    assert len(server.requests) == asked  # the model was not asked again
    (row,) = load_traces(tmp_path / "output")
    assert row["messages"][-1]["content"] == "Done."
    assert not [p for p in (tmp_path / "output").parent.rglob("*.unwritten*") if any(p.glob("*.jsonl"))]
