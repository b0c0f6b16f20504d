"""The ``hermes`` provider: Nous Research's Hermes Agent (PyPI ``hermes-agent``), pinned.

Hermes keeps its sessions in a SQLite database (``$HERMES_HOME/state.db``); its own portable form of a
session is the row ``hermes sessions export`` writes, which Teich's ``hermes`` loader reads. That
export, made by the CLI in the sandbox after the last turn, is the native session file kept."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from pathlib import Path

from teich.generate.agents.provider import API_KEY_ENV, AgentCli
from teich.generate.config import Config

EXPORT = "teich-export"  # the folder in HERMES_HOME the session is exported into
CONTEXT_LENGTH = 128000  # stated, so Hermes does not probe the endpoint or OpenRouter for it


class HermesCli(AgentCli):
    """Hermes Agent (``hermes chat -Q -q``), over an OpenAI-compatible Chat Completions endpoint."""

    def setup(self, home: Path, config: Config, base_url: str) -> dict[str, str]:
        """``.hermes/config.yaml`` in ``home``: the ``custom`` provider at ``base_url`` with the key read from
        the environment, and Hermes' own downloads (the tirith scanner, lazily installed packages) off."""
        hermes_home = home / ".hermes"
        (hermes_home / EXPORT).mkdir(parents=True, exist_ok=True)
        model = {
            "provider": "custom",
            "base_url": base_url,
            "api_key": f"${{{API_KEY_ENV}}}",  # Hermes expands ${VAR} in its config
            "default": config.model.model,
            "context_length": CONTEXT_LENGTH,
        }
        if config.model.max_tokens:
            model["max_tokens"] = config.model.max_tokens
        settings = {
            "model": model,
            "security": {"tirith_enabled": False, "allow_lazy_installs": False},
        }
        (hermes_home / "config.yaml").write_text(json.dumps(settings, indent=2))  # JSON is YAML
        return {"HERMES_HOME": str(hermes_home), "HERMES_DISABLE_LAZY_INSTALLS": "1"}

    def command(self, executable: str, prompt: str, workspace: Path, session: str | None, config: Config) -> list[str]:
        """Approval prompts are off (``--yolo``: Teich's sandbox contains the agent); a follow-up resumes
        ``session``."""
        resume = ["--resume", session] if session else []
        return [executable, "chat", "--quiet", "--yolo", *resume, "--query", prompt]

    def api(self, config: Config) -> str:
        return "Chat Completions API"

    def session_id(self, stdout: str, home: Path) -> str | None:
        """The session the first turn started: the newest in Hermes' database (it prints the id on stderr)."""
        database = home / ".hermes" / "state.db"
        if not database.is_file():
            return None
        with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as connection:
            found = connection.execute("SELECT id FROM sessions ORDER BY started_at DESC LIMIT 1").fetchone()
        return str(found[0]) if found else None

    def finish(self, executable: str, session: str, home: Path) -> list[str] | None:
        """``hermes sessions export`` of ``session`` into the file :meth:`session_file` names."""
        return [executable, "sessions", "export", str(_export(home, session)), "--session-id", session]

    def session_file(self, home: Path, session: str | None) -> Path | None:
        return _export(home, session) if session else None


def _export(home: Path, session: str) -> Path:
    return home / ".hermes" / EXPORT / f"{session}.jsonl"


PROVIDER = HermesCli("hermes", "hermes-agent", "0.19.0", "bin/hermes", "pypi")
