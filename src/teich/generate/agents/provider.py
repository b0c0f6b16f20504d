"""Running one prompt through an agent CLI: a fresh workspace and home, the CLI in its sandbox with a
wall-clock limit, follow-ups resumed in the same session, then the native session file copied into
the output unchanged, the workspace snapshotted, and the trace checked for completeness.

A run splits in two (a :class:`~teich.generate.providers.SplitProvider`): :meth:`AgentProvider.produce`
runs the CLI in its sandbox and returns an :class:`AgentRun` (the session file's bytes and the workspace
as a gzipped tar, at most :data:`SNAPSHOT_LIMIT` of its files), which pickles, so that it can run on a
Ray worker; :meth:`AgentProvider.keep` writes it into the output where this process runs. A local run
is the two in turn.

Each agent CLI is an :class:`AgentCli`: one module in :mod:`teich.generate.agents.clis` whose
``PROVIDER`` describes how it is installed, configured, started and resumed, and where it writes its
native session file; it is registered as the provider of its name (see :mod:`teich.generate.providers`).
Every CLI points at the configured endpoint through an isolated home, so nothing of the user's own
agent configuration or sessions is read or written."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
from abc import ABC, abstractmethod
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from types import MappingProxyType
from typing import Any

from teich.errors import GenerationError, OutputError, TeichError, last_line
from teich.files import write_json_atomic, write_text_atomic
from teich.generate.agents.install import Registry, ensure_installed, installing
from teich.generate.agents.sandbox import Sandbox, choose_backend
from teich.generate.config import Config
from teich.generate.output import RESUME_HINT, cannot_write, spill_paths
from teich.generate.prompts import PromptSpec
from teich.generate.providers import PROVIDERS
from teich.schema import TrainingExample
from teich.traces.catalog import offered_tools as catalog_tools
from teich.traces.sources import TOOLS_SNAPSHOT, LoadOptions, LoadReport, iter_examples, trace_is_complete

API_KEY_ENV = "TEICH_AGENT_API_KEY"
WIRE_APIS = MappingProxyType({"chat": "Chat Completions API", "responses": "Responses API"})
#: Bytes of workspace files a snapshot holds at most: files past it (in name order) are left out of
#: ``sandbox/<key>/`` and listed in ``sandbox/<key>.omitted``, one path a line.
SNAPSHOT_LIMIT = 1 << 30


@dataclass(frozen=True)
class AgentRun:
    """What one prompt's agent run left, to be kept in the output (it pickles: it may come from a Ray
    worker): the native session file's name and bytes, the workspace as a gzipped tar, the workspace
    files left out of it (over :data:`SNAPSHOT_LIMIT`), and why packing it stopped early, if it did."""

    session_name: str
    session: bytes
    workspace: bytes
    omitted: tuple[str, ...] = ()
    unreadable: str = ""


@dataclass(frozen=True)
class AgentCli(ABC):
    """An agent CLI Teich drives: a pinned package from ``registry`` (npm or PyPI) and its executable
    (``entry``, inside the install prefix). Called with a config, it is the provider that runs it."""

    name: str
    package: str
    version: str
    entry: str
    registry: Registry = "npm"

    def __call__(self, config: Config) -> AgentProvider:
        return AgentProvider(config, self)

    def install(self) -> Path:
        """The CLI's install prefix on the host, installed from its registry on first use."""
        with installing():
            return ensure_installed(self.package, self.version, self.entry, self.registry)

    def describe(self, config: Config) -> str:
        """What runs the prompts, for the dataset card: the CLI, its pinned package, and the API it speaks
        to the endpoint."""
        return f"the {self.name} agent CLI, {self.registry} `{self.package}` {self.version}; {self.api(config)}"

    def api(self, config: Config) -> str:
        """The API the CLI speaks to the endpoint (``api.wire_api``, where the CLI speaks both)."""
        return WIRE_APIS[config.api.wire_api]

    def offered_tools(self) -> list[dict[str, Any]]:
        """The tool schemas the pinned CLI offers the model (recorded from its requests; the catalog is
        named like the trace type, ``claude_code`` for ``claude-code``)."""
        catalog = catalog_tools(self.name.replace("-", "_"), self.version)
        if catalog is None:
            raise TeichError(f"no tool catalog for the {self.name} CLI")
        return catalog.tools

    @abstractmethod
    def setup(self, home: Path, config: Config, base_url: str) -> dict[str, str]:
        """Write the CLI's configuration into ``home``, pointing at ``base_url`` (the endpoint as seen from
        the sandbox); return the environment variables the CLI needs besides ``HOME`` and the key."""

    @abstractmethod
    def command(self, executable: str, prompt: str, workspace: Path, session: str | None, config: Config) -> list[str]:
        """The command line of one turn: a new session in ``workspace``, or ``session`` resumed."""

    @abstractmethod
    def session_id(self, stdout: str, home: Path) -> str | None:
        """The session the first turn started, from what it printed or wrote."""

    @abstractmethod
    def session_file(self, home: Path, session: str | None) -> Path | None:
        """The native session file of ``session``, if the CLI wrote one."""

    def finish(self, executable: str, session: str, home: Path) -> list[str] | None:
        """A command run in the sandbox after the last turn that writes the native session file (an
        export), or ``None`` where the turns write it themselves."""
        return None


