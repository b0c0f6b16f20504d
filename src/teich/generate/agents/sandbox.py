"""Sandboxes for agent runs: the backend protocol and registry, and the run folder every backend shares.

Whoever runs Teich (root included), the agent runs as an unprivileged user (``AGENT_UID``, 65532,
or for docker run by a normal user that user) with no capabilities and ``no_new_privs``. Each
backend (``sandbox.backend``) is one module in :mod:`teich.generate.agents.backends` whose
``BACKEND`` implements :class:`SandboxBackend`; the registry (:data:`BACKENDS`) finds them all:

- ``docker``: an image built from the ``Dockerfile`` shipped beside this module, a read-only root,
  only the run folder mounted (see :mod:`~teich.generate.agents.backends.docker`).
- ``bwrap`` (bubblewrap): a user namespace and a fresh root of its own holding only what the agent
  needs (see :mod:`~teich.generate.agents.backends.bwrap`).
- ``none``: the agent runs as is; it must be chosen explicitly (``sandbox.network`` does not apply).

``sandbox.network``: ``endpoint`` (the default) gives the sandbox no network but its own loopback,
where the relay (:mod:`teich.generate.agents.relay`) leads to the model endpoint and nowhere else;
``full`` shares the host's network (bwrap) or uses ``--network host`` (docker), for tasks that
install packages. ``auto`` picks the first backend that contains the agent and is available here, in
registry order (docker when a Docker engine answers, else bwrap when installed), else refuses.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

from teich.errors import SandboxError
from teich.generate.agents.relay import forwarded, relay
from teich.registry import Registry

AGENT_UID = AGENT_GID = 65532  # the agent's user: unprivileged, and owning nothing on a usual host


class SandboxBackend(Protocol):
    """One way to run agent commands, named by ``sandbox.backend``."""

    @property
    def name(self) -> str: ...

    @property
    def priority(self) -> int:
        """The order ``auto`` tries backends in: lower first."""
        ...

    @property
    def contains(self) -> bool:
        """Whether it contains the agent, network included: only such a backend is chosen by ``auto``, or
        gets the relay under ``sandbox.network: endpoint``."""
        ...

    @property
    def missing(self) -> str:
        """What to do where it is not available (``start Docker``)."""
        ...

    def available(self) -> bool:
        """Whether it can run agents on this machine."""
        ...

    def prepare(self) -> str | None:
        """Get ready for runs (once per provider): the image they run in, which holds the agent CLIs, or
        ``None`` where runs use the CLI installed on the host."""
        ...

    def user(self) -> tuple[int, int]:
        """The uid and gid the agent runs as (and the run's account files name)."""
        ...

    def command(self, argv: list[str], *, run: Run, install: Path | None, env: list[str]) -> list[str]:
        """``argv`` run from ``run``'s workspace inside the sandbox; ``install`` is the CLI's install on the
        host (``None`` where the image holds it), ``env`` names the variables passed through."""
        ...


def _order(backend: SandboxBackend) -> tuple[int, str]:
    return backend.priority, backend.name


#: Every sandbox backend in :mod:`teich.generate.agents.backends`, in the order ``auto`` tries them.
BACKENDS: Registry[SandboxBackend] = Registry("BACKEND", ("teich.generate.agents.backends",), order=_order)


def choose_backend(requested: str) -> SandboxBackend:
    """The backend ``sandbox.backend`` names; for ``auto``, the first available one that contains the agent."""
    if requested != "auto":
        backend = BACKENDS[requested]
        if not backend.available():
            raise SandboxError(f"sandbox.backend is {requested}, but it is not available here: {backend.missing}")
        return backend
    containing = [backend for backend in BACKENDS if backend.contains]
    chosen = next((backend for backend in containing if backend.available()), None)
    if chosen is None:
        remedies = " or ".join(backend.missing for backend in containing)
        unsandboxed = "or set sandbox.backend: none to run agents unsandboxed"
        raise SandboxError(f"no sandbox for agent runs: {remedies}, {unsandboxed}")
    return chosen


@dataclass(frozen=True)
class Sandbox:
    """How agent commands are sandboxed: the backend, the image runs happen in (where it has one), and
    the network allowed."""

    backend: SandboxBackend
    image: str | None = None
    network: str = "endpoint"

    @contextmanager
    def run(self, base_url: str) -> Iterator[Run]:
        """A fresh run folder, removed afterwards; under network ``endpoint``, for a backend that contains
        the agent, the relay to ``base_url`` serves it meanwhile."""
        with tempfile.TemporaryDirectory(prefix="teich-agent-") as root:
            run = Run(self, Path(root), base_url)
            for folder in (run.workspace, run.home, run.own):
                folder.mkdir()
            _write_accounts(run.own, *self.backend.user(), run.home)
            if not self.backend.contains or self.network == "full":
                yield run
                return
            socket = run.own / "relay.sock"
            with relay(base_url, socket) as inside:
                yield replace(run, base_url=inside, relay=socket)


@dataclass(frozen=True)
class Run:
    """One run's folder on the host: the agent's ``workspace`` and ``home``, the sandbox's own files
    (account files, the relay's socket) in ``own``; ``base_url`` is the endpoint as the agent reaches it."""

    sandbox: Sandbox
    root: Path
    base_url: str
    relay: Path | None = None

    @property
    def workspace(self) -> Path:
        return self.root / "workspace"

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def own(self) -> Path:
        return self.root / "sandbox"

    def command(self, argv: list[str], *, install: Path | None, env: list[str]) -> list[str]:
        """``argv`` run from the workspace inside the sandbox; ``env`` names variables passed through."""
        return self.sandbox.backend.command(argv, run=self, install=install, env=env)

    def inner(self, argv: list[str]) -> list[str]:
        """``argv``, started behind the relay's forwarder when there is one."""
        return forwarded(argv, self.relay) if self.relay else argv


def root_runs() -> bool:
    """Whether Teich runs as root."""
    return hasattr(os, "getuid") and os.getuid() == 0


def _write_accounts(own: Path, uid: int, gid: int, home: Path) -> None:
    """``passwd`` and ``group`` naming only the agent (and root and nobody, which own nothing it sees)."""
    nologin = "/usr/sbin/nologin"
    users = [f"root:x:0:0:root:/root:{nologin}", f"teich:x:{uid}:{gid}:Teich agent:{home}:/bin/bash"]
    users.append(f"nobody:x:65534:65534:nobody:/nonexistent:{nologin}")
    (own / "passwd").write_text("\n".join(users) + "\n")
    (own / "group").write_text(f"root:x:0:\nteich:x:{gid}:\nnogroup:x:65534:\n")
