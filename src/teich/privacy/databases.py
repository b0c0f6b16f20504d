"""Sessions kept in SQLite databases, as the native JSONL records Teich's loaders read: Hermes Agent's
``state.db`` (one exported session row per line, as ``hermes sessions export`` writes them) and Cursor's
``state.vscdb`` (composer conversations, as Cursor agent transcript records).

Each database is read from a copy (with its write-ahead log or rollback journal), so a running agent's
locks and writes never get in the way, only committed sessions are read, and the original is never touched.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from teich.errors import TeichError, first_line

Record = dict[str, Any]
#: How Hermes marks message content it stored as JSON (multimodal parts).
_HERMES_JSON = "\x00json:"
_USER_BUBBLE = 1


@dataclass(frozen=True)
class DatabaseSession:
    """One session read from a database: its id, its records in the agent's native JSONL form, and the
    project folder it ran in where the database says."""

    session_id: str
    records: list[Record]
    project: str | None


@contextmanager
def snapshot(database: Path, scratch: Path) -> Iterator[sqlite3.Connection]:
    """A connection to a copy of ``database`` made in ``scratch``; an unreadable or damaged database is a
    one-line :class:`TeichError` naming it."""
    scratch.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(dir=scratch))
    try:
        connection = _opened_copy(database, folder / database.name)
        try:
            yield connection
        finally:
            connection.close()
    except (OSError, sqlite3.Error) as error:
        raise TeichError(f"{database}: cannot read database ({first_line(error)})") from None
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _opened_copy(database: Path, copy: Path) -> sqlite3.Connection:
    """A connection to a copy of ``database`` and its log, which opening it replays or rolls back."""
    for suffix in ("", "-wal", "-journal"):
        original = database.with_name(database.name + suffix)
        if not suffix or original.is_file():
            shutil.copyfile(original, copy.with_name(copy.name + suffix))
    connection = sqlite3.connect(copy)
    connection.row_factory = sqlite3.Row
    return connection


def hermes_sessions(database: Path, scratch: Path) -> list[DatabaseSession]:
    """Each top-level session of a Hermes ``state.db`` with the sessions that continue it (compressions,
    sub-agents), one exported row each, in the order they started."""
    with snapshot(database, scratch) as connection:
        sessions = [dict(row) for row in connection.execute("SELECT * FROM sessions ORDER BY started_at, id")]
        active = " AND active = 1" if "active" in _columns(connection, "messages") else ""
        query = f"SELECT * FROM messages WHERE session_id = ?{active} ORDER BY id"
        for session in sessions:
            session["messages"] = [_hermes_message(dict(row)) for row in connection.execute(query, (session["id"],))]
    return [
        DatabaseSession(str(root["id"]), family, root.get("cwd"))
        for root, family in _families(sessions)
        if any(row["messages"] for row in family)
    ]


def _columns(connection: sqlite3.Connection, table: str) -> set[str]:
    return {row["name"] for row in connection.execute(f"PRAGMA table_info({table})")}


def _hermes_message(message: Record) -> Record:
    """A message as Hermes exports it: JSON content and tool calls decoded."""
    content = message.get("content")
    if isinstance(content, str) and content.startswith(_HERMES_JSON):
        message["content"] = _json(content[len(_HERMES_JSON) :], content)
    if isinstance(message.get("tool_calls"), str):
        message["tool_calls"] = _json(message["tool_calls"], [])
    return message


def _families(sessions: list[Record]) -> list[tuple[Record, list[Record]]]:
    """Sessions grouped under the top-level session they descend from (through ``parent_session_id``)."""
    by_id = {session["id"]: session for session in sessions}
    families: dict[Any, list[Record]] = {}
    for session in sessions:
        root, seen = session, {session["id"]}
        while root.get("parent_session_id") in by_id and root["parent_session_id"] not in seen:
            root = by_id[root["parent_session_id"]]
            seen.add(root["id"])
        families.setdefault(root["id"], []).append(session)
    return [(by_id[root], family) for root, family in families.items()]


def cursor_sessions(database: Path, scratch: Path, projects: Mapping[str, str]) -> list[DatabaseSession]:
    """The composer conversations in a Cursor ``state.vscdb`` (``composerData:<id>`` with its
    ``bubbleId:<id>:<bubble>`` messages, or older inline ``conversation`` lists), each as a Cursor transcript;
    ``projects`` maps composer ids to their workspace folders."""
    with snapshot(database, scratch) as connection:
        if not _has_table(connection, "cursorDiskKV"):
            return []
        composers = connection.execute("SELECT key, value FROM cursorDiskKV WHERE key LIKE 'composerData:%'")
        found = []
        for key, value in list(composers):
            data = _json(value, None)
            if not isinstance(data, dict):
                continue
            composer = str(data.get("composerId") or key.partition(":")[2])
            bubbles = _bubbles(connection, composer, data)
            records = [record for bubble in bubbles for record in _bubble_records(bubble)]
            if records:
                project = projects.get(composer)
                found.append(
                    DatabaseSession(composer, [_composer_meta(composer, data, bubbles, project), *records], project)
                )
    return found


def cursor_projects(user_dir: Path, scratch: Path) -> dict[str, str]:
    """Which workspace folder each composer belongs to, from the ``workspaceStorage`` databases of a Cursor
    ``User`` folder (one that cannot be read is left out here, and reported where its sessions are read)."""
    projects: dict[str, str] = {}
    for workspace in sorted(user_dir.glob("workspaceStorage/*/workspace.json")):
        folder = _workspace_folder(workspace)
        database = workspace.with_name("state.vscdb")
        if folder is None or not database.is_file():
            continue
        try:
            with snapshot(database, scratch) as connection:
                composers = _item(connection, "composer.composerData")
        except TeichError:
            continue
        listed = composers.get("allComposers") if isinstance(composers, dict) else None
        for composer in listed if isinstance(listed, list) else []:
            if isinstance(composer, dict) and composer.get("composerId"):
                projects[str(composer["composerId"])] = folder
    return projects


def _has_table(connection: sqlite3.Connection, name: str) -> bool:
    query = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
    return connection.execute(query, (name,)).fetchone() is not None


def _item(connection: sqlite3.Connection, key: str) -> Any:
    if not _has_table(connection, "ItemTable"):
        return None
    row = connection.execute("SELECT value FROM ItemTable WHERE key = ?", (key,)).fetchone()
    return _json(row["value"], None) if row else None


def _workspace_folder(workspace: Path) -> str | None:
    """The folder a workspace opened (``workspace.json``'s ``folder`` URI) as a path."""
    try:
        uri = json.loads(workspace.read_text(encoding="utf-8")).get("folder")
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(uri, str):
        return None
    path = unquote(urlparse(uri).path)
    return path[1:] if len(path) > 2 and path[0] == "/" and path[2] == ":" else path  # /c:/Users -> c:/Users


def _bubbles(connection: sqlite3.Connection, composer: str, data: Record) -> list[Record]:
    """A composer's messages in order: the stored bubbles its headers list, or its inline conversation."""
    headers = data.get("fullConversationHeadersOnly")
    if not isinstance(headers, list) or not headers:
        inline = data.get("conversation")
        return [b for b in inline if isinstance(b, dict)] if isinstance(inline, list) else []
    prefix = f"bubbleId:{composer}:"
    rows = connection.execute(
        "SELECT key, value FROM cursorDiskKV WHERE key > ? AND key < ?", (prefix, prefix + "\uffff")
    )
    stored = {key[len(prefix) :]: _json(value, None) for key, value in rows}
    ids = (h.get("bubbleId") for h in headers if isinstance(h, dict))
    return [bubble for bubble in (stored.get(str(i)) for i in ids) if isinstance(bubble, dict)]


def _bubble_records(bubble: Record) -> list[Record]:
    """One bubble as transcript records: a user message, or an assistant message (reasoning, text, a tool
    call) followed by the call's result."""
    if bubble.get("type") == _USER_BUBBLE:
        text = bubble.get("text") or _lexical_text(bubble.get("richText"))
        return [_message("user", [{"type": "text", "text": text}])] if text else []
    blocks: list[Record] = []
    thinking = bubble.get("thinking")
    if isinstance(thinking, dict) and thinking.get("text"):
        blocks.append({"type": "thinking", "text": thinking["text"]})
    if bubble.get("text"):
        blocks.append({"type": "text", "text": bubble["text"]})
    tool = bubble.get("toolFormerData")
    if not isinstance(tool, dict) or not tool.get("name"):
        return [_message("assistant", blocks)] if blocks else []
    call = str(tool.get("toolCallId") or bubble.get("bubbleId") or "")
    blocks.append({"type": "tool_use", "id": call, "name": tool["name"], "input": _arguments(tool)})
    records = [_message("assistant", blocks)]
    if tool.get("result") is not None:
        result = tool["result"] if isinstance(tool["result"], str) else json.dumps(tool["result"], ensure_ascii=False)
        block: Record = {"type": "tool_result", "tool_use_id": call, "content": result}
        if tool.get("status") == "error":
            block["is_error"] = True
        records.append(_message("user", [block]))
    return records


def _message(role: str, content: list[Record]) -> Record:
    return {"role": role, "message": {"content": content}}


def _arguments(tool: Record) -> Any:
    """A tool call's arguments: its raw JSON arguments, else its parameters, else nothing."""
    for key in ("rawArgs", "params"):
        value = tool.get(key)
        parsed = _json(value, None) if isinstance(value, str) else value
        if isinstance(parsed, dict):
            return parsed
    return {}


def _lexical_text(rich: Any) -> str:
    """The plain text of a Lexical editor state (Cursor's ``richText``), paragraphs on their own lines."""
    state = _json(rich, None) if isinstance(rich, str) else rich
    if not isinstance(state, dict):
        return ""

    def text(node: Any) -> str:
        if not isinstance(node, dict):
            return ""
        children = node.get("children")
        children = children if isinstance(children, list) else []
        joiner = "\n" if node.get("type") == "root" else ""
        return str(node.get("text") or "") + joiner.join(text(child) for child in children)

    return text(state.get("root")).strip()


def _composer_meta(composer: str, data: Record, bubbles: list[Record], project: str | None) -> Record:
    """The session record a Cursor transcript starts with (``cursor_session_meta``), with what the
    composer says of its model, title, folder and dates."""
    meta = {
        "type": "cursor_session_meta",
        "source": "cursor",
        "session_id": composer,
        "model": _model(data, bubbles),
        "title": data.get("name"),
        "cwd": project,
        "created_at": _iso_ms(data.get("createdAt")),
        "updated_at": _iso_ms(data.get("lastUpdatedAt")),
    }
    return {key: value for key, value in meta.items() if value is not None}


def _model(data: Record, bubbles: list[Record]) -> str | None:
    """The composer's model, else the first one a message names."""
    infos = [data.get("modelConfig"), *(bubble.get("modelInfo") for bubble in bubbles)]
    return next((str(i["modelName"]) for i in infos if isinstance(i, dict) and i.get("modelName")), None)


def _iso_ms(value: Any) -> str | None:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    return datetime.fromtimestamp(value / 1000, timezone.utc).isoformat().replace("+00:00", "Z")


def _json(value: Any, default: Any) -> Any:
    """A JSON text (or UTF-8 bytes) parsed, or ``default``."""
    try:
        return json.loads(value.decode() if isinstance(value, bytes) else value)
    except (TypeError, ValueError):
        return default
