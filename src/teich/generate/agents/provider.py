"""Running one prompt through an agent CLI: a fresh workspace and home, the CLI in its sandbox with a
wall-clock limit, follow-ups resumed in the same session, then the native session file copied into
the output unchanged, the workspace snapshotted, and the trace checked for completeness."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

from teich.errors import GenerationError, OutputError, TeichError
from teich.files import write_json_atomic
from teich.generate.agents.clis import AGENT_CLIS, API_KEY_ENV, offered_tools
from teich.generate.agents.install import ensure_installed
from teich.generate.agents.sandbox import Sandbox, choose_backend, ensure_image
from teich.generate.config import Config
from teich.generate.output import RESUME_HINT, cannot_write, spill_paths
from teich.generate.prompts import PromptSpec
from teich.schema import TrainingExample
from teich.traces.sources import TOOLS_SNAPSHOT, LoadReport, iter_examples, trace_is_complete


class AgentProvider:
    """Runs prompts through the configured agent CLI; one native session file per prompt."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.cli = AGENT_CLIS[config.agent.provider]
        self.backend = choose_backend(config.sandbox.backend)
        self.output = config.output.traces_dir
        self._setup: tuple[Sandbox, Path | None] | None = None

    def _sandbox(self) -> tuple[Sandbox, Path | None]:
        """The sandbox and the CLI's install on the host, prepared on first use: the agents image for
        docker (where the CLI is on the image's PATH), an npm install otherwise."""
        if self._setup is None:
            if self.backend == "docker":
                pins = {"CODEX_VERSION": AGENT_CLIS["codex"].version, "PI_VERSION": AGENT_CLIS["pi"].version}
                self._setup = Sandbox("docker", ensure_image(pins), self.config.sandbox.network), None
            else:
                self._setup = (
                    Sandbox(self.backend, network=self.config.sandbox.network),
                    ensure_installed(self.cli.package, self.cli.version, self.cli.entry),
                )
        return self._setup

    def existing(self) -> int:
        return len(self._sessions()) + len(self._spilled())

    def done_keys(self) -> set[str]:
        """Prompts whose session file (kept in the output, or spilled) converts to a complete row."""
        return {path.stem for path in self._sessions() + self._spilled() if _complete_row(path) is not None}

    def recover(self) -> None:
        """Move the sessions an earlier run could not write into the output."""
        for session in self._spilled():
            target = self.output / session.name
            try:
                self.output.mkdir(parents=True, exist_ok=True)
                _copy_atomic(session, target)
            except OSError as error:
                raise cannot_write(target, error, f"; the session is still kept in {session}") from None
            session.unlink(missing_ok=True)

    def rows(self) -> list[dict[str, Any]]:
        """The sessions as standalone rows (for the dataset card)."""
        return [row.to_openai() for path in self._sessions() if (row := _complete_row(path)) is not None]

    def output_files(self) -> list[str]:
        return [path.name for path in self._sessions()]

    def _sessions(self) -> list[Path]:
        return sorted(self.output.glob("*.jsonl")) if self.output.is_dir() else []

    def _spilled(self) -> list[Path]:
        return sorted(path for folder in spill_paths(self.output, suffix="") for path in folder.glob("*.jsonl"))

    def _spill(self, session: Path, name: str) -> str:
        """Keep a session the output cannot take; what was kept, and where, for the error message."""
        for folder in spill_paths(self.output, suffix=""):
            with contextlib.suppress(OSError):
                folder.mkdir(parents=True, exist_ok=True)
                _copy_atomic(session, folder / name)
                return f"; the session was kept in {folder / name}"
        return "; the session could not be kept anywhere"

    async def close(self) -> None:
        return None

    async def run(self, spec: PromptSpec) -> dict[str, Any]:
        """Run a prompt and its follow-ups; return the converted row's metadata."""
        sandbox, install = self._sandbox()
        with sandbox.run(self.config.base_url) as run:
            workspace, home = run.workspace, run.home
            if spec.github_repo:
                await _clone(spec.github_repo, workspace)
            agent_env = {"HOME": str(home), **self.cli.setup(home, self.config, run.base_url)}
            agent_env |= {API_KEY_ENV: self.config.api_key(), "TERM": "dumb", "NO_COLOR": "1"}
            executable = str(install / self.cli.entry) if install else self.cli.name
            session = None
            for prompt in (spec.prompt, *spec.follow_up_prompts):
                argv = self.cli.command(executable, prompt, workspace, session, self.config)
                argv = run.command(argv, install=install, env=list(agent_env))
                stdout = await self._turn(argv, _host_env() | agent_env, workspace, spec)
                session = session or self.cli.session_id(stdout, home) or ""
            return self._keep(spec, self.cli.session_file(home, session), workspace)

    def _offer_tools(self) -> None:
        """``tools.json`` beside the sessions: every tool the CLI offers, called or not, reaches training
        (the loaders apply it to sessions that declare no tools of their own)."""
        path = self.output / TOOLS_SNAPSHOT
        if not path.exists():
            write_json_atomic(path, offered_tools(self.cli.name, self.cli.version))

    async def _turn(self, argv: list[str], env: dict[str, str], workspace: Path, spec: PromptSpec) -> str:
        limit = self.config.retry.timeout_seconds
        process = await asyncio.create_subprocess_exec(
            *argv,
            cwd=workspace,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=limit)
        except asyncio.TimeoutError:
            os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
            raise GenerationError(f"{self.cli.name} did not finish within {limit:g} s and was killed") from None
        if process.returncode != 0:
            detail = _last_line(stderr) or _last_line(stdout) or "no output"
            raise GenerationError(
                f"{self.cli.name} exited with code {process.returncode}: {detail}", _tail(stderr + stdout)
            )
        return stdout.decode(errors="replace")

    def _keep(self, spec: PromptSpec, session: Path | None, workspace: Path) -> dict[str, Any]:
        """Copy the session into the output and the workspace into the sandbox folder; check the trace."""
        if session is None or not session.exists():
            raise GenerationError(f"{self.cli.name} wrote no session file")
        target = self.output / f"{spec.key}.jsonl"
        row = _complete_row(session)
        if row is None:
            failed = self.config.output.failures_dir / f"{spec.key}.session.jsonl"
            failed.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(session, failed)
            raise GenerationError(f"incomplete trace (it does not end on an assistant turn); kept in {failed}")
        try:
            self.output.mkdir(parents=True, exist_ok=True)
            self._offer_tools()
            _copy_atomic(session, target)
        except OSError as error:
            raise cannot_write(target, error, self._spill(session, target.name)) from None
        snapshot = self.config.output.sandbox_dir / spec.key
        shutil.rmtree(snapshot, ignore_errors=True)
        try:
            shutil.copytree(workspace, snapshot, symlinks=True)
        except shutil.Error as error:  # the session is kept: only (part of) the workspace snapshot is missing
            raise OutputError(f"cannot write {snapshot}: {error.args[0][0][2]}; {RESUME_HINT}") from None
        except OSError as error:
            raise cannot_write(snapshot, error) from None
        return row.metadata


