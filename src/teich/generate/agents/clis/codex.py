"""The ``codex`` provider: OpenAI's Codex CLI, pinned."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from teich.errors import TeichError
from teich.generate.agents.provider import API_KEY_ENV, AgentCli
from teich.generate.config import Config
from teich.schema import json_or_value


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


PROVIDER = CodexCli("codex", "@openai/codex", "0.169.0", "node_modules/.bin/codex")


def _json(line: str) -> dict[str, Any]:
    value = json_or_value(line, lenient=True)
    return value if isinstance(value, dict) else {}
