"""The agent CLIs Teich drives: how each is installed, configured, started and resumed, and where it
writes its native session file. Both point at the configured endpoint through an isolated home, so
nothing of the user's own agent configuration or sessions is read or written."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from teich.errors import TeichError
from teich.generate.config import Config
from teich.traces.catalog import offered_tools as catalog_tools

API_KEY_ENV = "TEICH_AGENT_API_KEY"


@dataclass(frozen=True)
class AgentCli:
    """A pinned npm package and its executable (``entry``, inside the install prefix)."""

    name: str
    package: str
    version: str
    entry: str


class CodexCli(AgentCli):
    """OpenAI Codex CLI (``codex exec``), Responses API only."""

    def setup(self, home: Path, config: Config, base_url: str) -> dict[str, str]:
        """``config.toml`` in ``home``, pointing at ``base_url`` (the endpoint as seen from the sandbox)."""
        if config.api.wire_api != "responses":
            raise TeichError("the codex provider speaks the Responses API only: set api.wire_api: responses")
        retries = config.retry.max_attempts - 1
        lines = [
            f"model = {json.dumps(config.model.model)}",
            'model_provider = "teich"',
            f"approval_policy = {json.dumps(config.model.approval_policy or 'never')}",
            f"sandbox_mode = {json.dumps(config.model.sandbox or 'danger-full-access')}",
            "check_for_update_on_startup = false",
        ]
        if config.model.reasoning_effort:
            lines.append(f"model_reasoning_effort = {json.dumps(config.model.reasoning_effort)}")
        lines += [
            "",
            "[analytics]",
            "enabled = false",
            "",
            "[model_providers.teich]",
            'name = "Teich"',
            f"base_url = {json.dumps(base_url)}",
            'wire_api = "responses"',
            f'env_key = "{API_KEY_ENV}"',
            f"request_max_retries = {retries}",
            f"stream_max_retries = {retries}",
        ]
        home.mkdir(parents=True, exist_ok=True)
        (home / "config.toml").write_text("\n".join(lines) + "\n")
        return {"CODEX_HOME": str(home)}

    def command(self, executable: str, prompt: str, workspace: Path, session: str | None, config: Config) -> list[str]:
        """Codex's own sandbox is off unless ``model.sandbox`` asks for one (Teich's sandbox contains it)."""
        flags = ["--json", "--skip-git-repo-check"]
        if config.model.sandbox in (None, "danger-full-access"):
            flags.append("--dangerously-bypass-approvals-and-sandbox")
        if session is None:
            return [executable, "exec", *flags, "-C", str(workspace), prompt]
        return [executable, "exec", "resume", *flags, session, prompt]

    def session_id(self, stdout: str, home: Path) -> str | None:
        """The thread id from the first JSON event (``thread.started``)."""
        for line in stdout.splitlines():
            event = _json(line)
            if event.get("type") == "thread.started":
                return event.get("thread_id")
        return None

    def session_file(self, home: Path, session: str | None) -> Path | None:
        found = sorted((home / "sessions").rglob(f"rollout-*{session}.jsonl")) if session else []
        return found[-1] if found else None


class PiCli(AgentCli):
    """Pi coding agent (``pi -p``), over Chat Completions or the Responses API."""

    def setup(self, home: Path, config: Config, base_url: str) -> dict[str, str]:
        """``models.json`` and ``settings.json`` in ``home``, pointing at ``base_url`` (as seen from the sandbox)."""
        agent_dir = home / ".pi" / "agent"
        agent_dir.mkdir(parents=True, exist_ok=True)
        model = {
            "id": config.model.model,
            "name": config.model.model,
            "reasoning": True,
            "input": ["text"],
            "contextWindow": 128000,
            "maxTokens": config.model.max_tokens or 16384,
            "cost": {"input": 0, "output": 0, "cacheRead": 0, "cacheWrite": 0},
        }
        api = "openai-responses" if config.api.wire_api == "responses" else "openai-completions"
        provider = {"baseUrl": base_url, "api": api, "apiKey": API_KEY_ENV, "models": [model]}
        (agent_dir / "models.json").write_text(json.dumps({"providers": {"teich": provider}}, indent=2))
        settings = {
            "defaultProvider": "teich",
            "defaultModel": config.model.model,
            "quietStartup": True,
            "enableInstallTelemetry": False,
            "retry": {"enabled": False},  # Teich retries whole runs
        }
        (agent_dir / "settings.json").write_text(json.dumps(settings, indent=2))
        return {
            "PI_CODING_AGENT_DIR": str(agent_dir),
            "PI_OFFLINE": "1",
            "PI_SKIP_VERSION_CHECK": "1",
            "PI_TELEMETRY": "0",
        }

    def command(self, executable: str, prompt: str, workspace: Path, session: str | None, config: Config) -> list[str]:
        quiet = ["--no-extensions", "--no-skills", "--no-prompt-templates", "--no-context-files", "--no-themes"]
        resume = ["-c"] if session is not None else []
        chosen = ["--provider", "teich", "--model", config.model.model]
        return [executable, *chosen, *quiet, "--offline", *resume, "-p", prompt]

    def session_id(self, stdout: str, home: Path) -> str | None:
        found = self.session_file(home, None)
        return found.name if found else None

    def session_file(self, home: Path, session: str | None) -> Path | None:
        found = sorted((home / ".pi" / "agent" / "sessions").rglob("*.jsonl"))
        return found[-1] if found else None


AGENT_CLIS: dict[str, CodexCli | PiCli] = {
    "codex": CodexCli("codex", "@openai/codex", "0.169.0", "node_modules/.bin/codex"),
    "pi": PiCli("pi", "@mariozechner/pi-coding-agent", "0.73.1", "node_modules/.bin/pi"),
}


def offered_tools(name: str, version: str) -> list[dict[str, Any]]:
    """The tool schemas the pinned CLI offers the model (recorded from its requests)."""
    catalog = catalog_tools(name, version)
    if catalog is None:
        raise TeichError(f"no tool catalog for the {name} CLI")
    return catalog.tools


def _json(line: str) -> dict[str, Any]:
    try:
        value = json.loads(line)
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}
