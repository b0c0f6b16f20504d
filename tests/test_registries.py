"""The extension registries: a provider, an agent CLI, a sandbox backend and a trace format registered
from a test (no module of their own) are used end to end, listed by ``teich --help``, and gone afterwards."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from teich import ConfigError, TrainingExample, load_traces
from teich.cli import app
from teich.errors import GenerationError
from teich.generate.agents.provider import AgentCli
from teich.generate.agents.sandbox import BACKENDS, Run, choose_backend
from teich.generate.config import Config
from teich.generate.prompts import PromptSpec
from teich.generate.providers import PROVIDERS
from teich.traces import FORMATS, detect_trace_type, format_names
from teich.traces.conversation import Conversation
from teich.traces.protocol import Converted, TraceFormat

PI_SESSION = Path(__file__).parent / "data" / "recorded" / "pi" / "bash-execution.jsonl"


class EchoProvider:
    """Answers each prompt with it reversed, one row a line in ``echo.jsonl``; the first run of a prompt
    starting with ``flaky`` fails, so the runner's whole-run retries are exercised."""

    name = "echo"
    attempts = 2

    def __init__(self, config: Config) -> None:
        self.path = config.output.traces_dir / "echo.jsonl"
        self.failed: set[str] = set()

    def _rows(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.path.read_text().splitlines()] if self.path.exists() else []

    def existing(self) -> int:
        return len(self._rows())

    def done_keys(self) -> set[str]:
        return {row["key"] for row in self._rows()}

    def recover(self) -> None:
        return None

    async def run(self, spec: PromptSpec) -> dict[str, Any]:
        if spec.prompt.startswith("flaky") and spec.key not in self.failed:
            self.failed.add(spec.key)
            raise GenerationError("the first try fails")
        messages = [{"role": "user", "content": spec.prompt}, {"role": "assistant", "content": spec.prompt[::-1]}]
        row = {"key": spec.key, "messages": messages, "metadata": {"usage": {"input_tokens": 3, "output_tokens": 4}}}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as rows:
            rows.write(json.dumps(row) + "\n")
        return row["metadata"]

    async def close(self) -> None:
        return None

    def rows(self) -> list[dict[str, Any]]:
        return self._rows()

    def output_files(self) -> list[str]:
        return [self.path.name]


class ReplayCli(AgentCli):
    """An "agent CLI" that writes a recorded Pi session into its home: python, not npm."""

    def install(self) -> Path:
        raise AssertionError("the backend's image holds this CLI: nothing is installed")

    def offered_tools(self) -> list[dict[str, Any]]:
        return []

    def setup(self, home: Path, config: Config, base_url: str) -> dict[str, str]:
        return {"REPLAY_BASE_URL": base_url}

    def command(self, executable: str, prompt: str, workspace: Path, session: str | None, config: Config) -> list[str]:
        copy = "import os, shutil, sys; shutil.copyfile(sys.argv[1], os.path.join(os.environ['HOME'], 'session.jsonl'))"
        return [sys.executable, "-c", copy, str(PI_SESSION)]

    def session_id(self, stdout: str, home: Path) -> str | None:
        return "replayed"

    def session_file(self, home: Path, session: str | None) -> Path | None:
        return home / "session.jsonl"


class RecordingBackend:
    """A backend tried before all others that runs commands as they are, recording each."""

    name = "recording"
    priority = 0
    contains = True
    missing = "nothing"

    def __init__(self) -> None:
        self.commands: list[list[str]] = []

    def available(self) -> bool:
        return True

    def prepare(self) -> str:
        return "recording-image"  # an image holds the CLI: nothing is installed on the host

    def user(self) -> tuple[int, int]:
        return os.getuid(), os.getgid()

    def command(self, argv: list[str], *, run: Run, install: Path | None, env: list[str]) -> list[str]:
        assert install is None and run.sandbox.image == "recording-image" and "REPLAY_BASE_URL" in env
        self.commands.append(argv)
        return argv


class ToyFormat(TraceFormat):
    name = "toy"
    priority = 1

    def matches(self, records: list[dict[str, Any]]) -> bool:
        return bool(records) and "toy_said" in records[0]

    def convert(self, records: list[dict[str, Any]], path: Path | None = None) -> Converted:
        conversation = Conversation()
        conversation.add("user", records[0]["toy_heard"])
        conversation.assistant(text=records[0]["toy_said"])
        return conversation.finish(self.name)


