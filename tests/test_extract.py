"""``teich extract``: fake home folders holding real session files in each agent's layout (Cursor and Hermes
SQLite databases built with their real schemas and filled from real sessions), and what is found, kept,
skipped, deduplicated and redacted. Expected values are read from the planted files themselves."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

import teich.privacy.locations as locations
from teich import ExtractReport, TeichError, extract, load_traces
from teich.cli import app
from teich.privacy import extract as extract_module

RECORDED = Path(__file__).parent / "data" / "recorded"
REAL = Path(__file__).parent / "data" / "real"
CLAUDE_SLUG = "-home-alice-work-app"
PI_SLUG = "--home-alice-work-app--"
CURSOR_SLUG = "home-alice-work-app"

# Hermes Agent 0.19.0's state.db tables that hold sessions (hermes_state.py, SCHEMA_SQL).
HERMES_SCHEMA = """
CREATE TABLE sessions (
    id TEXT PRIMARY KEY, source TEXT NOT NULL, user_id TEXT, session_key TEXT, chat_id TEXT, chat_type TEXT,
    thread_id TEXT, display_name TEXT, origin_json TEXT, expiry_finalized INTEGER DEFAULT 0, model TEXT,
    model_config TEXT, system_prompt TEXT, parent_session_id TEXT, started_at REAL NOT NULL, ended_at REAL,
    end_reason TEXT, message_count INTEGER DEFAULT 0, tool_call_count INTEGER DEFAULT 0,
    input_tokens INTEGER DEFAULT 0, output_tokens INTEGER DEFAULT 0, cache_read_tokens INTEGER DEFAULT 0,
    cache_write_tokens INTEGER DEFAULT 0, reasoning_tokens INTEGER DEFAULT 0, cwd TEXT, git_branch TEXT,
    git_repo_root TEXT, billing_provider TEXT, billing_base_url TEXT, billing_mode TEXT, estimated_cost_usd REAL,
    actual_cost_usd REAL, cost_status TEXT, cost_source TEXT, pricing_version TEXT, title TEXT,
    api_call_count INTEGER DEFAULT 0, handoff_state TEXT, handoff_platform TEXT, handoff_error TEXT,
    compression_failure_cooldown_until REAL, compression_failure_error TEXT,
    compression_fallback_streak INTEGER NOT NULL DEFAULT 0, profile_name TEXT,
    rewind_count INTEGER NOT NULL DEFAULT 0, archived INTEGER NOT NULL DEFAULT 0,
    FOREIGN KEY (parent_session_id) REFERENCES sessions(id)
);
CREATE TABLE messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT, session_id TEXT NOT NULL REFERENCES sessions(id), role TEXT NOT NULL,
    content TEXT, tool_call_id TEXT, tool_calls TEXT, tool_name TEXT, effect_disposition TEXT,
    timestamp REAL NOT NULL, token_count INTEGER, finish_reason TEXT, reasoning TEXT, reasoning_content TEXT,
    reasoning_details TEXT, codex_reasoning_items TEXT, codex_message_items TEXT, platform_message_id TEXT,
    observed INTEGER DEFAULT 0, active INTEGER NOT NULL DEFAULT 1, compacted INTEGER NOT NULL DEFAULT 0,
    api_content TEXT
);
"""
# Cursor's state.vscdb tables (global and workspace storage alike).
CURSOR_SCHEMA = """
CREATE TABLE ItemTable (key TEXT UNIQUE ON CONFLICT REPLACE, value BLOB);
CREATE TABLE cursorDiskKV (key TEXT UNIQUE ON CONFLICT REPLACE, value BLOB);
"""


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _claude_id(path: Path) -> str:
    return next(r["sessionId"] for r in _records(path) if "sessionId" in r)


def _codex_meta(path: Path) -> dict:
    return next(r["payload"] for r in _records(path) if r.get("type") == "session_meta")


def _manifest(out: Path) -> dict[str, dict]:
    return {entry["session_id"]: entry for entry in _records(out / "manifest.jsonl")}


def _plant_claude(home: Path, source: Path, slug: str = CLAUDE_SLUG) -> Path:
    """A Claude Code session at ``~/.claude/projects/<slug>/<session id>.jsonl``, with its sub-agent folder."""
    target = home / ".claude" / "projects" / slug / f"{_claude_id(source)}.jsonl"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    sub_agents = source.with_suffix("") / "subagents"
    if sub_agents.is_dir():
        shutil.copytree(sub_agents, target.with_suffix("") / "subagents")
    return target


def _plant_codex(home: Path, source: Path, folder: str = "sessions") -> Path:
    meta = _codex_meta(source)
    day = meta["timestamp"][:10].replace("-", "/")
    target = home / ".codex" / folder / day / f"rollout-{meta['timestamp'][:19].replace(':', '-')}-{meta['id']}.jsonl"
    if folder == "archived_sessions":
        target = home / ".codex" / folder / target.name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    return target


def _plant_pi(home: Path, source: Path) -> Path:
    header = _records(source)[0]
    target = home / ".pi" / "agent" / "sessions" / PI_SLUG / f"{header['timestamp'][:10]}_{header['id']}.jsonl"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    return target


def _hermes_db(path: Path, exports: list[Path]) -> None:
    """A Hermes ``state.db`` holding the sessions of ``hermes sessions export`` files, stored as Hermes
    stores them (tool calls as JSON text)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as db:
        db.executescript(HERMES_SCHEMA)
        for export in exports:
            for row in _records(export):
                session = {k: v for k, v in row.items() if k != "messages"}
                db.execute(
                    f"INSERT INTO sessions ({', '.join(session)}) VALUES ({', '.join('?' * len(session))})",
                    list(session.values()),
                )
                for message in row["messages"]:
                    stored = {k: v for k, v in message.items() if k != "id"}  # numbered by this database
                    stored["tool_calls"] = json.dumps(message["tool_calls"]) if message["tool_calls"] else None
                    db.execute(
                        f"INSERT INTO messages ({', '.join(stored)}) VALUES ({', '.join('?' * len(stored))})",
                        list(stored.values()),
                    )
    db.close()


