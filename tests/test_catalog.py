"""Tool catalogs: version selection, schema shape, and coverage of the shared sample sessions."""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest

from teich.generate.agents.provider import agent_clis
from teich.traces.catalog import offered_tools, version_key

CATALOGS = files("teich.traces") / "catalogs"
AGENTS = sorted(p.name.removesuffix(".json") for p in CATALOGS.iterdir() if p.name.endswith(".json"))
SHARED = Path(__file__).resolve().parents[2] / "shared" / "traces"


def _raw(agent: str) -> dict[str, Any]:
    return json.loads((CATALOGS / f"{agent}.json").read_text())


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("2.1.77", "2.1.77"),  # exact
        ("2.1.10", "2.1.9"),  # between: numeric, not string, order
        ("2.1.100", "2.1.77"),
        ("2.0.14 (Claude Code)", "2.0.14"),  # suffix tolerated
        ("0.2.9", "1.0.51"),  # older than all: the oldest
        ("9.9.9", "2.1.332"),  # newer than all: the newest
        (None, "2.1.332"),
        ("unknown", "2.1.332"),
    ],
)
def test_claude_code_version_selection(version: str | None, expected: str) -> None:
    catalog = offered_tools("claude_code", version)
    assert catalog is not None
    assert (catalog.agent, catalog.version) == ("claude_code", expected)


def test_prerelease_suffix_and_missing_agent() -> None:
    assert offered_tools("codex", "0.46.0-alpha.1").version == "0.45.0"  # type: ignore[union-attr]
    assert offered_tools("codex", "0.130.0").version == "0.130.0"  # type: ignore[union-attr]
    assert offered_tools("no_such_agent", "1.0") is None


def test_version_key() -> None:
    assert version_key("2.1.10") > version_key("2.1.9")  # type: ignore[operator]
    assert version_key("v0.46.0-alpha.1") == (0, 46, 0)
    assert version_key(None) is None and version_key("n/a") is None


def test_returned_tools_are_a_copy() -> None:
    first = offered_tools("pi", "0.73.1")
    assert first is not None
    first.tools[0]["function"]["name"] = "changed"
    assert offered_tools("pi", "0.73.1").tools[0]["function"]["name"] == "read"  # type: ignore[union-attr]


@pytest.mark.parametrize("agent", AGENTS)
def test_entries_are_sorted_valid_function_schemas(agent: str) -> None:
    data = _raw(agent)
    assert data["agent"] == agent
    versions = [version_key(entry["version"]) for entry in data["entries"]]
    assert all(v is not None for v in versions)
    assert versions == sorted(versions) and len(set(versions)) == len(versions)  # type: ignore[type-var]
    for entry in data["entries"]:
        assert entry["source"] and entry["tools"], entry["version"]
        names = []
        for tool in entry["tools"]:
            assert tool["type"] == "function"
            function = tool["function"]
            assert isinstance(function["name"], str) and function["name"]
            assert isinstance(function["description"], str)
            assert isinstance(function["parameters"], dict) and function["parameters"].get("type") == "object"
            names.append(function["name"])
        assert len(names) == len(set(names)), f"duplicate tool names in {agent} {entry['version']}"
        assert set(entry.get("deferred", [])) <= set(names)


def test_generation_offers_the_pinned_entries() -> None:
    """``teich generate`` writes exactly the catalog entry of each pinned CLI version."""
    clis = {cli.name: cli for cli in agent_clis()}
    for name, cli in clis.items():
        entry = next(e for e in _raw(name.replace("-", "_"))["entries"] if e["version"] == cli.version)
        assert cli.offered_tools() == entry["tools"]
    assert clis["codex"].version == "0.169.0" and clis["pi"].version == "0.73.1"
    assert clis["claude-code"].version == "2.1.332"


def _called_and_version(agent: str, path: Path) -> tuple[set[str], str | None]:
    """Tool names a raw session called and the agent version it records (an independent scan)."""
    called: set[str] = set()
    version = None

    def visit(value: Any) -> None:
        if isinstance(value, dict):
            kind = value.get("type")
            if agent == "claude_code" and kind == "tool_use":
                called.add(value["name"])
            if agent == "codex" and kind in ("function_call", "custom_tool_call"):
                called.add(value["name"])
            if agent in ("pi", "openclaw") and kind == "toolCall":
                called.add(value["name"])
            for item in value.values():
                visit(item)
        elif isinstance(value, list):
            for item in value:
                visit(item)

    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        if agent == "claude_code" and isinstance(record.get("version"), str):
            version = version or record["version"]
        if agent == "codex" and record.get("type") == "session_meta":
            version = record["payload"].get("cli_version")
        visit(record)
    return called, version


@pytest.mark.parametrize("agent", ["claude_code", "codex", "pi", "openclaw"])
def test_shared_sessions_call_only_catalogued_tools(agent: str) -> None:
    path = SHARED / f"{agent}.jsonl"
    if not path.exists():
        pytest.skip(f"no shared sample at {path}")
    catalog = offered_tools(agent, None)
    if catalog is None:
        pytest.skip(f"no {agent} catalog")
    called, version = _called_and_version(agent, path)
    catalog = offered_tools(agent, version)
    assert catalog is not None
    if version is not None:
        assert catalog.version == version, "the sample's own version has an entry"
    offered = {tool["function"]["name"] for tool in catalog.tools}
    assert called <= offered, f"{agent} {catalog.version} lacks {sorted(called - offered)}"