def agent_clis() -> tuple[AgentCli, ...]:
    """The registered providers that are agent CLIs, by name."""
    return tuple(provider for provider in PROVIDERS if isinstance(provider, AgentCli))


class AgentProvider:
    """Runs prompts through one agent CLI in the configured sandbox; one native session file per prompt."""

    def __init__(self, config: Config, cli: AgentCli) -> None:
        self.config = config
        self.cli = cli
        self.backend = choose_backend(config.sandbox.backend)
        self.output = config.output.traces_dir
        self._setup: tuple[Sandbox, Path | None] | None = None

    @property
    def attempts(self) -> int:
        """An agent run that fails is retried whole, up to ``retry.max_attempts`` times."""
        return self.config.retry.max_attempts

    def _sandbox(self) -> tuple[Sandbox, Path | None]:
        """The sandbox and the CLI's install on the host, prepared on first use: the backend's image
        where it has one (the CLI comes with it), an install on the host otherwise."""
        if self._setup is None:
            image = self.backend.prepare()
            sandbox = Sandbox(self.backend, image, self.config.sandbox.network)
            self._setup = sandbox, None if image else self.cli.install()
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
        """Run a prompt and its follow-ups and keep the session; return the converted row's metadata."""
        return self.keep(spec, await self.produce(spec))

    async def produce(self, spec: PromptSpec) -> AgentRun:
        """Run a prompt and its follow-ups in a fresh sandbox; what they left, written nowhere."""
        sandbox, install = self._sandbox()
        with sandbox.run(self.config.base_url) as run:
            workspace, home = run.workspace, run.home
            if spec.github_repo:
                await _clone(spec.github_repo, workspace)
            agent_env = {"HOME": str(home), **self.cli.setup(home, self.config, run.base_url)}
            agent_env |= {API_KEY_ENV: self.config.api_key(), "TERM": "dumb", "NO_COLOR": "1"}
            executable = str(install / self.cli.entry) if install else self.cli.name
            session = None

            async def sandboxed(argv: list[str]) -> str:
                sandboxed_argv = run.command(argv, install=install, env=list(agent_env))
                return await self._turn(sandboxed_argv, _host_env() | agent_env, workspace)

            for prompt in (spec.prompt, *spec.follow_up_prompts):
                stdout = await sandboxed(self.cli.command(executable, prompt, workspace, session, self.config))
                session = session or self.cli.session_id(stdout, home) or ""
            finish = self.cli.finish(executable, session, home) if session else None
            if finish:
                await sandboxed(finish)
            return await self._collect(self.cli.session_file(home, session), workspace)

    async def _collect(self, session: Path | None, workspace: Path) -> AgentRun:
        """The session file's bytes and the packed workspace."""
        if session is None or not session.exists():
            raise GenerationError(f"{self.cli.name} wrote no session file")
        try:
            data = session.read_bytes()
        except OSError as error:
            raise GenerationError(f"cannot read {self.cli.name}'s session file {session.name}: {error}") from None
        packed, omitted, unreadable = await asyncio.to_thread(_pack, workspace)
        return AgentRun(session.name, data, packed, omitted, unreadable)

    def keep(self, spec: PromptSpec, produced: AgentRun) -> dict[str, Any]:
        """Keep the session in the output (when its trace is complete) and the workspace in the sandbox
        folder; return the converted row's metadata."""
        with tempfile.TemporaryDirectory(prefix="teich-session-") as folder:
            session = Path(folder) / produced.session_name
            try:
                session.write_bytes(produced.session)
            except OSError as error:
                raise cannot_write(session, error) from None
            row = self._keep_session(spec, session)
        self._keep_workspace(spec, produced)
        return row.metadata

    def _offer_tools(self) -> None:
        """``tools.json`` beside the sessions: every tool the CLI offers, called or not, reaches training
        (the loaders apply it to sessions that declare no tools of their own)."""
        path = self.output / TOOLS_SNAPSHOT
        if not path.exists():
            write_json_atomic(path, self.cli.offered_tools())

    async def _turn(self, argv: list[str], env: dict[str, str], workspace: Path) -> str:
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
            detail = last_line(stderr) or last_line(stdout) or "no output"
            raise GenerationError(
                f"{self.cli.name} exited with code {process.returncode}: {detail}", _tail(stderr + stdout)
            )
        return stdout.decode(errors="replace")

    def _keep_session(self, spec: PromptSpec, session: Path) -> TrainingExample:
        """Copy the session into the output, once its trace is checked complete; its row."""
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
        return row

    def _keep_workspace(self, spec: PromptSpec, produced: AgentRun) -> None:
        """Unpack the workspace into ``sandbox/<key>/``, listing what was left out in ``<key>.omitted``."""
        snapshot = self.config.output.sandbox_dir / spec.key
        omitted = snapshot.with_name(f"{spec.key}.omitted")
        shutil.rmtree(snapshot, ignore_errors=True)
        try:
            omitted.unlink(missing_ok=True)
            _unpack(produced.workspace, snapshot)
            if produced.omitted:
                write_text_atomic(omitted, "".join(f"{name}\n" for name in produced.omitted))
        except OSError as error:
            raise cannot_write(snapshot, error) from None
        if produced.unreadable:  # the session is kept: only (part of) the workspace snapshot is missing
            raise OutputError(f"cannot write {snapshot}: {produced.unreadable}; {RESUME_HINT}")