def _cursor_bubbles(transcript: Path) -> list[dict]:
    """The shared Cursor session's messages as Cursor's database stores them: one bubble per message, a
    tool call with its result on the assistant bubble that made it."""
    messages = [r for r in _records(transcript) if "role" in r]
    (prompt,) = messages[0]["message"]["content"]
    thinking, call = messages[1]["message"]["content"]
    (result,) = messages[2]["message"]["content"]
    (answer,) = messages[3]["message"]["content"]
    tool = {
        "name": call["name"],
        "toolCallId": call["id"],
        "rawArgs": json.dumps(call["input"]),
        "result": result["content"],
        "status": "completed",
    }
    return [
        {"bubbleId": "b1", "type": 1, "text": prompt["text"]},
        {"bubbleId": "b2", "type": 2, "text": "", "thinking": {"text": thinking["text"]}, "toolFormerData": tool},
        {"bubbleId": "b3", "type": 2, "text": answer["text"]},
    ]


def _cursor_dbs(user_dir: Path, transcript: Path, composer: str, folder_uri: str) -> None:
    """Cursor's global database holding one composer conversation (and one never used), and the workspace
    database that lists the composer, with the workspace's ``workspace.json``."""
    bubbles = _cursor_bubbles(transcript)
    global_db = user_dir / "globalStorage" / "state.vscdb"
    global_db.parent.mkdir(parents=True)
    with sqlite3.connect(global_db) as db:
        db.executescript(CURSOR_SCHEMA)
        data = {
            "_v": 10,
            "composerId": composer,
            "name": "List files",
            "createdAt": 1764633600000,
            "lastUpdatedAt": 1764637200000,
            "modelConfig": {"modelName": "claude-opus-4.5"},
            "fullConversationHeadersOnly": [{"bubbleId": b["bubbleId"], "type": b["type"]} for b in bubbles],
        }
        db.execute("INSERT INTO cursorDiskKV VALUES (?, ?)", (f"composerData:{composer}", json.dumps(data)))
        for bubble in bubbles:
            db.execute(
                "INSERT INTO cursorDiskKV VALUES (?, ?)",
                (f"bubbleId:{composer}:{bubble['bubbleId']}", json.dumps(bubble).encode()),
            )
        empty = {"_v": 10, "composerId": "never-used", "fullConversationHeadersOnly": [], "text": ""}
        db.execute("INSERT INTO cursorDiskKV VALUES (?, ?)", ("composerData:never-used", json.dumps(empty)))
    db.close()
    workspace = user_dir / "workspaceStorage" / "5f1c0d"
    workspace.mkdir(parents=True)
    (workspace / "workspace.json").write_text(json.dumps({"folder": folder_uri}))
    with sqlite3.connect(workspace / "state.vscdb") as db:
        db.executescript(CURSOR_SCHEMA)
        listing = {"allComposers": [{"composerId": composer}], "selectedComposerIds": [composer]}
        db.execute("INSERT INTO ItemTable VALUES (?, ?)", ("composer.composerData", json.dumps(listing)))
    db.close()


