"""``sandbox.backend: docker``: the agent CLIs run in an image built from the ``Dockerfile`` shipped in
:mod:`teich.generate.agents` (built on first use, rebuilt when it or a pinned version changes), as an
unprivileged user (the invoker, or ``AGENT_UID`` when root runs Teich), with a read-only root and a
private ``/tmp``, only the workspace and the agent's home mounted writable, all capabilities dropped,
``no-new-privileges``, and no network but the relay's (``--network host`` under ``sandbox.network: full``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from importlib.resources import files
from pathlib import Path

from teich.errors import SandboxError, last_line
from teich.generate.agents.provider import agent_clis
from teich.generate.agents.sandbox import AGENT_GID, AGENT_UID, Run, root_runs

DOCKERFILE = files("teich.generate.agents") / "Dockerfile"


class Docker:
    """A container per run of the agents image."""

    name = "docker"
    priority = 10
    contains = True
    missing = "start Docker"

    def available(self) -> bool:
        """Whether a Docker engine answers (``docker info``)."""
        if not shutil.which("docker"):
            return False
        try:
            done = subprocess.run(["docker", "info"], capture_output=True, timeout=20, check=False)
        except subprocess.TimeoutExpired:
            return False
        return done.returncode == 0

    def prepare(self) -> str:
        """The agents image, pinned to every registered agent CLI's version (``<NAME>_VERSION``)."""
        return ensure_image({f"{cli.name.upper().replace('-', '_')}_VERSION": cli.version for cli in agent_clis()})

    def user(self) -> tuple[int, int]:
        """The invoker, so the files the agent writes stay theirs; ``AGENT_UID`` when that is root."""
        return (AGENT_UID, AGENT_GID) if root_runs() else (os.getuid(), os.getgid())

    def command(self, argv: list[str], *, run: Run, install: Path | None, env: list[str]) -> list[str]:
        """``docker run`` of the image; run by root, the run folder is first handed to the agent's user."""
        if root_runs():
            _hand_over(run.root)
        uid, gid = self.user()
        mounts = [flag for path in (run.workspace, run.home) for flag in ("--volume", f"{path}:{path}")]
        own = ((run.own, run.own), (run.own / "passwd", "/etc/passwd"), (run.own / "group", "/etc/group"))
        for source, target in own:
            mounts += ["--volume", f"{source}:{target}:ro"]
        passed = [flag for name in env for flag in ("--env", name)]  # values come from our environment, not argv
        return [
            "docker", "run", "--rm",
            "--network", "none" if run.relay else "host",
            "--user", f"{uid}:{gid}",
            "--cap-drop", "ALL",
            "--security-opt", "no-new-privileges",
            "--read-only", "--tmpfs", "/tmp:exec,mode=1777",
            *mounts,
            "--workdir", str(run.workspace),
            *passed,
            run.sandbox.image or "",
            *run.inner(argv),
        ]  # fmt: skip


def _hand_over(root: Path) -> None:
    """Give the run folder to ``AGENT_UID`` (docker run by root: the container runs as that user)."""
    os.chown(root, AGENT_UID, AGENT_GID)
    for folder, dirs, names in os.walk(root):
        for name in dirs + names:
            os.chown(os.path.join(folder, name), AGENT_UID, AGENT_GID, follow_symlinks=False)


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
        raise SandboxError(f"docker could not build the agents image: {last_line(done.stderr) or 'no output'}")
    return tag


BACKEND = Docker()
