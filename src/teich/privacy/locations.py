"""Where coding agents keep their sessions on Linux, macOS and Windows (and, from WSL, on the Windows side),
honouring each agent's own environment overrides."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Literal

AGENTS = ("claude", "codex", "pi", "cursor", "hermes")
#: The Windows user folders as WSL mounts them.
WINDOWS_USERS = Path("/mnt/c/Users")
_NOT_USERS = frozenset({"All Users", "Default", "Default User", "Public", "desktop.ini"})
#: Where each agent keeps its own folder inside a home folder (Linux and macOS, then Windows), and the
#: environment variable that moves it.
_AGENT_DIRS: Mapping[str, tuple[tuple[str, ...], str | None]] = MappingProxyType(
    {
        "claude": ((".claude", ".config/claude"), "CLAUDE_CONFIG_DIR"),
        "codex": ((".codex",), "CODEX_HOME"),
        "pi": ((".pi/agent",), "PI_CODING_AGENT_DIR"),
        "cursor": ((".cursor",), None),
        "hermes": ((".hermes", "AppData/Local/hermes"), "HERMES_HOME"),
    }
)
#: The session folders inside an agent's folder.
_SESSION_DIRS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "claude": ("projects",),
        "codex": ("sessions", "archived_sessions"),
        "pi": ("sessions",),
        "cursor": ("projects",),
    }
)
#: Cursor's editor data (``User`` folder, holding ``state.vscdb`` databases) inside a home folder.
_CURSOR_USER_DIRS = (".config/Cursor/User", "Library/Application Support/Cursor/User", "AppData/Roaming/Cursor/User")

StoreKind = Literal["files", "cursor_db", "hermes_db"]


@dataclass(frozen=True)
class Store:
    """One place sessions are kept: a folder of session files, a Cursor ``User`` folder, or a Hermes database."""

    #: The agent, or ``None`` for a folder of session files of any agent (found by their format).
    agent: str | None
    kind: StoreKind
    path: Path
    #: What output paths are relative to: the agent's own folder (``~/.claude``), or the folder given.
    root: Path
    #: The home folder it belongs to, written as ``~`` in the manifest.
    home: Path


def machine_stores(agents: Iterable[str]) -> list[Store]:
    """The stores of ``agents`` on this machine: the user's home (Linux, macOS or Windows layout) with the
    agents' environment overrides, and from WSL each Windows user's home."""
    agents = tuple(agents)
    found = list(_home_stores(agents, Path.home(), os.environ))
    for windows_home in _windows_homes():
        found += _home_stores(agents, windows_home, {})
    return _existing(found)


def folder_stores(agents: Iterable[str], folder: Path) -> list[Store]:
    """The stores of ``agents`` in a copied home folder; a folder holding none is searched as a whole (a
    folder of the user's own, so ``~`` stays the user's home)."""
    found = _existing(_home_stores(tuple(agents), folder, {}))
    return found or [Store(None, "files", folder, folder, Path.home())]


def _home_stores(agents: Iterable[str], home: Path, env: Mapping[str, str]) -> Iterator[Store]:
    """Every place the agents may keep sessions in ``home``, whether it exists or not; an agent's
    environment override replaces its default folders."""
    for agent in agents:
        folders, variable = _AGENT_DIRS[agent]
        override = env.get(variable) if variable else None
        for folder in [Path(override).expanduser()] if override else [home / f for f in folders]:
            yield from _agent_dir_stores(agent, folder, home)
        if agent == "cursor":
            yield from (Store(agent, "cursor_db", home / user, home / user, home) for user in _CURSOR_USER_DIRS)


def _agent_dir_stores(agent: str, folder: Path, home: Path) -> Iterator[Store]:
    if agent == "hermes":
        databases = [folder / "state.db", *sorted(folder.glob("profiles/*/state.db"))]
        yield from (Store(agent, "hermes_db", db, folder, home) for db in databases)
    else:
        yield from (Store(agent, "files", folder / sub, folder, home) for sub in _SESSION_DIRS[agent])


def _windows_homes() -> list[Path]:
    if not WINDOWS_USERS.is_dir():
        return []
    try:
        return sorted(p for p in WINDOWS_USERS.iterdir() if p.name not in _NOT_USERS and p.is_dir())
    except OSError:
        return []


def _existing(stores: Iterable[Store]) -> list[Store]:
    """The stores that exist, each once (an override may name a default folder)."""
    seen: set[tuple[str, Path]] = set()
    kept = []
    for store in stores:
        try:
            key = (store.kind, store.path.resolve())
            exists = store.path.exists()
        except OSError:
            continue
        if exists and key not in seen:
            seen.add(key)
            kept.append(store)
    return kept
