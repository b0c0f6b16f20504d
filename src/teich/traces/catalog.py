"""The tools each coding agent offers the model, per agent version.

Session files mostly record only the tools the agent called; a training row needs every tool it
offered. ``catalogs/<agent>.json`` holds the tool schemas recorded from each agent's own requests
(see ``catalogs/README.md``), in the OpenAI function form.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field, replace
from functools import lru_cache
from importlib.resources import files
from typing import Any

_VERSION = re.compile(r"\d+(?:\.\d+)*")


@dataclass(frozen=True)
class Catalog:
    """One catalog entry: the tools ``agent`` at ``version`` offers.

    ``deferred`` names the tools the agent lists by name only and loads on demand (Claude Code's
    ToolSearch); their schemas are in ``tools`` all the same.
    """

    agent: str
    version: str
    source: str
    tools: list[dict[str, Any]]
    deferred: tuple[str, ...] = field(default=())


def offered_tools(agent: str, version: str | None) -> Catalog | None:
    """The catalog entry for a session of ``agent`` at ``version``.

    The entry with the greatest version not above ``version``; the oldest entry when ``version`` is
    older than all; the newest when ``version`` is None or unparseable; None without a catalog.
    """
    entries = _entries(agent)
    if not entries:
        return None
    key = version_key(version)
    chosen = entries[-1][1]
    if key is not None:
        older = [entry for entry_key, entry in entries if entry_key <= key]
        chosen = older[-1] if older else entries[0][1]
    return replace(chosen, tools=copy.deepcopy(chosen.tools))


def version_key(version: str | None) -> tuple[int, ...] | None:
    """The numeric release of a version string (``"2.0.14 (Claude Code)"`` -> ``(2, 0, 14)``)."""
    match = _VERSION.search(version or "")
    return tuple(int(part) for part in match.group().split(".")) if match else None


@lru_cache(maxsize=8)  # bounded, by agent name: each session would read its agent's catalog again (6 ms)
def _entries(agent: str) -> tuple[tuple[tuple[int, ...], Catalog], ...]:
    """An agent's catalog entries with their version keys, oldest first; empty without a catalog."""
    resource = files("teich.traces") / "catalogs" / f"{agent}.json"
    if not resource.is_file():
        return ()
    entries = []
    for e in json.loads(resource.read_text(encoding="utf-8"))["entries"]:
        key = version_key(e["version"])
        if key is not None:
            entries.append((key, Catalog(agent, e["version"], e["source"], e["tools"], tuple(e.get("deferred", ())))))
    return tuple(sorted(entries, key=lambda pair: pair[0]))
