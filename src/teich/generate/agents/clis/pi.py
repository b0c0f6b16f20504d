"""The ``pi`` provider: the Pi coding agent, pinned."""

from __future__ import annotations

import json
from pathlib import Path

from teich.generate.agents.provider import API_KEY_ENV, AgentCli
from teich.generate.config import Config


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


PROVIDER = PiCli("pi", "@mariozechner/pi-coding-agent", "0.73.1", "node_modules/.bin/pi")