def _plant_cursor_transcript(home: Path, transcript: Path, session: str) -> Path:
    """A Cursor agent transcript (``~/.cursor/projects/<project>/agent-transcripts/<id>/<id>.jsonl``): the
    role/message records of the shared Cursor session, without the session record Teich's export adds."""
    target = home / ".cursor" / "projects" / CURSOR_SLUG / "agent-transcripts" / session / f"{session}.jsonl"
    target.parent.mkdir(parents=True)
    lines = [line for line in transcript.read_text().splitlines() if not line.startswith('{"type":"cursor_')]
    target.write_text("\n".join(lines) + "\n")
    return target


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A copied home holding recorded Claude Code, Codex, Pi and Hermes sessions in their agents' layouts."""
    home = tmp_path / "home"
    for name in ("parallel-calls", "subagent", "compaction"):
        _plant_claude(home, RECORDED / "claude_code" / f"{name}.jsonl")
    _plant_codex(home, RECORDED / "codex" / "two-models.jsonl")
    _plant_codex(home, RECORDED / "codex" / "killed-call.jsonl", "archived_sessions")
    _plant_pi(home, RECORDED / "pi" / "bash-execution.jsonl")
    _hermes_db(home / ".hermes" / "state.db", sorted((RECORDED / "hermes").glob("*.jsonl")))
    return home


