"""Real sessions written by real agents convert faithfully.

Inputs: the real sessions committed under ``tests/data/real`` and ``tests/data/recorded`` (recorded
here with the real CLIs), the shared samples in ``../shared/traces``, and the corpus of sessions
from public repositories described by ``tests/data/real/MANIFEST.json``, laid out in
``../shared/real`` (or ``$TEICH_FIELD_SESSIONS``). Sources that are absent are skipped.

Every expectation comes from a separate, simple reading of the raw file in this module (the calls
and results it records, the prompts the user typed, the last thing the model said, the path the
session ended on), never from Teich's own readers.
"""

from __future__ import annotations

import gzip
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from teich import TeichError, TrainingExample, load_traces
from teich.schema import text_of

TESTS = Path(__file__).resolve().parent
SHARED = TESTS.parent.parent / "shared"
FIELD = Path(os.environ.get("TEICH_FIELD_SESSIONS", SHARED / "real"))
AGENTS = ("claude_code", "codex", "pi", "openclaw")


def _session_files() -> list[tuple[str, Path]]:
    """(agent, file) for every real session available; sub-agent files are read with their session."""
    found = []
    for root in (TESTS / "data" / "real", TESTS / "data" / "recorded", FIELD):
        for agent in AGENTS:
            folder = root / agent
            if folder.is_dir():
                found += [
                    (agent, p)
                    for p in sorted(folder.rglob("*"))
                    if p.name.endswith((".jsonl", ".json", ".jsonl.gz"))
                    and "subagents" not in p.parts
                    and not p.name.endswith((".meta.json", ".requests.json"))
                ]
    if (SHARED / "traces").is_dir():
        found += [(p.stem, p) for p in sorted((SHARED / "traces").glob("*.jsonl")) if p.stem in AGENTS]
    return found


SESSIONS = _session_files()


def _raw(path: Path) -> list[dict[str, Any]]:
    data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    text = data.decode("utf-8")
    try:
        value = json.loads(text)
        return value if isinstance(value, list) else [value]
    except json.JSONDecodeError:  # JSON lines, where a crashed writer may have joined two records
        decoder, records = json.JSONDecoder(), []
        for line in filter(str.strip, text.splitlines()):
            index = 0
            while index < len(line.rstrip()):
                record, index = decoder.raw_decode(line, index)
                records.append(record)
        return records


def _rows(path: Path) -> tuple[list[TrainingExample], Any]:
    dataset, report = load_traces(path, return_report=True)
    return [TrainingExample.from_record(r) for r in dataset], report


def _calls(rows: list[TrainingExample]) -> dict[str, str]:
    return {c.id: c.function.name for r in rows for m in r.messages for c in m.tool_calls or []}


def _answered_calls(rows: list[TrainingExample]) -> set[str]:
    """The calls of every assistant turn but each row's last (whose results nothing answered)."""
    return {c.id for r in rows for m in r.messages[:-1] for c in m.tool_calls or []}


def _results(rows: list[TrainingExample]) -> set[str]:
    return {m.tool_call_id for r in rows for m in r.messages if m.role == "tool"}


def _user_texts(rows: list[TrainingExample]) -> list[str]:
    return [text_of(m.content) for r in rows for m in r.messages if m.role in ("user", "developer")]


def _assistant_texts(rows: list[TrainingExample]) -> list[str]:
    return [text_of(m.content) for r in rows for m in r.messages if m.role == "assistant" and m.content]


def _ancestors(records: list[dict], key: str, parents: tuple[str, ...], last: dict) -> list[dict]:
    """The records from ``last`` back to the root, following the first parent field that is set."""
    by_id = {r[key]: r for r in records if r.get(key) is not None}
    chain, seen = [], set()
    while last is not None and last[key] not in seen:
        seen.add(last[key])
        chain.append(last)
        parent = next((last.get(p) for p in parents if last.get(p)), None)
        last = by_id.get(parent)
    return chain[::-1]


