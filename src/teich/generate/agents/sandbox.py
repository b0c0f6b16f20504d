"""Sandboxes for agent runs.

- ``docker``: the CLIs run in an image built from the ``Dockerfile`` shipped beside this module
  (built on first use, rebuilt when it or a pinned version changes); only the workspace and the
  agent's home are mounted; ``--network host`` keeps ``localhost`` endpoints reachable.
- ``bwrap`` (bubblewrap): the host filesystem read-only, a private ``/tmp``, the workspace and the
  agent's home as the only writable paths, the agent's own install bound read-only, a private PID
  namespace, and the process killed with its parent; the network is shared.
- ``none``: the agent runs as is; it must be chosen explicitly.

``auto`` picks docker when a Docker engine answers, else bwrap when installed, else refuses.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from teich.errors import TeichError

DOCKERFILE = files("teich.generate.agents") / "Dockerfile"


def choose_backend(requested: str) -> str:
    """The sandbox backend for ``sandbox.backend`` (``auto``, ``docker``, ``bwrap`` or ``none``)."""
    if requested in ("docker", "auto") and _docker_answers():
        return "docker"
    if requested == "docker":
        raise TeichError("sandbox.backend is docker, but no Docker engine answers (docker info failed)")
    if requested in ("bwrap", "auto") and shutil.which("bwrap"):
        return "bwrap"
    if requested == "none":
        return "none"
    raise TeichError(
        "no sandbox for agent runs: start Docker or install bubblewrap (apt-get install bubblewrap), "
        "or set sandbox.backend: none to run agents unsandboxed"
    )


def _docker_answers() -> bool:
    if not shutil.which("docker"):
        return False
    try:
        done = subprocess.run(["docker", "info"], capture_output=True, timeout=20, check=False)
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0


@dataclass(frozen=True)
class Sandbox:
    """How an agent command is wrapped: the backend, and for docker the image to run it in."""

    backend: str
    image: str | None = None

    def wrap(self, argv: list[str], *, workspace: Path, home: Path, install: Path | None, env: list[str]) -> list[str]:
        """``argv`` run from ``workspace`` inside the sandbox; ``env`` names variables passed through."""
        if self.backend == "docker":
            return _docker(self.image or "", argv, workspace=workspace, home=home, env=env)
        if self.backend == "bwrap":
            return _bwrap(argv, workspace=workspace, home=home, install=install)
        return argv


def _docker(image: str, argv: list[str], *, workspace: Path, home: Path, env: list[str]) -> list[str]:
    mounts = [flag for path in (workspace, home) for flag in ("--volume", f"{path}:{path}")]
    passed = [flag for name in env for flag in ("--env", name)]  # values come from our environment, not argv
    user = ["--user", f"{os.getuid()}:{os.getgid()}"] if hasattr(os, "getuid") else []
    return [
        "docker",
        "run",
        "--rm",
        "--network",
        "host",
        *user,
        *mounts,
        "--workdir",
        str(workspace),
        *passed,
        image,
        *argv,
    ]


def _bwrap(argv: list[str], *, workspace: Path, home: Path, install: Path | None) -> list[str]:
    bound = ["--ro-bind", str(install), str(install)] if install else []
    return [
        "bwrap",
        "--ro-bind", "/", "/",
        "--dev", "/dev",
        "--proc", "/proc",
        "--tmpfs", "/tmp",
        *bound,
        "--bind", str(workspace), str(workspace),
        "--bind", str(home), str(home),
        "--unshare-pid", "--unshare-ipc", "--unshare-uts",
        "--die-with-parent", "--new-session",
        "--chdir", str(workspace),
        "--setenv", "HOME", str(home),
        "--setenv", "TMPDIR", "/tmp",
        "--",
        *argv,
    ]  # fmt: skip


def ensure_image(build_args: dict[str, str]) -> str:
    """The agents image tag for these pins, built from the shipped Dockerfile if missing."""
    recipe = DOCKERFILE.read_text() + repr(sorted(build_args.items()))
    tag = f"teich-agents:{hashlib.sha256(recipe.encode()).hexdigest()[:12]}"
    if subprocess.run(["docker", "image", "inspect", tag], capture_output=True, check=False).returncode == 0:
        return tag
    arguments = [flag for key, value in build_args.items() for flag in ("--build-arg", f"{key}={value}")]
    folder = Path(str(DOCKERFILE)).parent
    command = ["docker", "build", "--tag", tag, *arguments, "--file", str(folder / "Dockerfile"), str(folder)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800, check=False)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise TeichError(f"docker could not build the agents image: {last}")
    return tag
