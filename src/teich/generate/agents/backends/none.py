"""``sandbox.backend: none``: the agent runs as is, unsandboxed; never chosen by ``auto``."""

from __future__ import annotations

from pathlib import Path

from teich.generate.agents.sandbox import AGENT_GID, AGENT_UID, Run


class Unsandboxed:
    """The agent's command, unchanged, on the host's own files and network."""

    name = "none"
    priority = 90
    contains = False
    missing = ""

    def available(self) -> bool:
        return True

    def prepare(self) -> str | None:
        return None

    def user(self) -> tuple[int, int]:
        return AGENT_UID, AGENT_GID

    def command(self, argv: list[str], *, run: Run, install: Path | None, env: list[str]) -> list[str]:
        return argv


BACKEND = Unsandboxed()
