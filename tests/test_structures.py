"""The structures real sessions have, format by format: branches and rewinds, sidechains (sub-agents),
parallel tool calls and their results, and reasoning (raw text and summaries).

Inputs: the real sessions that hold each structure (``tests/data/recorded``, ``tests/data/real``,
``../shared/traces`` and the field corpus in ``../shared/real`` or ``$TEICH_FIELD_SESSIONS``; absent
ones are skipped), and small hand-written sessions where no real file here has the structure.

Every expectation is either written by hand or counted in this module from the raw records with a
plain reading of the JSON (which records a branch holds, which results a record holds, which text a
reasoning item carries), never taken from Teich's readers.
"""

from __future__ import annotations

import functools
import gzip
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from teich import TrainingExample, load_traces
from teich.schema import Message, text_of

TESTS = Path(__file__).resolve().parent
SHARED = TESTS.parent.parent / "shared"
FIELD = Path(os.environ.get("TEICH_FIELD_SESSIONS", SHARED / "real"))
RECORDED = TESTS / "data" / "recorded"


def _real(agent: str) -> list[Path]:
    """The real sessions of ``agent`` present here (sub-agent files, sidecars and request logs aside)."""
    found: list[Path] = []
    for root in (TESTS / "data" / "real", RECORDED, FIELD):
        folder = root / agent
        if folder.is_dir():
            found += [
                p
                for p in sorted(folder.rglob("*"))
                if p.is_file()
                and p.name.endswith((".jsonl", ".json", ".jsonl.gz"))
                and not p.name.endswith((".requests.json", ".meta.json"))
                and "subagents" not in p.parts
            ]
    shared = SHARED / "traces" / f"{agent}.jsonl"
    return found + ([shared] if shared.is_file() else [])


def _having(paths: list[Path], structure: str, holds: Callable[[list[dict[str, Any]]], Any]) -> list[Any]:
    """The sessions whose raw records hold ``structure``, as test parameters; one skipped when none does."""
    chosen = [pytest.param(p, id=f"{p.parent.name}/{p.name}") for p in paths if holds(_raw(p))]
    return chosen or [pytest.param(None, id="none", marks=pytest.mark.skip(reason=f"no real session has {structure}"))]


@functools.cache
def _raw(path: Path) -> list[dict[str, Any]]:
    """Every JSON record of a file (JSON lines, or one JSON document); read once, never changed."""
    data = path.read_bytes()
    text = (gzip.decompress(data) if path.suffix == ".gz" else data).decode("utf-8")
    try:
        value = json.loads(text)
        return value if isinstance(value, list) else [value]
    except json.JSONDecodeError:
        records = []
        for line in text.splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line a crashed writer cut short: the readers report it, nothing to count here
        return records


