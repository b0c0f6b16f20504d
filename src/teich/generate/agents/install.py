"""Agent CLIs from npm, pinned, installed once into a Teich-managed prefix (never globally)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from teich.errors import TeichError, last_line


def agents_root() -> Path:
    """Where agent CLIs are installed: ``$TEICH_AGENTS_DIR``, else ``~/.cache/teich/agents``."""
    return Path(os.environ.get("TEICH_AGENTS_DIR") or Path.home() / ".cache" / "teich" / "agents")


def ensure_installed(package: str, version: str, entry: str) -> Path:
    """The install prefix of ``package@version``, installing it with npm on first use.

    ``entry`` is the executable's path inside the prefix; its presence marks a finished install.
    """
    prefix = agents_root() / f"{package.replace('/', '__').lstrip('@')}-{version}"
    if (prefix / entry).exists():
        return prefix
    prefix.mkdir(parents=True, exist_ok=True)
    command = ["npm", "install", "--no-audit", "--no-fund", "--prefix", str(prefix), f"{package}@{version}"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    except FileNotFoundError:
        raise TeichError("npm is needed to install the agent CLIs (Node.js 20 or newer)") from None
    except subprocess.TimeoutExpired:
        raise TeichError(f"installing {package}@{version} with npm took over 15 minutes") from None
    if done.returncode != 0 or not (prefix / entry).exists():
        raise TeichError(f"npm could not install {package}@{version}: {last_line(done.stderr) or 'no output'}")
    return prefix