def _parent_field(record: dict) -> str | None:
    return record.get("parentUuid") or record.get("logicalParentUuid")


def _descendants(records: list[dict], root: dict) -> list[dict]:
    """``root`` and every record below it, in file order."""
    below = {root["uuid"]}
    for record in records:
        if _parent_field(record) in below:
            below.add(record["uuid"])
    return [r for r in records if r["uuid"] in below]


def _split(records: list[dict], boundary) -> list[list[dict]]:
    parts: list[list[dict]] = [[]]
    for record in records:
        if boundary(record):
            parts.append([])
        parts[-1].append(record)
    return parts


# --- Claude Code: a plain reading of the records -------------------------------------------------


def _blocks(record: dict) -> list[dict]:
    content = (record.get("message") or {}).get("content")
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [b for b in content or [] if isinstance(b, dict)]


def _synthetic(record: dict) -> bool:
    return bool(record.get("isApiErrorMessage")) or (record.get("message") or {}).get("model") == "<synthetic>"


def _claude_facts(records: list[dict]) -> dict[str, Any]:
    main = [r for r in records if r.get("uuid") and not r.get("isSidechain")]
    known, last = {r["uuid"] for r in main}, None
    for record in main:  # a compaction whose logical parent was never written follows the last message
        if record.get("subtype") == "compact_boundary" and record.get("logicalParentUuid") not in known:
            record["logicalParentUuid"] = last
        last = record["uuid"] if record.get("type") in ("user", "assistant") else last
    # each root (a /clear starts a new one) is a context; its path ends at its last message
    paths = []
    for root in [r for r in main if _parent_field(r) not in known]:
        talk = [r for r in _descendants(main, root) if r.get("type") in ("user", "assistant")]
        paths.append(_ancestors(main, "uuid", ("parentUuid", "logicalParentUuid"), talk[-1]) if talk else [])
    path = [r for p in paths for r in p]
    # one API response is one generation, whichever of its block records the path went through
    responses = {(r.get("message") or {}).get("id") for r in path if r.get("type") == "assistant"}
    path_calls = {
        b["id"]: b["name"]
        for r in main
        if r.get("type") == "assistant" and not _synthetic(r) and (r in path or r["message"].get("id") in responses)
        for b in _blocks(r)
        if b.get("type") == "tool_use"
    }
    results = {b.get("tool_use_id") for r in main for b in _blocks(r) if b.get("type") == "tool_result"}
    answered = [r for r in path if r.get("type") == "assistant" and not _synthetic(r)]
    # what the user typed before the model's last answer in each context (a compaction ends one)
    prompted = []
    contexts = [c for p in paths for c in _split(p, lambda r: r.get("subtype") == "compact_boundary")]
    for context in contexts:
        replies = [i for i, r in enumerate(context) if r.get("type") == "assistant" and not _synthetic(r)]
        prompted += context[: replies[-1]] if replies else []
    prompts = [
        b["text"]
        for r in prompted
        if r.get("type") == "user" and not r.get("isMeta") and not r.get("isCompactSummary")
        for b in _blocks(r)
        if b.get("type") == "text"
        and b["text"].strip()
        and not b["text"].startswith(("<command-name>/compact", "<local-command-stdout>Compact"))
    ]
    last_response = [r for r in answered if answered and r["message"].get("id") == answered[-1]["message"].get("id")]
    last_text = next((b["text"] for r in last_response for b in _blocks(r) if b.get("type") == "text"), None)
    synthetic = {b.get("text") for r in records if _synthetic(r) for b in _blocks(r) if b.get("type") == "text"}
    # each sub-agent run is a sidechain tree: its root continues no other sidechain record
    side = {r["uuid"] for r in records if r.get("isSidechain") and r.get("uuid")}
    agents = [r for r in records if r.get("uuid") in side and r.get("parentUuid") not in side]
    # 2.1 streams each sub-agent's messages into the main file as agent_progress records
    streamed = {
        r["data"]["agentId"]
        for r in records
        if (r.get("data") or {}).get("type") == "agent_progress"
        and (r["data"].get("message") or {}).get("type") == "assistant"
    }
    return {
        "path_calls": path_calls,
        "results": results,
        "prompts": prompts,
        "last_text": last_text,
        "synthetic": synthetic - {None},
        "has_answer": bool(answered),
        "sub_agents": [*agents, *streamed],
    }