def test_a_copied_home_is_gathered_in_each_agents_layout(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    report = extract(out, source=home, anonymize=False)

    native = sorted(p.relative_to(home) for p in home.rglob("*") if p.is_file() and p.suffix != ".db")
    for relative in native:  # copied unchanged, under the agent's name, as they lay in the agent's folder
        agent, inside = {".claude": "claude", ".codex": "codex", ".pi": "pi"}[relative.parts[0]], relative.parts[1:]
        inside = inside[1:] if agent == "pi" else inside  # Pi's own folder is ~/.pi/agent
        assert (out / agent / Path(*inside)).read_bytes() == (home / relative).read_bytes()
    hermes_ids = [_records(p)[0]["id"] for p in sorted((RECORDED / "hermes").glob("*.jsonl"))]
    assert {p.name for p in (out / "hermes" / "sessions").iterdir()} == {f"{i}.jsonl" for i in hermes_ids}

    manifest = _manifest(out)
    planted_sessions = 3 + 2 + 1 + len(hermes_ids)
    assert (report.found, report.kept, report.sub_agents) == (planted_sessions, planted_sessions, 1)
    assert not report.skipped and not report.problems and report.out == str(out)
    assert report.by_agent == {"claude": 3, "codex": 2, "pi": 1, "hermes": 2}
    subagent = RECORDED / "claude_code" / "subagent.jsonl"
    entry = manifest[_claude_id(subagent)]
    assert entry["agent"] == "claude" and entry["agent_version"] == next(
        r["version"] for r in _records(subagent) if "version" in r
    )
    assert entry["project"] == next(r["cwd"] for r in _records(subagent) if "cwd" in r)
    assert entry["source"] == f"~/.claude/projects/{CLAUDE_SLUG}/{_claude_id(subagent)}.jsonl"
    (sub_agent,) = (RECORDED / "claude_code" / "subagent" / "subagents").glob("*.jsonl")
    assert entry["sub_agents"] == [f"claude/projects/{CLAUDE_SLUG}/{_claude_id(subagent)}/subagents/{sub_agent.name}"]
    codex = _codex_meta(RECORDED / "codex" / "two-models.jsonl")
    assert manifest[codex["id"]]["agent_version"] == codex["cli_version"]
    assert manifest[codex["id"]]["first"][:19] == codex["timestamp"][:19]
    # Turns: the prompts the README of the recordings lists for each session.
    pi_id = _records(RECORDED / "pi" / "bash-execution.jsonl")[0]["id"]
    assert manifest[pi_id]["turns"] == 5  # three `!` commands (each sent as a user message) and two prompts
    assert manifest[_claude_id(RECORDED / "claude_code" / "parallel-calls.jsonl")]["turns"] == 2
    assert manifest[codex["id"]]["turns"] == 2


def test_hermes_and_cursor_databases_become_sessions_the_loaders_read(
    home: Path, tmp_path: Path, shared_traces: Path
) -> None:
    composer = "0b1d9a2e-6c3f-4a7e-9d41-2f5b8c7e1a90"
    _cursor_dbs(
        home / ".config" / "Cursor" / "User",
        shared_traces / "cursor.jsonl",
        composer,
        "file:///home/alice/work/site%20one",
    )
    _plant_cursor_transcript(home, shared_traces / "cursor.jsonl", "7e4f")
    out = tmp_path / "out"
    report = extract(out, ["hermes", "cursor"], source=home, anonymize=False)

    assert (report.found, report.kept) == (2 + 2, 2 + 2)  # the unused composer is no session
    for export in sorted((RECORDED / "hermes").glob("*.jsonl")):
        (expected,) = load_traces(export)
        (converted,) = load_traces(out / "hermes" / "sessions" / f"{_records(export)[0]['id']}.jsonl")
        assert converted["messages"] == expected["messages"] and converted["system"] == expected["system"]
        assert json.loads(converted["metadata"])["trace_type"] == "hermes"
    (shared,) = load_traces(shared_traces / "cursor.jsonl")
    for file in (
        out / "cursor" / "composers" / f"{composer}.jsonl",
        out / "cursor" / "projects" / CURSOR_SLUG / "agent-transcripts" / "7e4f" / "7e4f.jsonl",
    ):
        (row,) = load_traces(file)
        assert row["messages"] == shared["messages"]
        assert json.loads(row["metadata"])["trace_type"] == "cursor"
    manifest = _manifest(out)
    assert manifest[composer]["project"] == "/home/alice/work/site one"
    assert (manifest[composer]["first"], manifest[composer]["last"]) == ("2025-12-02T00:00:00Z", "2025-12-02T01:00:00Z")
    assert manifest["7e4f"]["project"] == CURSOR_SLUG
    assert manifest[composer]["source"] == "~/.config/Cursor/User/globalStorage/state.vscdb"


def test_the_same_session_found_twice_is_kept_once_the_fuller_copy(home: Path, tmp_path: Path) -> None:
    full = RECORDED / "codex" / "two-models.jsonl"
    lines = full.read_text().splitlines(keepends=True)
    archived = _plant_codex(home, full, "archived_sessions")
    archived.write_text("".join(lines[: len(lines) // 2]))  # an older, shorter copy of the same session
    claude = next((home / ".claude" / "projects" / CLAUDE_SLUG).glob("*.jsonl"))
    shutil.copyfile(claude, claude.with_name("copy of session.jsonl"))  # the same bytes under another name
    report = extract(tmp_path / "out", ["codex", "claude"], source=home, anonymize=False)

    assert report.skipped == {"duplicate": 2}
    assert (report.found, report.kept) == (3 + 2 + 2, 3 + 2)
    kept = tmp_path / "out" / "codex" / "sessions"
    (copy,) = [p for p in kept.rglob("*.jsonl") if _codex_meta(p)["id"] == _codex_meta(full)["id"]]
    assert copy.read_bytes() == full.read_bytes()
    assert not (tmp_path / "out" / "codex" / "archived_sessions" / archived.name).exists()


def test_sub_agent_transcripts_beside_their_session_come_along(tmp_path: Path) -> None:
    home = tmp_path / "home"
    session = _plant_claude(home, RECORDED / "claude_code" / "subagent.jsonl")
    folder = session.with_suffix("") / "subagents"
    (agent,) = folder.glob("*.jsonl")
    for sidecar in folder.iterdir():  # Claude Code 1.0's layout: agent-*.jsonl beside the session
        shutil.move(sidecar, session.parent / sidecar.name)
    shutil.rmtree(session.with_suffix(""))
    report = extract(tmp_path / "out", "claude", source=home, anonymize=False)

    assert (report.found, report.kept, report.sub_agents) == (1, 1, 1)
    (entry,) = _manifest(tmp_path / "out").values()
    assert entry["sub_agents"] == [f"claude/projects/{CLAUDE_SLUG}/{agent.name}"]
    dataset, loaded = load_traces(tmp_path / "out", return_report=True)
    assert sorted(bool(json.loads(row["metadata"]).get("sub_agent")) for row in dataset) == [False, True]
    assert not loaded.problems  # the manifest beside the sessions is not taken for one


def test_filters_by_project_dates_and_turns(home: Path, tmp_path: Path) -> None:
    codex = RECORDED / "codex" / "two-models.jsonl"
    cwd = _codex_meta(codex)["cwd"]
    dates = {
        "claude": next(
            r["timestamp"] for r in _records(RECORDED / "claude_code" / "subagent.jsonl") if "timestamp" in r
        ),
        "codex": _codex_meta(codex)["timestamp"],
    }
    assert dates["claude"][:10] == dates["codex"][:10] == "2026-12-02"  # every recorded session is of that day

    by_path = extract(tmp_path / "a", source=home, project=cwd, anonymize=False)
    assert (by_path.kept, by_path.skipped) == (1, {"filtered (project)": 7})
    by_glob = extract(
        tmp_path / "b", ["claude", "codex"], source=home, project="/tmp/claude-code-rec/*", anonymize=False
    )
    assert (by_glob.kept, by_glob.skipped) == (3, {"filtered (project)": 2})
    later = extract(tmp_path / "c", source=home, since="2026-12-03", anonymize=False)
    assert (later.kept, later.skipped) == (0, {"filtered (dates)": 8}) and later.out is None
    assert not (tmp_path / "c").exists()
    that_day = extract(tmp_path / "d", source=home, since="2026-12-02", until="2026-12-02", anonymize=False)
    assert that_day.kept == 8
    long = extract(tmp_path / "e", ["pi", "claude"], source=home, min_turns=3, anonymize=False)
    # Pi's five turns and the Claude compaction session's three prompts; the other Claude sessions have one or two.
    assert (long.kept, long.skipped) == (2, {"filtered (turns)": 2})


def test_the_agents_own_environment_overrides_and_windows_homes_are_honoured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    _plant_claude(home, RECORDED / "claude_code" / "parallel-calls.jsonl")  # ignored: CLAUDE_CONFIG_DIR moves it
    _plant_claude(elsewhere / "claude-home", RECORDED / "claude_code" / "compaction.jsonl")
    shutil.move(elsewhere / "claude-home" / ".claude", elsewhere / "claude")
    _plant_codex(elsewhere / "codex-home", RECORDED / "codex" / "raw-reasoning.jsonl")
    _plant_pi(elsewhere / "pi-home", RECORDED / "pi" / "image-no-vision.jsonl")
    _hermes_db(elsewhere / "hermes" / "state.db", [RECORDED / "hermes" / "terminal-resume.jsonl"])
    _hermes_db(
        elsewhere / "hermes" / "profiles" / "work" / "state.db", [RECORDED / "hermes" / "reasoning-tool-error.jsonl"]
    )
    windows_users = tmp_path / "mnt" / "c" / "Users"
    _plant_codex(windows_users / "Alice", RECORDED / "codex" / "two-models.jsonl")
    (windows_users / "Public").mkdir()
    monkeypatch.setattr(locations, "WINDOWS_USERS", windows_users)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(elsewhere / "claude"))
    monkeypatch.setenv("CODEX_HOME", str(elsewhere / "codex-home" / ".codex"))
    monkeypatch.setenv("PI_CODING_AGENT_DIR", str(elsewhere / "pi-home" / ".pi" / "agent"))
    monkeypatch.setenv("HERMES_HOME", str(elsewhere / "hermes"))
    out = tmp_path / "out"
    report = extract(out, anonymize=False)

    assert report.by_agent == {"claude": 1, "codex": 2, "pi": 1, "hermes": 2}
    manifest = _manifest(out)
    assert _claude_id(RECORDED / "claude_code" / "compaction.jsonl") in manifest
    assert _claude_id(RECORDED / "claude_code" / "parallel-calls.jsonl") not in manifest
    work = _records(RECORDED / "hermes" / "reasoning-tool-error.jsonl")[0]["id"]
    assert manifest[work]["file"] == f"hermes/profiles/work/sessions/{work}.jsonl"
    windows = manifest[_codex_meta(RECORDED / "codex" / "two-models.jsonl")["id"]]
    assert windows["source"].startswith("~/.codex/sessions/")


def test_bad_inputs_are_named_in_one_line_each_and_the_rest_goes_on(home: Path, tmp_path: Path) -> None:
    projects = home / ".claude" / "projects" / CLAUDE_SLUG
    (projects / "notes.jsonl").write_text('{"hello": "world"}\n')
    (projects / "gone.jsonl").symlink_to(tmp_path / "nowhere.jsonl")
    shutil.copyfile(REAL / "claude_code" / "v2.1.2-slash-commands-only-context-exit.json", projects / "no-answer.jsonl")
    broken = home / ".hermes" / "profiles" / "old" / "state.db"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"this is not a database, only its name is" * 100)
    cursor = home / "Library" / "Application Support" / "Cursor" / "User" / "globalStorage" / "state.vscdb"
    cursor.parent.mkdir(parents=True)
    cursor.write_bytes(b"\x00" * 4096)
    locked = sqlite3.connect(home / ".hermes" / "state.db", isolation_level=None)
    locked.execute("BEGIN EXCLUSIVE")  # a running agent holding its database
    locked.execute("DELETE FROM messages")
    try:
        report = extract(tmp_path / "out", source=home, anonymize=False)
    finally:
        locked.execute("ROLLBACK")
        locked.close()

    assert report.skipped == {"not a session": 1, "unreadable": 3, "no assistant turn": 1}
    assert report.kept == 8 and report.found == 8 + 5
    assert report.by_agent["hermes"] == 2  # the locked database's committed sessions
    lines = report.problems
    assert len(lines) == 4 and all("\n" not in line for line in lines)
    for named in (projects / "notes.jsonl", projects / "gone.jsonl", broken, cursor):
        assert sum(line.startswith(f"{named}: ") for line in lines) == 1
    assert report.to_dict()["notes"]["skipped"] == lines


def test_sessions_are_redacted_by_default(tmp_path: Path) -> None:
    home = tmp_path / "home"
    source = RECORDED / "claude_code" / "tool-error-thinking.jsonl"
    cwd = next(r["cwd"] for r in _records(source) if "cwd" in r)
    planted = (
        source.read_text()
        .replace(cwd, "/home/alice/work/app")
        .replace("cat missing.txt", "cat missing.txt # ask alice.liddell@fastmail.fm")
    )
    (tmp_path / "planted.jsonl").write_text(planted)
    _plant_claude(home, tmp_path / "planted.jsonl")
    out = tmp_path / "out"
    report = extract(out, source=home)

    (file,) = out.glob("claude/projects/*/*.jsonl")
    assert file.parent.name == "-home-user-work-app"  # the folder Claude Code named after /home/alice/...
    text = file.read_text()
    assert "alice.liddell@fastmail.fm" not in text and report.redactions["email"] == planted.count("alice.liddell@")
    assert all(json.loads(line) for line in text.splitlines())
    (entry,) = _manifest(out).values()
    assert "alice" not in entry["file"] and "alice" not in entry["source"]
    assert report.anonymized and "redactions" in report.summary()


def test_nothing_is_written_when_a_run_fails_and_an_earlier_extract_is_replaced(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    first = extract(out, "pi", source=home, anonymize=False)
    assert first.kept == 1

    def fail(*args: object, **kwargs: object) -> None:
        raise TeichError("redaction failed")

    monkeypatch.setattr(extract_module.redaction, "anonymize", fail)
    with pytest.raises(TeichError, match="redaction failed"):
        extract(out, "codex", source=home)
    assert sorted(p.name for p in out.iterdir()) == ["manifest.jsonl", "pi"]  # the earlier extract, untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "out"]  # no temporary folder left
    monkeypatch.undo()
    again = extract(out, "codex", source=home, anonymize=False)
    assert again.kept == 2 and sorted(p.name for p in out.iterdir()) == ["codex", "manifest.jsonl"]

    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("keep me")
    with pytest.raises(TeichError, match="not an earlier extract"):
        extract(tmp_path / "mine", source=home)
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["thesis.tex"]


def test_a_folder_of_session_files_is_read_by_format(tmp_path: Path) -> None:
    folder = tmp_path / "downloads"
    folder.mkdir()
    for source in (
        RECORDED / "claude_code" / "api-error.jsonl",
        RECORDED / "codex" / "raw-reasoning.jsonl",
        RECORDED / "pi" / "image-no-vision.jsonl",
        Path(__file__).parents[1] / "examples" / "traces" / "chat-rows.jsonl",
    ):
        shutil.copyfile(source, folder / source.name)
    seen = []
    out = folder / "extracted"  # inside the folder read: what the run writes is never read back
    for _ in range(2):
        seen.clear()
        report = extract(
            out,
            ["claude", "codex"],
            source=folder,
            anonymize=False,
            on_progress=lambda done, total, what: seen.append((done, total)),
        )
        assert report.by_agent == {"claude": 1, "codex": 1}
        assert report.skipped == {"not a session": 1}  # the chat rows; the Pi session is not asked for
        assert seen[0] == (0, 4) and seen[-1][1] == 4
    assert (out / "codex" / "raw-reasoning.jsonl").read_bytes() == (folder / "raw-reasoning.jsonl").read_bytes()


def test_the_command_prints_the_report(home: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["extract", "pi", "--from", str(home), "--out", str(tmp_path / "out"), "--no-anonymize"]
    )
    assert result.exit_code == 0, result.output
    assert "sessions kept" in result.output and "wrote 1 sessions" in result.output
    empty = CliRunner().invoke(app, ["extract", "cursor", "--from", str(home), "--out", str(tmp_path / "none")])
    assert empty.exit_code == 1 and "no sessions kept" in empty.output
    bad = CliRunner().invoke(app, ["extract", "--from", str(home), "--out", str(tmp_path / "x"), "--since", "soon"])
    assert bad.exit_code == 1 and "'soon' is not a date" in bad.output


def test_report_shape() -> None:
    report = ExtractReport(found=3, kept=2)
    report.skipped["duplicate"] += 1
    assert report.to_dict()["counts"]["sessions_kept"] == 2
    assert report.summary().startswith("kept 2 of 3 sessions, skipped 1 (duplicate)")