def _write(path: Path, records: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def _load(source: Path | list[Path]) -> tuple[list[TrainingExample], Any]:
    dataset, report = load_traces(source, return_report=True)
    return [TrainingExample.from_record(r) for r in dataset], report


@functools.cache
def _converted(path: Path) -> tuple[list[TrainingExample], Any]:
    """A real session's rows and report, converted once for every test reading it (none changes them)."""
    return _load(path)


def _assistants(row: TrainingExample) -> list[Message]:
    return [m for m in row.messages if m.role == "assistant"]


def _texts(row: TrainingExample, role: str) -> list[Any]:
    return [m.content for m in row.messages if m.role == role]


def _calls(row: TrainingExample) -> list[str]:
    return [c.id for m in row.messages for c in m.tool_calls or []]


def _tools(row: TrainingExample) -> list[tuple[str | None, str, bool | None]]:
    return [(m.tool_call_id, text_of(m.content), m.is_error) for m in row.messages if m.role == "tool"]


def _turn_of(row: TrainingExample, call_id: str) -> tuple[int, Message]:
    """The assistant message making a call, and its place."""
    return next((i, m) for i, m in enumerate(row.messages) for c in m.tool_calls or [] if c.id == call_id)


def _results_after(row: TrainingExample, index: int) -> list[Message]:
    """The tool messages that follow the message at ``index``, up to the next other message."""
    results = []
    for message in row.messages[index + 1 :]:
        if message.role != "tool":
            break
        results.append(message)
    return results


def _block_text(content: Any) -> str:
    """The text of a raw content value: a string, or the ``text`` of its blocks."""
    return "\n".join(_block_texts(content))


def _block_texts(content: Any) -> list[str]:
    """The texts of a raw content value: a string, or the ``text`` of each of its text blocks."""
    if isinstance(content, str):
        return [content]
    return [b.get("text", "") for b in content or [] if isinstance(b, dict) and b.get("type") == "text"]


# === Claude Code ================================================================================


def _cc(uuid: str, parent: str | None, kind: str, content: Any, **extra: Any) -> dict[str, Any]:
    message: dict[str, Any] = {"role": kind, "content": content}
    if kind == "assistant":
        message.update(id=extra.pop("message_id", f"msg_{uuid}"), model="claude-sonnet-4-20250514")
    record = {"type": kind, "uuid": uuid, "parentUuid": parent, "sessionId": "s1", "version": "1.0.98"}
    return {**record, "isSidechain": False, "message": message, **extra}


def _use(call_id: str, name: str = "Bash", **arguments: Any) -> dict[str, Any]:
    return {"type": "tool_use", "id": call_id, "name": name, "input": arguments or {"command": f"echo {call_id}"}}


def _result(call_id: str, text: str, **extra: Any) -> dict[str, Any]:
    return {"type": "tool_result", "tool_use_id": call_id, "content": text, **extra}


def _text(text: str) -> dict[str, str]:
    return {"type": "text", "text": text}


def test_claude_parallel_results_in_one_user_record_are_all_kept(tmp_path: Path) -> None:
    """One response with three calls, answered by one user record holding the three results (as the
    Anthropic API carries them): every result is kept, right after the turn, paired with its call."""
    records = [
        _cc("u1", None, "user", "Read a.txt and b.txt, and list the folder"),
        _cc(
            "a1",
            "u1",
            "assistant",
            [
                _text("Reading both."),
                _use("t1", "Read", file_path="a.txt"),
                _use("t2", "Read", file_path="b.txt"),
                _use("t3", "Bash", command="ls"),
            ],
        ),
        _cc(
            "r1",
            "a1",
            "user",
            [_result("t1", "alpha"), _result("t2", "no such file", is_error=True), _result("t3", "a.txt\nc.txt")],
        ),
        _cc("a2", "r1", "assistant", [_text("a.txt says alpha; b.txt is missing.")]),
    ]
    (row,), report = _load(_write(tmp_path / "s.jsonl", records))
    assert _cc_check_parallel(records, [row]) == 3
    assert [m.role for m in row.messages] == ["user", "assistant", "tool", "tool", "tool", "assistant"]
    assert _calls(row) == ["t1", "t2", "t3"]
    assert _tools(row) == [("t1", "alpha", None), ("t2", "no such file", True), ("t3", "a.txt\nc.txt", None)]
    assert [m.name for m in row.messages if m.role == "tool"] == ["Read", "Read", "Bash"]
    assert row.messages[-1].content == "a.txt says alpha; b.txt is missing." and not report.left_out


def test_claude_parallel_results_in_one_record_with_text_and_a_missing_result(tmp_path: Path) -> None:
    """Two calls, one record answering only the second plus a typed note (an interrupted call): the
    result kept, the note a user message after it, the unanswered call counted."""
    records = [
        _cc("u1", None, "user", "run both"),
        _cc("a1", "u1", "assistant", [_use("t1"), _use("t2")]),
        _cc("r1", "a1", "user", [_result("t2", "two"), _text("[Request interrupted by user for tool use]")]),
        _cc("a2", "r1", "assistant", [_text("Stopped.")]),
    ]
    (row,), report = _load(_write(tmp_path / "s.jsonl", records))
    assert _tools(row) == [("t2", "two", None)]
    assert [m.role for m in row.messages] == ["user", "assistant", "tool", "user", "assistant"]
    assert report.left_out == {"tool call with no recorded result": 1}


# --- Claude Code: a plain reading of a session's tree --------------------------------------------


def _cc_talk(record: dict[str, Any]) -> bool:
    return record.get("type") in ("user", "assistant")


def _cc_only_results(record: dict[str, Any]) -> bool:
    content = (record.get("message") or {}).get("content")
    return isinstance(content, list) and bool(content) and all(b.get("type") == "tool_result" for b in content)


def _cc_blocks(record: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    content = (record.get("message") or {}).get("content")
    return [b for b in content if isinstance(b, dict) and b.get("type") == kind] if isinstance(content, list) else []


def _cc_off_path(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The main-thread user and assistant records on no branch the session ended on, as docs/formats.md
    says Claude Code sessions are read: each root's path runs from the newest user/assistant record
    that no other one continues back to the root, through ``parentUuid`` (``logicalParentUuid`` across
    a compaction, or the last message before it where that record is missing); a record without a
    parent field, or naming one that is not in the file, is taken to follow the record written before
    it. Records of an API response on a path, and records holding only tool results (paired by id
    wherever they sit), are on no branch."""
    everything = [r for r in records if r.get("uuid")]
    known = {r["uuid"] for r in everything}
    parent: dict[str, str | None] = {}
    previous = last_talk = None
    for record in everything:
        named = record.get("parentUuid")
        if previous is not None and ("parentUuid" not in record or (named is not None and named not in known)):
            named = previous
        previous = record["uuid"]
        if record.get("isSidechain"):
            continue
        named = named or record.get("logicalParentUuid")
        if record.get("subtype") == "compact_boundary" and named not in known:
            named = last_talk
        parent[record["uuid"]] = named
        last_talk = record["uuid"] if _cc_talk(record) else last_talk
    nodes = [r for r in everything if not r.get("isSidechain")]
    continued: set[str] = set()
    for record in nodes:
        if _cc_talk(record):
            up = parent[record["uuid"]]
            while up is not None and up not in continued:
                continued.add(up)
                up = parent.get(up)
    on_path: set[str] = set()
    roots: dict[str, str] = {}
    for record in nodes:  # the newest leaf of each tree
        top, seen = record["uuid"], set()
        while parent.get(top) is not None and top not in seen:
            seen.add(top)
            top = parent[top]
        if _cc_talk(record) and record["uuid"] not in continued:
            roots[top] = record["uuid"]
    for leaf in roots.values():
        at: str | None = leaf
        while at is not None and at not in on_path:
            on_path.add(at)
            at = parent.get(at)
    responses = {(r.get("message") or {}).get("id") for r in nodes if r["uuid"] in on_path and r["type"] == "assistant"}
    return [
        r
        for r in nodes
        if _cc_talk(r)
        and r["uuid"] not in on_path
        and not _cc_only_results(r)
        and not (r["type"] == "assistant" and (r.get("message") or {}).get("id") in responses)
    ]


def _cc_check_branches(records: list[dict[str, Any]], rows: list[TrainingExample], report: Any) -> int:
    """What only abandoned branches said is in no row, and the records left there are counted."""
    off = _cc_off_path(records)
    off_ids = {r["uuid"] for r in off}
    kept_texts = {
        b["text"].strip()
        for r in records
        if _cc_talk(r) and r.get("uuid") not in off_ids
        for b in _cc_blocks(r, "text")
    }
    said = {b["text"].strip() for r in off if r["type"] == "assistant" for b in _cc_blocks(r, "text")} - kept_texts
    said.discard("")
    answers = {text_of(m.content).strip() for row in rows for m in _assistants(row)}
    kept = [t for t in said if t in answers or (len(t) >= 40 and any(t in answer for answer in answers))]
    assert not kept, f"an abandoned answer was kept: {kept[0][:80]!r}" if kept else ""
    calls = {b["id"] for r in off if r["type"] == "assistant" for b in _cc_blocks(r, "tool_use")}
    calls -= {b["id"] for r in records if r.get("uuid") not in off_ids for b in _cc_blocks(r, "tool_use")}
    assert not calls & {c for row in rows for c in _calls(row)}, "a call of an abandoned branch was kept"
    if not any(r.get("isSidechain") for r in records):
        assert report.left_out.get("abandoned branch", 0) == len(off)
    return len(off)


def test_claude_prompt_edited_after_a_rewind_keeps_only_the_new_branch(tmp_path: Path) -> None:
    """A rewind to before the second prompt, then an edited prompt: the branch left behind (its prompt,
    its call and its answer) is in no row and is counted; its tool result pairs with no kept call."""
    records = [
        _cc("u1", None, "user", "Write a haiku about rain"),
        _cc("a1", "u1", "assistant", [_text("Rain on the tin roof")]),
        _cc("u2", "a1", "user", "Now one about snow"),
        _cc("a2", "u2", "assistant", [_use("t1", "Bash", command="cat snow.txt")]),
        _cc("r2", "a2", "user", [_result("t1", "cold")]),
        _cc("a3", "r2", "assistant", [_text("ABANDONED snow haiku")]),
        _cc("u3", "a1", "user", "Now one about the sea"),  # the edited prompt, a sibling of u2
        _cc("a4", "u3", "assistant", [_text("kept sea haiku")]),
    ]
    (row,), report = _load(_write(tmp_path / "s.jsonl", records))
    assert [(m.role, m.content) for m in row.messages] == [
        ("user", "Write a haiku about rain"),
        ("assistant", "Rain on the tin roof"),
        ("user", "Now one about the sea"),
        ("assistant", "kept sea haiku"),
    ]
    assert report.left_out == {"abandoned branch": 3}  # u2, a2, a3 (r2 only holds a result)
    assert _cc_check_branches(records, [row], report) == 3


def test_claude_regenerated_answer_after_parallel_calls_keeps_the_last_one(tmp_path: Path) -> None:
    """A response split over records (one per block, sharing ``message.id``) whose results hang off
    different blocks, then a rewind that regenerates the final answer: the whole response and both
    results stay, the first answer is left out."""
    records = [
        _cc("u1", None, "user", "compare x and y"),
        _cc(
            "a1", "u1", "assistant", [{"type": "thinking", "thinking": "Read both.", "signature": "s"}], message_id="m1"
        ),
        _cc("a2", "a1", "assistant", [_use("t1", "Read", file_path="x")], message_id="m1"),
        _cc("a3", "a2", "assistant", [_use("t2", "Read", file_path="y")], message_id="m1"),
        _cc("r1", "a2", "user", [_result("t1", "x=1")]),
        _cc("r2", "a3", "user", [_result("t2", "y=2")]),
        _cc("a4", "r2", "assistant", [_text("ABANDONED x is smaller")]),
        _cc("a5", "r2", "assistant", [_text("kept: y is larger")]),
    ]
    (row,), report = _load(_write(tmp_path / "s.jsonl", records))
    assert _cc_check_parallel(records, [row]) == 2
    turn = row.messages[1]
    assert (turn.reasoning_content, [c.id for c in turn.tool_calls or []]) == ("Read both.", ["t1", "t2"])
    assert _tools(row) == [("t1", "x=1", None), ("t2", "y=2", None)]
    assert _texts(row, "assistant")[-1] == "kept: y is larger" and len(_assistants(row)) == 2
    assert report.left_out == {"abandoned branch": 1}
    assert _cc_check_branches(records, [row], report) == 1


CLAUDE = _real("claude_code")


@pytest.mark.parametrize("path", _having(CLAUDE, "user or assistant records", lambda rs: any(map(_cc_talk, rs))))
def test_claude_real_sessions_keep_only_the_branch_they_ended_on(path: Path) -> None:
    records = _raw(path)
    rows, report = _converted(path)
    _cc_check_branches(records, rows, report)


def _cc_results(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each main-thread tool result block, by the call it answers (the first recorded)."""
    results: dict[str, dict[str, Any]] = {}
    for record in records:
        if record.get("type") == "user" and not record.get("isSidechain"):
            for block in _cc_blocks(record, "tool_result"):
                results.setdefault(block.get("tool_use_id"), block)
    return results


def _cc_parallel(records: list[dict[str, Any]]) -> list[list[str]]:
    """The call ids of each main-thread response with several calls (its records share ``message.id``),
    and the call ids answered by each user record holding several results."""
    responses: dict[str, list[str]] = {}
    for record in records:
        if record.get("type") == "assistant" and not record.get("isSidechain"):
            key = (record.get("message") or {}).get("id") or record["uuid"]
            responses.setdefault(key, []).extend(b["id"] for b in _cc_blocks(record, "tool_use"))
    grouped = [
        [b["tool_use_id"] for b in _cc_blocks(r, "tool_result")]
        for r in records
        if r.get("type") == "user" and not r.get("isSidechain") and len(_cc_blocks(r, "tool_result")) > 1
    ]
    return [calls for calls in responses.values() if len(calls) > 1] + grouped


def _cc_check_parallel(records: list[dict[str, Any]], rows: list[TrainingExample]) -> int:
    """For each response with several calls that a row keeps, and each user record holding several
    results, every call recorded with a result has it right after the turn, with its text and error
    flag; returns the calls whose results were checked."""
    results = _cc_results(records)
    rows = [r for r in rows if not r.metadata.get("sub_agent")]
    checked: set[str] = set()
    for calls in _cc_parallel(records):
        row = next((r for r in rows if set(calls) & set(_calls(r))), None)
        if row is None:
            continue  # a response on an abandoned branch (checked above)
        index, turn = _turn_of(row, next(c for c in calls if c in _calls(row)))
        if turn is row.messages[-1]:
            continue  # the row's last turn: nothing after it is kept
        placed = {m.tool_call_id: m for m in _results_after(row, index)}
        for call in calls:
            if call in results:
                block = results[call]
                assert call in placed, f"the result of {call} is missing"
                kept = text_of(placed[call].content)
                assert all(text.strip() in kept for text in _block_texts(block.get("content"))), call
                assert bool(placed[call].is_error) == bool(block.get("is_error")), call
                checked.add(call)
    return len(checked)


@pytest.mark.parametrize("path", _having(CLAUDE, "parallel calls", _cc_parallel))
def test_claude_real_parallel_calls_keep_every_result(path: Path) -> None:
    rows, _ = _converted(path)
    assert _cc_check_parallel(_raw(path), rows) or not rows


def _sidechain(agent: str, uuid: str, parent: str | None, kind: str, content: Any, **extra: Any) -> dict[str, Any]:
    return {**_cc(uuid, parent, kind, content, **extra), "isSidechain": True}


def test_claude_parallel_sub_agents_in_sidechains_become_their_own_rows(tmp_path: Path) -> None:
    """Two ``Task`` calls in one response (Claude Code 1.0): each sub-agent runs as a sidechain in the
    same file; each becomes a row of its own, linked to its call; both results stay in the main row."""
    records = [
        _cc("u1", None, "user", "Survey the repo"),
        _cc(
            "a1",
            "u1",
            "assistant",
            [
                _use("task1", "Task", prompt="Count the tests", subagent_type="general-purpose"),
                _use("task2", "Task", prompt="List the docs", subagent_type="general-purpose"),
            ],
        ),
        _sidechain("A", "x1", None, "user", "Count the tests"),
        _sidechain("B", "y1", None, "user", "List the docs"),
        _sidechain("A", "x2", "x1", "assistant", [_use("s1", "Bash", command="ls tests | wc -l")]),
        _sidechain("B", "y2", "y1", "assistant", [_use("s2", "Glob", pattern="docs/*")]),
        _sidechain("A", "x3", "x2", "user", [_result("s1", "41")]),
        _sidechain("B", "y3", "y2", "user", [_result("s2", "docs/a.md")]),
        _sidechain("A", "x4", "x3", "assistant", [_text("41 tests.")]),
        _sidechain("B", "y4", "y3", "assistant", [_text("One doc: a.md.")]),
        _cc("r1", "a1", "user", [_result("task1", "41 tests."), _result("task2", "One doc: a.md.")]),
        _cc("a2", "r1", "assistant", [_text("41 tests, one doc.")]),
    ]
    rows, report = _load(_write(tmp_path / "s.jsonl", records))
    assert _cc_check_sidechains(records, rows) == 2 and _cc_check_parallel(records, rows) == 2
    main, *subs = rows
    assert _calls(main) == ["task1", "task2"] and _tools(main) == [
        ("task1", "41 tests.", None),
        ("task2", "One doc: a.md.", None),
    ]
    assert main.messages[-1].content == "41 tests, one doc." and not main.metadata.get("sub_agent")
    by_call = {row.metadata["parent_tool_call_id"]: row for row in subs}
    assert sorted(by_call) == ["task1", "task2"] and all(r.metadata["sub_agent"] for r in subs)
    assert (by_call["task1"].prompt, _calls(by_call["task1"]), by_call["task1"].messages[-1].content) == (
        "Count the tests",
        ["s1"],
        "41 tests.",
    )
    assert (by_call["task2"].prompt, _calls(by_call["task2"]), by_call["task2"].messages[-1].content) == (
        "List the docs",
        ["s2"],
        "One doc: a.md.",
    )
    assert not report.left_out


def _cc_check_sidechains(records: list[dict[str, Any]], rows: list[TrainingExample]) -> int:
    """Each sub-agent run recorded in the file (a sidechain tree, whose root continues no other
    sidechain record) has a row of its own holding its task and only its own calls; returns the runs."""
    side = [r for r in records if r.get("isSidechain") and r.get("uuid")]
    side_ids = {r["uuid"] for r in side}
    roots = [r for r in side if r.get("parentUuid") not in side_ids and r.get("type") == "user"]
    subs = [r for r in rows if r.metadata.get("sub_agent")]
    main_calls = {c for r in rows if not r.metadata.get("sub_agent") for c in _calls(r)}
    side_calls = {b["id"] for r in side if r.get("type") == "assistant" for b in _cc_blocks(r, "tool_use")}
    assert not main_calls & side_calls, "a sub-agent's call leaked into the main row"
    assert {c for r in subs for c in _calls(r)} <= side_calls, "a main-thread call leaked into a sub-agent row"
    for root in roots:
        task = _block_text((root.get("message") or {}).get("content")).strip()
        texts = [text_of(m.content) for r in subs for m in r.messages if m.role in ("user", "developer")]
        assert any(task in text for text in texts), task[:80]
    return len(roots)


@pytest.mark.parametrize("path", _having(CLAUDE, "sidechains", lambda rs: any(r.get("isSidechain") for r in rs)))
def test_claude_real_sidechains_are_rows_of_their_own(path: Path) -> None:
    rows, _ = _converted(path)
    assert _cc_check_sidechains(_raw(path), rows)


def test_claude_recorded_sub_agent_file_is_its_own_linked_row() -> None:
    """The recorded 2.1 session whose sub-agent wrote its own transcript under ``subagents/``."""
    session = RECORDED / "claude_code" / "subagent.jsonl"
    (agent_file,) = sorted((RECORDED / "claude_code" / "subagent" / "subagents").glob("agent-*.jsonl"))
    meta = json.loads(agent_file.with_suffix(".meta.json").read_text())
    raw = _raw(agent_file)
    task = next(_block_text(r["message"]["content"]) for r in raw if r.get("type") == "user")
    calls = [b["id"] for r in raw if r.get("type") == "assistant" for b in _cc_blocks(r, "tool_use")]
    answer = [b["text"] for r in raw if r.get("type") == "assistant" for b in _cc_blocks(r, "text")][-1]
    parent_calls = [b["id"] for r in _raw(session) if r.get("type") == "assistant" for b in _cc_blocks(r, "tool_use")]
    (sub,), _ = _load(agent_file)
    (main,), _ = _load(session)
    assert sub.metadata["sub_agent"] and sub.prompt == task and _calls(sub) == calls
    assert sub.messages[-1].content == answer
    assert sub.metadata["parent_tool_call_id"] == meta["toolUseId"] and meta["toolUseId"] in parent_calls
    assert _calls(main) == parent_calls and not set(calls) & set(_calls(main))


def _cc_thinks(records: list[dict[str, Any]]) -> bool:
    return any((b.get("thinking") or "").strip() for r in records for b in _cc_blocks(r, "thinking"))


@pytest.mark.parametrize("path", _having(CLAUDE, "thinking blocks", _cc_thinks))
def test_claude_real_thinking_blocks_are_the_reasoning_of_their_turn(path: Path) -> None:
    """The thinking of every response a row keeps (its records grouped by the raw ``message.id``; found in
    a row by its first call, else by its text) is that turn's reasoning, in order, and never its text."""
    thinking: dict[str, list[str]] = {}
    calls: dict[str, list[str]] = {}
    texts: dict[str, list[str]] = {}
    for record in _raw(path):
        if record.get("type") != "assistant":
            continue
        key = (record.get("message") or {}).get("id") or record["uuid"]
        thinking.setdefault(key, []).extend(
            b["thinking"] for b in _cc_blocks(record, "thinking") if (b.get("thinking") or "").strip()
        )
        calls.setdefault(key, []).extend(b["id"] for b in _cc_blocks(record, "tool_use"))
        texts.setdefault(key, []).extend(b["text"].strip() for b in _cc_blocks(record, "text") if b["text"].strip())
    rows, _ = _converted(path)
    turns = [m for r in rows for m in _assistants(r)]
    found = 0
    for key, thoughts in thinking.items():
        if calls[key]:
            turn = next((m for m in turns for c in m.tool_calls or [] if c.id == calls[key][0]), None)
        else:
            opening = texts[key][0] if texts[key] and len(texts[key][0]) >= 20 else None  # long enough to be its own
            turn = next((m for m in turns if opening and opening in text_of(m.content)), None)
        if not thoughts or turn is None:
            continue  # no thinking text, or a response no row keeps (an abandoned branch, an API error)
        reasoning = turn.reasoning_content or ""
        positions = [reasoning.find(thought) for thought in thoughts]
        assert -1 not in positions and positions == sorted(positions), key
        assert not any(thought in text_of(turn.content) for thought in thoughts), key
        found += 1
    assert found


# === Codex ======================================================================================


def _cx(kind: str, payload: dict[str, Any]) -> dict[str, Any]:
    return {"timestamp": "2025-10-01T00:00:00Z", "type": kind, "payload": payload}


def _item(payload: dict[str, Any]) -> dict[str, Any]:
    return _cx("response_item", payload)


def _msg(role: str, text: str) -> dict[str, Any]:
    kind = "output_text" if role == "assistant" else "input_text"
    return _item({"type": "message", "role": role, "content": [{"type": kind, "text": text}]})


def _reasoning(raw: list[str] | None, summary: list[str] | None, encrypted: bool = True) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": s} for s in summary or []],
    }
    if raw is not None:
        payload["content"] = [{"type": "reasoning_text", "text": t} for t in raw]
    if encrypted:
        payload["encrypted_content"] = "gAAAAB..."
    return _item(payload)


def _codex_session(*items: dict[str, Any]) -> list[dict[str, Any]]:
    header = _cx("session_meta", {"id": "c1", "cli_version": "0.58.0", "base_instructions": {"text": "You are Codex."}})
    return [header, _cx("turn_context", {"model": "gpt-5.1-codex"}), *items]


def test_codex_reasoning_prefers_the_raw_text_over_its_summary(tmp_path: Path) -> None:
    """Each item: raw text and summary (the raw text is what the model generated: kept, summary not);
    summary only; raw only; neither (only encrypted)."""
    records = _codex_session(
        _msg("user", "q1"),
        _reasoning(["RAW one: 2+2 is 4."], ["**Adding** SUMMARY one"]),
        _msg("assistant", "4"),
        _msg("user", "q2"),
        _reasoning(None, ["SUMMARY two"]),
        _msg("assistant", "a2"),
        _msg("user", "q3"),
        _reasoning(["RAW three"], []),
        _msg("assistant", "a3"),
        _msg("user", "q4"),
        _reasoning(None, None),
        _msg("assistant", "a4"),
        _msg("user", "q5"),
        _reasoning(["RAW five, part 1", "RAW five, part 2"], ["SUMMARY five"]),
        _msg("assistant", "a5"),
    )
    (row,), _ = _load(_write(tmp_path / "rollout.jsonl", records))
    reasoning = [m.reasoning_content for m in _assistants(row)]
    assert reasoning[:4] == ["RAW one: 2+2 is 4.", "SUMMARY two", "RAW three", None]
    assert "RAW five, part 1" in reasoning[4] and "RAW five, part 2" in reasoning[4]
    assert reasoning[4].index("part 1") < reasoning[4].index("part 2")
    assert not any("SUMMARY" in (r or "") for r in reasoning[:1] + reasoning[2:])


def _codex_items(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The response items: ``payload`` of ``response_item`` lines, or the bare items of a mid-2025 rollout."""
    if records and "payload" not in records[0] and "type" not in records[0]:
        return [r for r in records[1:] if "type" in r]
    return [r["payload"] for r in records if r.get("type") == "response_item" and isinstance(r.get("payload"), dict)]


def _codex_reasoning_texts(item: dict[str, Any]) -> tuple[list[str], list[str]]:
    raw = [p.get("text", "") for p in item.get("content") or [] if p.get("text", "").strip()]
    summary = [p.get("text", "") for p in item.get("summary") or [] if p.get("text", "").strip()]
    return raw, summary


CODEX = _real("codex")


def _cx_reasons(records: list[dict[str, Any]]) -> bool:
    return any(any(_codex_reasoning_texts(i)) for i in _codex_items(records) if i.get("type") == "reasoning")


@pytest.mark.parametrize("path", _having(CODEX, "readable reasoning", _cx_reasons))
def test_codex_real_reasoning_is_the_raw_text_when_recorded(path: Path) -> None:
    """Every reasoning item of a real rollout: its raw text where recorded (and then not its summary),
    else its summaries, is the reasoning of the assistant turn after it."""
    items = _codex_items(_raw(path))
    reasoning_items = [
        (i, _codex_reasoning_texts(item)) for i, item in enumerate(items) if item.get("type") == "reasoning"
    ]
    rows, _ = _converted(path)
    reasoning = [m.reasoning_content or "" for r in rows for m in _assistants(r)]
    for _, (raw, summary) in reasoning_items:
        expected = raw or summary
        if expected:
            assert any(all(t in r for t in expected) for r in reasoning), expected
        if raw:  # the summary of raw text is no reasoning the model generated
            assert not [s for s in summary if any(s in r for r in reasoning) and not any(s in t for t in raw)]


def test_codex_recorded_raw_reasoning_keeps_the_raw_text_of_each_turn() -> None:
    """The recorded rollout with ``show_raw_agent_reasoning``: three items, each with raw text and a
    summary; the three assistant turns carry the three raw texts, in order."""
    path = RECORDED / "codex" / "raw-reasoning.jsonl"
    items = [i for i in _codex_items(_raw(path)) if i.get("type") == "reasoning"]
    raw = ["\n\n".join(_codex_reasoning_texts(i)[0]) for i in items]
    summaries = [s for i in items for s in _codex_reasoning_texts(i)[1]]
    assert len(items) == 3 and all(raw) and len(summaries) == 3
    (row,), _ = _converted(path)
    assert [m.reasoning_content for m in _assistants(row)] == raw
    assert not any(s in text_of(m.content) + (m.reasoning_content or "") for s in summaries for m in row.messages)


def test_codex_parallel_function_calls_keep_every_output_in_recorded_order(tmp_path: Path) -> None:
    records = _codex_session(
        _msg("user", "inspect"),
        _reasoning(["Three reads at once."], ["Reading"]),
        _item({"type": "function_call", "name": "shell", "arguments": '{"command":["cat","a"]}', "call_id": "c1"}),
        _item({"type": "function_call", "name": "shell", "arguments": '{"command":["cat","b"]}', "call_id": "c2"}),
        _item({"type": "custom_tool_call", "name": "apply_patch", "input": "*** Begin Patch", "call_id": "c3"}),
        _item({"type": "function_call_output", "call_id": "c2", "output": "bee"}),
        _item({"type": "custom_tool_call_output", "call_id": "c3", "output": "patched"}),
        _item({"type": "function_call_output", "call_id": "c1", "output": {"content": "no a", "success": False}}),
        _msg("assistant", "a is missing, b is bee"),
    )
    (row,), report = _load(_write(tmp_path / "rollout.jsonl", records))
    assert [m.role for m in row.messages] == ["system", "user", "assistant", "tool", "tool", "tool", "assistant"]
    turn = row.messages[2]
    assert [c.id for c in turn.tool_calls or []] == ["c1", "c2", "c3"]
    assert turn.reasoning_content == "Three reads at once."
    assert _tools(row) == [("c2", "bee", None), ("c3", "patched", None), ("c1", "no a", True)]
    assert not report.left_out


def _cx_parallel(records: list[dict[str, Any]]) -> list[list[str]]:
    """The call ids of each run of consecutive calls (reasoning between them aside)."""
    runs: list[list[str]] = [[]]
    for item in _codex_items(records):
        if item.get("type") in ("function_call", "custom_tool_call"):
            runs[-1].append(item["call_id"])
        elif item.get("type") != "reasoning":
            runs.append([])
    return [run for run in runs if len(run) > 1]


@pytest.mark.parametrize("path", _having(CODEX, "parallel calls", _cx_parallel))
def test_codex_real_parallel_calls_keep_every_output(path: Path) -> None:
    """Runs of consecutive calls (counted from the raw items) are one turn in the row; every output
    recorded for them follows it with its text."""
    items = _codex_items(_raw(path))
    parallel = _cx_parallel(_raw(path))
    outputs = {i["call_id"]: i.get("output") for i in items if str(i.get("type")).endswith("call_output")}
    rows, _ = _converted(path)
    for run in parallel:
        row = next(r for r in rows if run[0] in _calls(r))
        index, turn = _turn_of(row, run[0])
        assert [c.id for c in turn.tool_calls or []][-len(run) :] == run
        if turn is row.messages[-1]:
            continue  # the session stopped on these calls: nothing after them is kept
        placed = {m.tool_call_id: text_of(m.content) for m in _results_after(row, index)}
        for call in run:
            output = outputs.get(call)
            text = output if isinstance(output, str) else (output or {}).get("content")
            if isinstance(text, str):
                assert placed.get(call) == text, call
            else:
                assert call in placed, call  # no output recorded: Codex's own "aborted", or content items


# === Pi and OpenClaw ============================================================================


def _pi(entry_id: str, parent: str | None, message: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "message",
        "id": entry_id,
        "parentId": parent,
        "timestamp": "2026-01-01T00:00:00Z",
        "message": message,
    }


def _pi_user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": [{"type": "text", "text": text}]}


def _pi_assistant(*parts: dict[str, Any]) -> dict[str, Any]:
    return {"role": "assistant", "content": list(parts), "model": "m1", "provider": "p"}


def _pi_header(openclaw: bool) -> list[dict[str, Any]]:
    header = [{"type": "session", "version": 3, "id": "p1", "cwd": "/w", "timestamp": "2026-01-01T00:00:00Z"}]
    if openclaw:
        snapshot = {"type": "custom", "customType": "model-snapshot", "data": {}, "id": "c0", "parentId": None}
        header.append(snapshot)
    return header


@pytest.mark.parametrize("openclaw", [False, True], ids=["pi", "openclaw"])
def test_pi_rewound_branch_is_left_out_and_counted(tmp_path: Path, openclaw: bool) -> None:
    """The user went back to the first prompt and had the answer generated again: the branch left
    (an answer, a call, its result, a second answer) is in no row; the answer on the kept branch is
    exactly ``kept``."""
    root = "c0" if openclaw else None
    records = [
        *_pi_header(openclaw),
        _pi("e1", root, _pi_user("Say hello")),
        _pi(
            "e2", "e1", _pi_assistant({"type": "toolCall", "id": "x1", "name": "bash", "arguments": {"command": "id"}})
        ),
        _pi(
            "e3",
            "e2",
            {"role": "toolResult", "toolCallId": "x1", "toolName": "bash", "content": "uid=0", "isError": False},
        ),
        _pi("e4", "e3", _pi_assistant({"type": "text", "text": "ABANDONED hello from root"})),
        _pi(
            "e5", "e1", _pi_assistant({"type": "thinking", "thinking": "Just greet."}, {"type": "text", "text": "kept"})
        ),
        _pi("e6", "e5", _pi_user("thanks")),
        _pi("e7", "e6", _pi_assistant({"type": "text", "text": "you're welcome"})),
    ]
    (row,), report = _load(_write(tmp_path / "session.jsonl", records))
    assert row.metadata["trace_type"] == ("openclaw" if openclaw else "pi")
    assert [(m.role, m.content) for m in row.messages] == [
        ("user", "Say hello"),
        ("assistant", "kept"),
        ("user", "thanks"),
        ("assistant", "you're welcome"),
    ]
    assert row.messages[1].reasoning_content == "Just greet." and _calls(row) == []
    assert report.left_out["abandoned branch"] == 3  # e2, e3, e4


def test_pi_branch_summary_of_the_branch_left_is_context(tmp_path: Path) -> None:
    """Coming back from a branch with a summary (Pi's ``branch_summary`` entry): the summary is what the
    model was given about the branch, as Pi words it; the branch itself is left out."""
    records = [
        *_pi_header(False),
        _pi("e1", None, _pi_user("Fix the bug")),
        _pi("e2", "e1", _pi_assistant({"type": "text", "text": "ABANDONED patch"})),
        {"type": "branch_summary", "id": "e3", "parentId": "e1", "fromId": "e2", "summary": "Tried patching foo.py."},
        _pi("e4", "e3", _pi_user("Try bar.py instead")),
        _pi("e5", "e4", _pi_assistant({"type": "text", "text": "kept: patched bar.py"})),
    ]
    (row,), report = _load(_write(tmp_path / "session.jsonl", records))
    summary = (
        "The following is a summary of a branch that this conversation came back from:\n\n"
        "<summary>\nTried patching foo.py.</summary>"
    )
    assert [(m.role, m.content) for m in row.messages] == [
        ("user", "Fix the bug"),
        ("developer", summary),
        ("user", "Try bar.py instead"),
        ("assistant", "kept: patched bar.py"),
    ]
    assert report.left_out["abandoned branch"] == 1


def _pi_path(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The entries from the root to the newest one, through ``parentId`` (v1 files have no ids: all)."""
    entries = [r for r in records if r.get("type") != "session"]
    if not any("id" in e for e in entries):
        return entries
    by_id = {e["id"]: e for e in entries if e.get("id") is not None}
    path, at = [], next((e for e in reversed(entries) if e.get("id") is not None), None)
    while at is not None:
        path.append(at)
        at = by_id.get(at.get("parentId"))
    return path[::-1]


PI = _real("pi") + _real("openclaw")


def _pi_structures(records: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """On the branch the session ended on: the thinking texts, and the call ids of each assistant
    message with several calls."""
    messages = [e["message"] for e in _pi_path(records) if e.get("type") == "message"]
    parts = [(m, p) for m in messages if isinstance(m.get("content"), list) for p in m["content"]]
    thinking = [p["thinking"] for m, p in parts if p.get("type") == "thinking" and (p.get("thinking") or "").strip()]
    parallel = [
        [p["id"] for p in m["content"] if p.get("type") == "toolCall"]
        for m in messages
        if m.get("role") == "assistant"
        and isinstance(m.get("content"), list)
        and sum(p.get("type") == "toolCall" for p in m["content"]) > 1
    ]
    return thinking, parallel


@pytest.mark.parametrize("path", _having(PI, "thinking or parallel calls", lambda rs: any(_pi_structures(rs))))
def test_pi_real_parallel_calls_and_thinking(path: Path) -> None:
    """On the branch the session ended on: messages with several ``toolCall`` parts are one turn with
    those calls in order, each result after it with its text; every thinking part is reasoning."""
    thinking, parallel = _pi_structures(_raw(path))
    messages = [e["message"] for e in _pi_path(_raw(path)) if e.get("type") == "message"]
    results = {m.get("toolCallId"): _block_texts(m.get("content")) for m in messages if m.get("role") == "toolResult"}
    rows, _ = _converted(path)
    reasoning = "\n".join(m.reasoning_content or "" for r in rows for m in _assistants(r))
    assert [t for t in thinking if t not in reasoning] == []
    for calls in parallel:
        row = next(r for r in rows if calls[0] in _calls(r))
        index, turn = _turn_of(row, calls[0])
        made = [c.id for c in turn.tool_calls or []]
        assert made[made.index(calls[0]) :][: len(calls)] == calls  # together, in order, in one turn
        if turn is not row.messages[-1]:
            placed = {m.tool_call_id: text_of(m.content) for m in _results_after(row, index)}
            for call in calls:
                if call in results:
                    assert call in placed and all(t.strip() in placed[call] for t in results[call]), call


# === Droid ======================================================================================


def _droid(entry_id: str, parent: str | None, role: str, content: Any, **extra: Any) -> dict[str, Any]:
    return {
        "type": "message",
        "id": entry_id,
        "parentId": parent,
        "message": {"role": role, "content": content, **extra},
    }


def test_droid_rewound_answer_and_parallel_results_in_one_record(tmp_path: Path) -> None:
    records = [
        {"type": "session_start", "id": "d1", "title": "t", "cwd": "/w"},
        _droid("m1", None, "user", [_text("list and count")]),
        _droid(
            "m2",
            "m1",
            "assistant",
            [
                {"type": "thinking", "thinking": "Both at once."},
                _use("k1", "LS", path="."),
                _use("k2", "Execute", command="wc -l *"),
            ],
        ),
        _droid("m3", "m2", "user", [_result("k1", "a b"), _result("k2", "2 total")]),
        _droid("m4", "m3", "assistant", [_text("ABANDONED two")]),
        _droid("m5", "m3", "assistant", [_text("kept: two files")]),
    ]
    (row,), report = _load(_write(tmp_path / "droid.jsonl", records))
    assert [m.role for m in row.messages] == ["user", "assistant", "tool", "tool", "assistant"]
    assert row.messages[1].reasoning_content == "Both at once." and _calls(row) == ["k1", "k2"]
    assert _tools(row) == [("k1", "a b", None), ("k2", "2 total", None)]
    assert row.messages[-1].content == "kept: two files" and report.left_out == {"abandoned branch": 1}


DROID = _real("droid")


def _droid_thinking(records: list[dict[str, Any]]) -> list[str]:
    """The thinking on the branch ending at the last message, its parents followed through ``parentId``
    (an id written twice names the copy written last before the child)."""
    messages = [r for r in records if r.get("type") == "message"]
    parent_of, latest = [], {}
    for index, record in enumerate(messages):
        parent_of.append(latest.get(record.get("parentId")))
        latest[record.get("id")] = index
    branch, at = [], len(messages) - 1 if messages else None
    while at is not None:
        branch.append(messages[at])
        at = parent_of[at]
    return [
        b["thinking"]
        for r in branch[::-1]
        if (r.get("message") or {}).get("role") == "assistant"
        for b in r["message"].get("content") or []
        if b.get("type") == "thinking" and (b.get("thinking") or "").strip()
    ]


@pytest.mark.parametrize("path", _having(DROID, "thinking", _droid_thinking))
def test_droid_real_thinking_is_reasoning(path: Path) -> None:
    rows, _ = _converted(path)
    reasoning = "\n".join(m.reasoning_content or "" for r in rows for m in _assistants(r))
    assert [t for t in _droid_thinking(_raw(path)) if t not in reasoning] == []


# === Row formats with reasoning: Hermes, Cursor =================================================


def test_hermes_real_reasoning_is_kept_per_turn() -> None:
    path = SHARED / "traces" / "hermes.jsonl"
    sources = [path] if path.is_file() else []
    sources += sorted((RECORDED / "hermes").glob("*.jsonl"))
    for source in sources:
        (record,) = _raw(source)
        expected = [m.get("reasoning") or None for m in record["messages"] if m.get("role") == "assistant"]
        (row,), _ = _load(source)
        assert [m.reasoning_content for m in _assistants(row)] == expected, source.name


def test_cursor_thinking_is_reasoning() -> None:
    path = SHARED / "traces" / "cursor.jsonl"
    if not path.is_file():
        pytest.skip("../shared/traces is not present")
    thinking = [
        b["text"]
        for r in _raw(path)
        if r.get("role") == "assistant"
        for b in r["message"]["content"]
        if b.get("type") == "thinking"
    ]
    (row,), _ = _load(path)
    assert [m.reasoning_content for m in _assistants(row) if m.reasoning_content] == thinking