# --- Codex --------------------------------------------------------------------------------------


def _codex_items(records: list[dict]) -> list[dict]:
    if records and "payload" not in records[0] and "type" not in records[0]:  # the mid-2025 layout
        return [r for r in records[1:] if "type" in r]
    return [r["payload"] for r in records if r.get("type") == "response_item" and isinstance(r.get("payload"), dict)]


def _codex_facts(records: list[dict]) -> dict[str, Any]:
    items = _codex_items(records)
    unnamed = {"web_search_call": "web_search", "local_shell_call": "local_shell"}
    calls = {
        i.get("call_id") or i.get("id"): i.get("name") or unnamed[i["type"]]
        for i in items
        if i.get("type") in ("function_call", "custom_tool_call", "local_shell_call", "web_search_call")
    }
    outputs = {i.get("call_id") for i in items if str(i.get("type")).endswith("_output")}
    typed = [
        r["payload"].get("message")
        for r in records
        if r.get("type") == "event_msg" and (r.get("payload") or {}).get("type") == "user_message"
    ]
    answers = [
        "".join(p.get("text", "") for p in i.get("content") or [])
        for i in items
        if i.get("type") == "message" and i.get("role") == "assistant"
    ]
    models = {
        r["payload"]["model"]
        for r in records
        if r.get("type") == "turn_context" and (r.get("payload") or {}).get("model")
    }
    return {"calls": calls, "outputs": outputs, "typed": [t for t in typed if t], "answers": answers, "models": models}


# --- Pi -----------------------------------------------------------------------------------------