def _copy_atomic(source: Path, target: Path) -> None:
    """Copy ``source`` to ``target`` whole or not at all: a partial copy never takes the target's name."""
    partial = target.with_name(f".{target.name}.partial")
    try:
        shutil.copyfile(source, partial)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def _pack(workspace: Path, limit: int = SNAPSHOT_LIMIT) -> tuple[bytes, tuple[str, ...], str]:
    """``workspace`` as a gzipped tar (symlinks as links) holding its files in name order up to ``limit``
    bytes; the files left out, and the error that stopped packing early (``""`` if none)."""
    omitted: list[str] = []
    total = 0

    def bounded(member: tarfile.TarInfo) -> tarfile.TarInfo | None:
        nonlocal total
        if member.isfile():
            total += member.size
            if total > limit:
                total -= member.size
                omitted.append(member.name.removeprefix("./"))
                return None
        return member

    buffer = BytesIO()
    unreadable = ""
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=1) as tar:
        try:
            tar.add(workspace, arcname=".", filter=bounded)
        except OSError as error:
            unreadable = str(error)
    return buffer.getvalue(), tuple(omitted), unreadable


def _unpack(packed: bytes, folder: Path) -> None:
    """Unpack a tar from :func:`_pack` into ``folder``, the files owned by this process's user."""

    def owned_here(member: tarfile.TarInfo, path: str) -> tarfile.TarInfo:
        return tarfile.tar_filter(member, path).replace(uid=os.getuid(), gid=os.getgid(), uname="", gname="")

    folder.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=BytesIO(packed), mode="r:gz") as tar:
        tar.extractall(folder, filter=owned_here)


def _complete_row(session: Path) -> TrainingExample | None:
    """The session converted to a row, if it converts and ends on an assistant turn."""
    try:
        rows = list(iter_examples(session, LoadReport(), LoadOptions(drop_incomplete_traces=False)))
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
        raise GenerationError(f"cannot clone {repository}: {last_line(stderr)}")


def _host_env() -> dict[str, str]:
    """What the sandbox (or docker client) itself needs from our environment; nothing else leaks in."""
    keep = (
        *("PATH", "LANG", "LC_ALL", "SSL_CERT_FILE", "SSL_CERT_DIR", "HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY"),
        *("DOCKER_HOST", "DOCKER_CONFIG", "DOCKER_CONTEXT"),
    )
    return {name: os.environ[name] for name in keep if name in os.environ}


def _tail(data: bytes, lines: int = 200) -> str:
    return "\n".join(data.decode(errors="replace").splitlines()[-lines:])