def make_project(folder: Path, provider: str, prompts: list[str], **sections: Any) -> Path:
    (folder / "prompts.jsonl").write_text("".join(json.dumps(p) + "\n" for p in prompts))
    config = {
        "agent": {"provider": provider},
        "model": {"model": "toy-model"},
        "api": {"api_key": "sk-toy"},
        "prompts_file": "prompts.jsonl",
        "retry": {"max_attempts": 1, "backoff_seconds": 0},
        **sections,
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    return folder / "config.yaml"


def generate(config: Path, *args: str):
    return CliRunner().invoke(app, ["generate", "-c", str(config), *args])


def test_a_registered_provider_runs_end_to_end(tmp_path: Path) -> None:
    before = PROVIDERS.names()
    config = make_project(tmp_path, "echo", ["ping", "flaky pong"])
    with PROVIDERS.registered(EchoProvider):
        assert PROVIDERS.names() == tuple(sorted((*before, "echo")))
        result = generate(config)
        assert result.exit_code == 0, result.output
        rows = [json.loads(line) for line in (tmp_path / "output" / "echo.jsonl").read_text().splitlines()]
        assert sorted(row["messages"][-1]["content"] for row in rows) == ["gnip", "gnop ykalf"]  # flaky: tried twice
        assert "| rows | 2 |" in (tmp_path / "output" / "README.md").read_text()  # the card, from rows()
        assert not list((tmp_path / "failures").glob("*.json"))
        assert generate(config).exit_code == 1  # rows exist: --resume is needed
        assert generate(config, "--resume").exit_code == 0
        assert len((tmp_path / "output" / "echo.jsonl").read_text().splitlines()) == 2  # nothing asked again
    assert PROVIDERS.names() == before
    with pytest.raises(
        ConfigError, match="agent.provider: Input should be 'chat', 'claude-code', 'codex', 'hermes' or 'pi'"
    ):
        Config.from_yaml(config, environ={})


def test_a_registered_agent_cli_runs_in_a_registered_backend(tmp_path: Path) -> None:
    """``auto`` picks the backend tried first; the agent provider runs the CLI's command through it and
    keeps the session file it wrote."""
    backends, providers = BACKENDS.names(), PROVIDERS.names()
    backend = RecordingBackend()
    replay = ReplayCli("replay-cli", "replay", "1.0", "bin/replay")
    config = make_project(tmp_path, "replay-cli", ["run it"], sandbox={"backend": "auto"})
    with BACKENDS.registered(backend), PROVIDERS.registered(replay):
        assert choose_backend("auto") is backend and choose_backend("recording") is backend
        result = generate(config)
        assert result.exit_code == 0, result.output
    (session,) = (tmp_path / "output").glob("*.jsonl")
    assert session.read_bytes() == PI_SESSION.read_bytes()  # the native file, unchanged
    assert [argv[0] for argv in backend.commands] == [sys.executable]
    assert (BACKENDS.names(), PROVIDERS.names()) == (backends, providers)
    assert choose_backend("auto") is not backend
    message = "sandbox.backend: Input should be 'auto', 'docker', 'bwrap' or 'none'"
    with pytest.raises(ConfigError, match=message):
        Config.from_yaml(make_project(tmp_path, "chat", ["x"], sandbox={"backend": "recording"}), environ={})


def test_a_registered_trace_format_loads(tmp_path: Path) -> None:
    records = [{"toy_heard": "ping", "toy_said": "pong"}]
    path = tmp_path / "toy.jsonl"
    path.write_text(json.dumps(records[0]) + "\n")
    with FORMATS.registered(ToyFormat()):
        assert format_names()[0] == "toy" and detect_trace_type(records) == "toy"
        (row,) = [TrainingExample.from_record(r) for r in load_traces(path)]
    assert row.metadata["trace_type"] == "toy" and row.messages[-1].content == "pong"
    assert "toy" not in format_names() and detect_trace_type(records) is None


def test_a_name_is_registered_once_per_block() -> None:
    with FORMATS.registered(ToyFormat()), pytest.raises(ValueError, match="already"), FORMATS.registered(ToyFormat()):
        pass
    assert "toy" not in format_names()


def test_help_lists_the_registered_names() -> None:
    providers = f"Providers (agent.provider): {', '.join(PROVIDERS.names())}."
    backends = f"Sandbox backends (sandbox.backend): auto, {', '.join(BACKENDS.names())}."
    formats = f"Trace formats: {', '.join(format_names())}."
    assert {"chat", "codex", "pi"} <= set(PROVIDERS.names()) and {"docker", "bwrap", "none"} <= set(BACKENDS.names())
    shown = {
        command: " ".join(CliRunner().invoke(app, [*command, "--help"]).output.split())
        for command in ((), ("generate",), ("convert",))
    }
    assert all(line in shown[()] for line in (providers, backends, formats))
    assert providers in shown[("generate",)] and backends in shown[("generate",)]
    assert formats in shown[("convert",)]