def _copy_atomic(source: Path, target: Path) -> None:
    """Copy ``source`` to ``target`` whole or not at all: a partial copy never takes the target's name."""
    partial = target.with_name(f".{target.name}.partial")
    try:
        shutil.copyfile(source, partial)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def _complete_row(session: Path) -> TrainingExample | None:
    """The session converted to a row, if it converts and ends on an assistant turn."""
    try:
        rows = list(iter_examples(session, LoadReport(), drop_incomplete_traces=False))
    except TeichError:
        return None
    return rows[0] if len(rows) == 1 and trace_is_complete(rows[0]) else None


async def _clone(repository: str, workspace: Path) -> None:
    url = repository if "://" in repository else f"https://github.com/{repository}.git"
    process = await asyncio.create_subprocess_exec(
        "git", "clone", "--depth", "1", url, str(workspace), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, stderr = await process.communicate()
    if process.returncode != 0:
        raise GenerationError(f"cannot clone {repository}: {_last_line(stderr)}")


def _host_env() -> dict[str, str]:
    """What the sandbox (or docker client) itself needs from our environment; nothing else leaks in."""
    keep = ("PATH", "LANG", "LC_ALL", "SSL_CERT_FILE", "SSL_CERT_DIR", "HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY")
    keep += ("DOCKER_HOST", "DOCKER_CONFIG", "DOCKER_CONTEXT")
    return {name: os.environ[name] for name in keep if name in os.environ}


def _tail(data: bytes, lines: int = 200) -> str:
    return "\n".join(data.decode(errors="replace").splitlines()[-lines:])


def _last_line(data: bytes) -> str:
    lines = [line for line in data.decode(errors="replace").splitlines() if line.strip()]
    return lines[-1].strip()[:300] if lines else ""
