"""Agent CLIs from npm or PyPI, pinned, installed once into a Teich-managed prefix (never globally).

An npm package goes into an npm prefix; a PyPI package into a virtual environment made with the
system ``python3`` (``/usr/bin/python3`` where present), which the bwrap sandbox sees read-only."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import MappingProxyType
from typing import Literal

from teich.errors import TeichError, last_line

Registry = Literal["npm", "pypi"]
NEEDS = MappingProxyType(
    {
        "npm": "npm is needed to install the agent CLIs (Node.js 20 or newer)",
        "pypi": "python3 (3.11 or newer) is needed to install agent CLIs from PyPI",
    }
)


def agents_root() -> Path:
    """Where agent CLIs are installed: ``$TEICH_AGENTS_DIR``, else ``~/.cache/teich/agents``."""
    return Path(os.environ.get("TEICH_AGENTS_DIR") or Path.home() / ".cache" / "teich" / "agents")


def ensure_installed(package: str, version: str, entry: str, registry: Registry = "npm") -> Path:
    """The install prefix of ``package`` at ``version`` from ``registry``, installing it on first use.

    ``entry`` is the executable's path inside the prefix; its presence marks a finished install.
    """
    prefix = agents_root() / f"{package.replace('/', '__').lstrip('@')}-{version}"
    if (prefix / entry).exists():
        return prefix
    prefix.mkdir(parents=True, exist_ok=True)
    for command in _commands(registry, prefix, package, version):
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
        except FileNotFoundError:
            raise TeichError(NEEDS[registry]) from None
        except subprocess.TimeoutExpired:
            raise TeichError(f"installing {package}@{version} with {registry} took over 15 minutes") from None
        if done.returncode != 0:
            raise TeichError(
                f"{registry} could not install {package}@{version}: {last_line(done.stderr) or 'no output'}"
            )
    if not (prefix / entry).exists():
        raise TeichError(f"{registry} installed {package}@{version} without {entry}")
    return prefix


def _commands(registry: Registry, prefix: Path, package: str, version: str) -> list[list[str]]:
    """The commands that install ``package`` into ``prefix``."""
    if registry == "npm":
        return [["npm", "install", "--no-audit", "--no-fund", "--prefix", str(prefix), f"{package}@{version}"]]
    pip = [str(prefix / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    return [[system_python(), "-m", "venv", "--clear", str(prefix)], [*pip, f"{package}=={version}"]]


@contextmanager
def installing() -> Iterator[None]:
    """Hold the install lock of :func:`agents_root` for the block: one install at a time on a machine (a Ray
    node runs several prompts at once, each in a process of its own)."""
    root = agents_root()
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".install.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        yield


def system_python() -> str:
    """The system ``python3``: ``/usr/bin/python3`` (inside every sandbox's system folders), else ``PATH``'s."""
    system = Path("/usr/bin/python3")
    return str(system) if system.exists() else shutil.which("python3") or "python3"
