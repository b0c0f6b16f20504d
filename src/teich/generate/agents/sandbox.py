"""Sandboxes for agent runs.

``bwrap`` (bubblewrap): the host filesystem read-only, a private ``/tmp``, the workspace and the
agent's home as the only writable paths, the agent's own install bound read-only, a private PID
namespace, and the process killed with its parent. The network is shared, so the agent reaches the
model endpoint (local servers on 127.0.0.1 included). ``none`` runs the agent as is and must be
chosen explicitly. A Docker backend is not available yet.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from teich.errors import TeichError


def choose_backend(requested: str) -> str:
    """The sandbox backend to use for ``sandbox.backend``: ``auto`` picks bwrap when installed."""
    if requested == "docker":
        raise TeichError("sandbox.backend 'docker' is not available yet; use 'bwrap' (apt-get install bubblewrap)")
    if requested in ("bwrap", "auto") and shutil.which("bwrap"):
        return "bwrap"
    if requested == "none":
        return "none"
    raise TeichError(
        "no sandbox for agent runs: install bubblewrap (apt-get install bubblewrap), "
        "or set sandbox.backend: none to run agents unsandboxed"
    )


def sandboxed(backend: str, argv: list[str], *, workspace: Path, home: Path, install: Path) -> list[str]:
    """``argv`` wrapped by the backend, run from ``workspace``."""
    if backend == "none":
        return argv
    return [
        "bwrap",
        "--ro-bind", "/", "/",
        "--dev", "/dev",
        "--proc", "/proc",
        "--tmpfs", "/tmp",
        "--ro-bind", str(install), str(install),
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
