"""The ``claude-code`` provider: Anthropic's Claude Code CLI, pinned."""

from __future__ import annotations

import json
from pathlib import Path

from teich.generate.agents.provider import API_KEY_ENV, AgentCli
from teich.generate.config import Config
from teich.schema import json_or_value


class ClaudeCodeCli(AgentCli):
    """Claude Code (``claude --print``), over the Anthropic Messages API at ``api.base_url``."""

    def setup(self, home: Path, config: Config, base_url: str) -> dict[str, str]:
        """``.claude/settings.json`` in ``home`` whose key helper reads the key from the environment (sent
        as ``x-api-key`` and as a bearer token, so Anthropic and compatible proxies both accept it), and the
        variables that point Claude Code at ``base_url`` and turn off its telemetry, updates and other
        traffic besides the model's."""
        claude_dir = home / ".claude"
        claude_dir.mkdir(parents=True, exist_ok=True)
        settings = {"apiKeyHelper": f"printenv {API_KEY_ENV}"}
        (claude_dir / "settings.json").write_text(json.dumps(settings, indent=2))
        model = config.model.model
        env = {
            "CLAUDE_CONFIG_DIR": str(claude_dir),
            "ANTHROPIC_BASE_URL": base_url,
            "ANTHROPIC_SMALL_FAST_MODEL": model,  # background requests go to the configured model too
            "ANTHROPIC_DEFAULT_HAIKU_MODEL": model,
            "CLAUDE_CODE_MAX_RETRIES": "0",  # Teich retries whole runs
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_AUTOUPDATER": "1",
            "DISABLE_TELEMETRY": "1",
            "DISABLE_ERROR_REPORTING": "1",
            "IS_SANDBOX": "1",  # Teich's sandbox contains it: skipping permissions is allowed, root or not
        }
        if config.model.max_tokens:
            env["CLAUDE_CODE_MAX_OUTPUT_TOKENS"] = str(config.model.max_tokens)
        return env

    def command(self, executable: str, prompt: str, workspace: Path, session: str | None, config: Config) -> list[str]:
        """Permission prompts are off (Teich's sandbox contains the agent); a follow-up resumes ``session``."""
        resume = ["--resume", session] if session else []
        flags = ["--output-format", "json", "--model", config.model.model, "--dangerously-skip-permissions"]
        return [executable, "--print", *flags, *resume, "--", prompt]

    def api(self, config: Config) -> str:
        return "Anthropic Messages API"

    def session_id(self, stdout: str, home: Path) -> str | None:
        """The ``session_id`` of the JSON result Claude Code prints."""
        result = json_or_value(stdout.strip(), lenient=True)
        session = result.get("session_id") if isinstance(result, dict) else None
        return session if isinstance(session, str) else None

    def session_file(self, home: Path, session: str | None) -> Path | None:
        """``<session>.jsonl`` in the workspace's folder under ``.claude/projects``."""
        found = sorted((home / ".claude" / "projects").glob(f"*/{session}.jsonl")) if session else []
        return found[-1] if found else None


PROVIDER = ClaudeCodeCli("claude-code", "@anthropic-ai/claude-code", "2.1.332", "node_modules/.bin/claude")