def _pi_facts(records: list[dict]) -> dict[str, Any]:
    entries = [r for r in records if r.get("type") != "session"]
    if entries and not any("id" in e for e in entries):  # v1: one line of entries
        entries = [{**e, "id": n, "parentId": n - 1 if n else None} for n, e in enumerate(entries)]
    path = _ancestors(entries, "id", ("parentId",), entries[-1]) if entries else []
    messages = [e["message"] for e in path if e.get("type") == "message"]
    parts = [(m, p) for m in messages if isinstance(m.get("content"), list) for p in m["content"]]
    calls = {p["id"]: p["name"] for m, p in parts if m.get("role") == "assistant" and p.get("type") == "toolCall"}
    results = {m.get("toolCallId") for m in messages if m.get("role") == "toolResult"}
    prompts = [
        p.get("text")
        for m, p in parts
        if m.get("role") == "user" and p.get("type") == "text" and (p.get("text") or "").strip()
    ] + [m["content"] for m in messages if m.get("role") == "user" and isinstance(m.get("content"), str)]
    last_reply = max((i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=0)
    shell = [m for m in messages[:last_reply] if m.get("role") == "bashExecution" and not m.get("excludeFromContext")]
    answers = [p.get("text") for m, p in parts if m.get("role") == "assistant" and p.get("type") == "text"]
    return {"calls": calls, "results": results, "prompts": prompts, "shell": shell, "answers": answers}


# --- The checks ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("agent", "path"), SESSIONS, ids=[f"{a}:{p.name}" for a, p in SESSIONS])
def test_real_session_converts_faithfully(agent: str, path: Path) -> None:
    records = _raw(path)
    rows, report = _rows(path)
    assert not report.problems, report.problems
    if agent == "claude_code":
        _check_claude(records, rows, report)
    elif agent == "codex":
        _check_codex(records, rows, report)
    else:
        _check_pi(records, rows)


def _check_claude(records: list[dict], rows: list[TrainingExample], report: Any) -> None:
    facts = _claude_facts(records)
    if not facts["has_answer"]:
        assert not [r for r in rows if not r.metadata.get("sub_agent")]
        return
    main = [r for r in rows if not r.metadata.get("sub_agent")]
    calls = _calls(main)
    # every call on the path the session ended on, with its name; none from abandoned branches
    assert calls == facts["path_calls"]
    # every recorded result is kept with its call, except after a context's last turn (nothing followed)
    assert {c for c in _answered_calls(main) if c in facts["results"]} <= _results(main)
    # every prompt the user typed on that path before the model's last answer is in a row
    users = _user_texts(main)
    assert [p for p in facts["prompts"] if not any(p.strip() in u for u in users)] == []
    assert not facts["synthetic"] & set(_assistant_texts(rows)), "an API-error turn became a target"
    if facts["last_text"]:
        assert text_of(main[-1].messages[-1].content).endswith(facts["last_text"].strip())
    assert len([r for r in rows if r.metadata.get("sub_agent")]) == len(facts["sub_agents"])


def _check_codex(records: list[dict], rows: list[TrainingExample], report: Any) -> None:
    facts = _codex_facts(records)
    if not facts["answers"] and not facts["calls"]:
        assert rows == []
        return
    assert _calls(rows).keys() == facts["calls"].keys()
    assert all(_calls(rows)[i] == name for i, name in facts["calls"].items())
    # a run call gets its recorded output, or Codex's "aborted"; only a row's last turn has none after it
    ran = {i for i, name in facts["calls"].items() if name != "web_search"} & _answered_calls(rows)
    assert ran <= _results(rows)
    aborted = [m for r in rows for m in r.messages if m.role == "tool" and m.content == "aborted"]
    assert len({m.tool_call_id for m in aborted}) == len(ran - facts["outputs"])
    users = _user_texts(rows)
    assert all(any(t.strip() in u for u in users) for t in facts["typed"][:-1])
    if facts["answers"]:
        assert text_of(rows[-1].messages[-1].content).endswith(facts["answers"][-1].strip())
    if facts["models"]:
        assert set(rows[-1].metadata["models"]) == facts["models"]


def _check_pi(records: list[dict], rows: list[TrainingExample]) -> None:
    facts = _pi_facts(records)
    if not facts["answers"] and not facts["calls"]:
        assert rows == []
        return
    calls = _calls(rows)
    assert calls == facts["calls"]
    assert {c for c in _answered_calls(rows) if c in facts["results"]} <= _results(rows)
    users = _user_texts(rows)
    missing = [p for p in facts["prompts"] if not any(p.strip() in u for u in users)]
    assert missing in ([], facts["prompts"][-1:]), missing
    shell = [u for u in users if u.startswith("Ran `")]
    assert len(shell) >= len(facts["shell"])
    assert text_of(rows[-1].messages[-1].content).endswith((facts["answers"] or [""])[-1].strip())


def test_files_in_formats_teich_does_not_read_are_reported_not_crashed() -> None:
    other = TESTS / "data" / "real" / "other"
    if not other.is_dir():
        pytest.skip("no other-format real files")
    with pytest.raises(TeichError, match="unknown trace format"):
        load_traces([other])


# --- Recorded sessions against what the CLI really sent the model ------------------------------

RECORDED = TESTS / "data" / "recorded"
SENT = sorted(RECORDED.glob("*/*.requests.json"))


def _sent_contexts(requests: list[dict]) -> dict[str, list[list[dict]]]:
    """The last request of each context, by thread: the main thread's contexts (a compaction
    request separates them) and the sub-agent's."""
    contexts: dict[str, list[list[dict]]] = {"main": [], "subagent": []}
    open_thread: dict[str, bool] = {"main": False, "subagent": False}
    for request in requests:
        kind = request["kind"]
        if kind in ("compact", "compaction"):
            open_thread["main"] = False
        elif kind in contexts:
            if not open_thread[kind]:
                contexts[kind].append([])
                open_thread[kind] = True
            contexts[kind][-1] = _condensed(request["context"])
    return contexts


def _condensed(context: list[dict]) -> list[dict]:
    """Each recorder's items as ``{"call": id}``, ``{"result": id, "text"}`` or ``{"role", "text"}``
    (texts are the recorded openings, without the recorders' ``...[N chars]`` mark)."""
    items: list[dict] = []
    for item in context:
        item = {**item, "text": re.sub(r"\.\.\.\[\d+ chars\]$", "", item.get("text") or "")}
        kind = item.get("type")
        if kind in ("tool_use", "function_call", "custom_tool_call"):
            items.append({"call": item.get("id") or item.get("call_id")})
        elif kind in ("tool_result", "function_call_output", "custom_tool_call_output") or item.get("role") == "tool":
            items.append(
                {
                    "result": item.get("tool_use_id") or item.get("call_id") or item.get("tool_call_id"),
                    "text": item.get("text", ""),
                }
            )
        elif kind in (None, "text", "message"):
            items.append({"role": item.get("role"), "text": item.get("text", "")})
            items += [{"call": call["id"]} for call in item.get("tool_calls") or []]
    return items


@pytest.mark.parametrize("sent", SENT, ids=[f"{p.parent.name}:{p.name}" for p in SENT])
def test_recorded_rows_hold_what_the_cli_sent(sent: Path) -> None:
    session = sent.with_name(sent.name.replace(".requests.json", ".jsonl"))
    sub_agents = sorted(session.with_suffix("").glob("subagents/agent-*.jsonl"))
    rows = _rows(session)[0] + [row for path in sub_agents for row in _rows(path)[0]]
    by_kind = {
        "main": [r for r in rows if not r.metadata.get("sub_agent")],
        "subagent": [r for r in rows if r.metadata.get("sub_agent")],
    }
    requests = json.loads(sent.read_text())
    for kind, contexts in _sent_contexts(
        requests.get("requests", requests) if isinstance(requests, dict) else requests
    ).items():
        assert len(by_kind[kind]) == len(contexts), kind
        for row, context in zip(by_kind[kind], contexts, strict=True):
            _assert_row_holds(row, context)


def _assert_row_holds(row: TrainingExample, context: list[dict]) -> None:
    """The row is the last request's context, then what the model answered to it."""
    sent_calls = [item["call"] for item in context if "call" in item]
    row_calls = [c.id for m in row.messages for c in m.tool_calls or []]
    final = [c.id for c in row.messages[-1].tool_calls or []]
    assert row_calls[: len(sent_calls)] == sent_calls and set(row_calls[len(sent_calls) :]) <= set(final)
    results = [m for m in row.messages if m.role == "tool"]
    assert [m.tool_call_id for m in results] == [item["result"] for item in context if "result" in item]
    sent_results = [item["text"].strip() for item in context if "result" in item]
    assert all(text in text_of(m.content) for text, m in zip(sent_results, results, strict=True))
    texts = [text_of(m.content) for m in row.messages]
    recorded_system = context[0]["role"] in ("system", "developer") and row.system
    if context and context[0].get("role") in ("system", "developer"):
        # Pi records no system prompt, and Codex records its base instructions, which differ from
        # what `codex exec` sends: only their opening is checked
        assert not recorded_system or row.system[:200] == context[0]["text"][:200]
        context = context[1:]
    for item in context:
        sent = item.get("text", "").strip() if "role" in item else ""
        if item.get("role") == "system":  # a system message mid-conversation: its text as it was sent
            assert any(t.strip().startswith(sent) for t in texts), item
        elif sent:
            assert any(sent in t for t in texts), item
