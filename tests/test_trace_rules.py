"""The row rule on small hand-written sessions, one structure at a time: a row is a context the
model saw followed by what it generated; what is left out is counted by reason.

Real sessions from the field exercise the same structures in ``test_real_sessions.py``; these
pin each rule down in isolation, with expectations written by hand.
"""

from __future__ import annotations

import gzip
import json
import sys
import textwrap
from pathlib import Path

import zstandard

from teich import TrainingExample, detect_trace_type, load_traces
from teich.traces import protocol

TESTS_DATA = Path(__file__).resolve().parent / "data"
SRC_CATALOGS = Path(__file__).resolve().parents[1] / "src" / "teich" / "traces" / "catalogs"


def _write(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def _load(path: Path) -> tuple[list[TrainingExample], object]:
    dataset, report = load_traces(path, return_report=True)
    return [TrainingExample.from_record(r) for r in dataset], report


def _texts(example: TrainingExample, role: str) -> list:
    return [m.content for m in example.messages if m.role == role]


def _call_ids(example: TrainingExample) -> list[str]:
    return [c.id for m in example.messages for c in m.tool_calls or []]


def _result_ids(example: TrainingExample) -> list[str]:
    return [m.tool_call_id for m in example.messages if m.role == "tool"]


# --- Claude Code -------------------------------------------------------------------------------


def _cc(uuid: str, parent: str | None, kind: str, content, **extra) -> dict:
    message = {"role": kind, "content": content}
    if kind == "assistant":
        message.update(id=extra.pop("message_id", f"msg_{uuid}"), model=extra.pop("model", "claude-x"))
    return {
        "type": kind,
        "uuid": uuid,
        "parentUuid": parent,
        "sessionId": "s1",
        "version": "2.1.5",
        "message": message,
        **extra,
    }


def _use(call_id: str, name: str = "Bash", **arguments) -> dict:
    return {"type": "tool_use", "id": call_id, "name": name, "input": arguments or {"command": call_id}}


def _result(call_id: str, text: str, **extra) -> dict:
    return {"type": "tool_result", "tool_use_id": call_id, "content": text, **extra}


def test_claude_parallel_results_in_sibling_records_all_stay(tmp_path):
    records = [
        _cc("u1", None, "user", "run three things"),
        _cc("a1", "u1", "assistant", [_use("t1")], message_id="m1"),
        _cc("a2", "a1", "assistant", [_use("t2")], message_id="m1"),
        _cc("a3", "a2", "assistant", [_use("t3")], message_id="m1"),
        _cc("r1", "a1", "user", [_result("t1", "one")]),
        _cc("r2", "a2", "user", [_result("t2", "two", is_error=True)]),
        _cc("r3", "a3", "user", [_result("t3", "three")]),
        _cc("a4", "r3", "assistant", [{"type": "text", "text": "done"}]),
    ]
    (row,), report = _load(_write(tmp_path / "s.jsonl", records))
    assert _call_ids(row) == ["t1", "t2", "t3"] and _result_ids(row) == ["t1", "t2", "t3"]
    assert [m.is_error for m in row.messages if m.role == "tool"] == [None, True, None]
    assert row.messages[-1].content == "done" and not report.left_out


def test_claude_parent_written_after_child_keeps_every_turn(tmp_path):
    records = [
        _cc("u1", None, "user", "first"),
        _cc("a2", "u2", "assistant", [{"type": "text", "text": "second answer"}]),  # its parent comes later
        _cc("a1", "u1", "assistant", [{"type": "text", "text": "first answer"}]),
        _cc("u2", "a1", "user", "second"),
    ]
    (row,), _ = _load(_write(tmp_path / "s.jsonl", records))
    assert _texts(row, "user") == ["first", "second"]
    assert _texts(row, "assistant") == ["first answer", "second answer"]


def test_claude_api_errors_and_resume_filler_are_never_targets(tmp_path):
    records = [
        _cc("u1", None, "user", "hello"),
        _cc(
            "e1",
            "u1",
            "assistant",
            [{"type": "text", "text": "API Error: 529 overloaded"}],
            isApiErrorMessage=True,
            model="<synthetic>",
        ),
        _cc("u2", "e1", "user", "try again"),
        _cc("a1", "u2", "assistant", [{"type": "text", "text": "hi"}]),
        _cc("m1", "a1", "user", "Continue from where you left off.", isMeta=True),
        _cc("f1", "m1", "assistant", [{"type": "text", "text": "No response requested."}], model="<synthetic>"),
        _cc("u3", "f1", "user", "bye"),
        _cc("a2", "u3", "assistant", [{"type": "text", "text": "goodbye"}]),
    ]
    (row,), report = _load(_write(tmp_path / "s.jsonl", records))
    assert _texts(row, "assistant") == ["hi", "goodbye"]
    assert report.left_out == {"API error turn (synthetic)": 1, "resume filler (synthetic)": 1}
    assert row.metadata["models"] == ["claude-x"]


def test_claude_compaction_makes_one_row_per_context(tmp_path):
    summary = "This session is being continued from a previous conversation. Summary: we said hi."
    records = [
        _cc("u1", None, "user", "first prompt"),
        _cc("a1", "u1", "assistant", [{"type": "text", "text": "answer one"}]),
        _cc("u2", "a1", "user", "second prompt"),
        _cc("a2", "u2", "assistant", [{"type": "text", "text": "answer two"}]),
        _cc("c1", "a2", "user", "<command-name>/compact</command-name>\n<command-message>compact</command-message>"),
        {
            "type": "system",
            "subtype": "compact_boundary",
            "uuid": "b1",
            "parentUuid": None,
            "logicalParentUuid": "c1",
            "sessionId": "s1",
            "content": "Conversation compacted",
        },
        _cc("s1", "b1", "user", summary, isCompactSummary=True),
        _cc("o1", "s1", "user", "<local-command-stdout>Compacted </local-command-stdout>"),
        _cc("u3", "o1", "user", "third prompt"),
        _cc("a3", "u3", "assistant", [{"type": "text", "text": "answer three"}]),
    ]
    rows, report = _load(_write(tmp_path / "s.jsonl", records))
    before, after = rows
    assert _texts(before, "user") == ["first prompt", "second prompt"]
    # the local command's output is context the model was sent (as Claude Code's own requests show)
    assert _texts(after, "developer") == [summary, "<local-command-stdout>Compacted </local-command-stdout>"]
    assert _texts(after, "user") == ["third prompt"] and _texts(after, "assistant") == ["answer three"]
    assert [r.metadata["context_index"] for r in rows] == [0, 1] and after.metadata["compacted"]
    assert report.left_out["unanswered message at the end"] == 1  # the /compact command ends the first context


def test_claude_shell_commands_are_user_context(tmp_path):
    records = [
        _cc("u1", None, "user", "hello"),
        _cc("a1", "u1", "assistant", [{"type": "text", "text": "hi"}]),
        _cc("b1", "a1", "user", "<bash-input>ls</bash-input>"),
        _cc("b2", "b1", "user", "<bash-stdout>a.txt</bash-stdout><bash-stderr></bash-stderr>"),
    ]
    (row,), report = _load(_write(tmp_path / "s.jsonl", records))
    assert _texts(row, "assistant") == ["hi"]  # the session ended on the shell command: nothing answered it
    assert report.left_out["unanswered message at the end"] == 2


def test_claude_sidechains_become_linked_rows(tmp_path):
    records = [
        _cc("u1", None, "user", "look around"),
        _cc("a1", "u1", "assistant", [_use("task1", "Task", prompt="List the files", subagent_type="general")]),
        _cc("x1", None, "user", "List the files", isSidechain=True),
        _cc("x2", "x1", "assistant", [_use("t9", "Bash", command="ls")], isSidechain=True),
        _cc("x3", "x2", "user", [_result("t9", "a.txt")], isSidechain=True),
        _cc("x4", "x3", "assistant", [{"type": "text", "text": "One file."}], isSidechain=True),
        _cc("r1", "a1", "user", [_result("task1", "One file.")]),
        _cc("a2", "r1", "assistant", [{"type": "text", "text": "There is one file."}]),
    ]
    main, sub = _load(_write(tmp_path / "s.jsonl", records))[0]
    assert _result_ids(main) == ["task1"] and main.messages[-1].content == "There is one file."
    assert sub.prompt == "List the files" and _call_ids(sub) == ["t9"] and sub.messages[-1].content == "One file."
    assert sub.metadata["parent_session_id"] == "s1" and sub.metadata["parent_tool_call_id"] == "task1"
    assert sub.metadata["sub_agent_type"] == "general"


def test_claude_sub_agent_files_link_to_their_parent_and_meta_is_no_trace(tmp_path):
    session = tmp_path / "proj" / "s1.jsonl"
    _write(
        session,
        [
            _cc("u1", None, "user", "look around"),
            _cc("a1", "u1", "assistant", [_use("call_A", "Agent", prompt="Count files", subagent_type="Explore")]),
            {**_cc("r1", "a1", "user", [_result("call_A", "3 files")]), "toolUseResult": {"agentId": "abc"}},
            _cc("a2", "r1", "assistant", [{"type": "text", "text": "Three."}]),
        ],
    )
    agent = tmp_path / "proj" / "s1" / "subagents" / "agent-abc.jsonl"
    _write(
        agent,
        [
            _cc("y1", None, "user", "Count files", isSidechain=True, agentId="abc"),
            _cc("y2", "y1", "assistant", [{"type": "text", "text": "3 files"}], isSidechain=True, agentId="abc"),
        ],
    )
    agent.with_suffix(".meta.json").write_text(json.dumps({"agentType": "Explore"}))
    rows, report = _load(tmp_path / "proj")
    assert not report.problems
    sub = next(r for r in rows if r.metadata.get("sub_agent"))
    assert sub.metadata["parent_tool_call_id"] == "call_A" and sub.metadata["agent_id"] == "abc"
    assert sub.metadata["sub_agent_meta"] == {"agentType": "Explore"}


def test_claude_2_0_agent_files_beside_the_session_link_to_it(tmp_path):
    session = _write(
        tmp_path / "s1.jsonl",
        [
            _cc("u1", None, "user", "look around"),
            _cc("a1", "u1", "assistant", [_use("call_T", "Task", prompt="Count files", subagent_type="general")]),
            _cc("r1", "a1", "user", [_result("call_T", "3 files")]),
            _cc("a2", "r1", "assistant", [{"type": "text", "text": "Three."}]),
        ],
    )
    _write(
        tmp_path / "agent-7f3a.jsonl",
        [
            _cc("y1", None, "user", "Count files", isSidechain=True, agentId="7f3a"),
            _cc("y2", "y1", "assistant", [{"type": "text", "text": "3 files"}], isSidechain=True, agentId="7f3a"),
        ],
    )
    rows, _ = _load(tmp_path)
    (sub,) = [r for r in rows if r.metadata.get("sub_agent")]
    assert sub.metadata["parent_tool_call_id"] == "call_T" and sub.metadata["parent_session_id"] == "s1"
    assert session.exists()


def test_claude_abandoned_branch_is_counted(tmp_path):
    records = [
        _cc("u1", None, "user", "first"),
        _cc("a1", "u1", "assistant", [{"type": "text", "text": "old answer"}]),
        _cc("a1b", "u1", "assistant", [{"type": "text", "text": "new answer"}]),  # a rewind and retry
    ]
    (row,), report = _load(_write(tmp_path / "s.jsonl", records))
    assert _texts(row, "assistant") == ["new answer"] and report.left_out["abandoned branch"] == 1


# --- Codex -------------------------------------------------------------------------------------


def _cx(kind: str, payload: dict) -> dict:
    return {"timestamp": "2025-09-01T00:00:00Z", "type": kind, "payload": payload}


def _item(payload: dict) -> dict:
    return _cx("response_item", payload)


def _msg(role: str, text: str) -> dict:
    kind = "output_text" if role == "assistant" else "input_text"
    return {"type": "message", "role": role, "content": [{"type": kind, "text": text}]}


def test_codex_interrupted_call_gets_codex_aborted_output_and_models_are_kept(tmp_path):
    records = [
        _cx("session_meta", {"id": "c1", "cli_version": "0.40.0", "base_instructions": {"text": "You are Codex."}}),
        _cx("turn_context", {"model": "gpt-5"}),
        _item(_msg("user", "sleep")),
        _item({"type": "function_call", "name": "shell", "arguments": '{"command":["sleep","99"]}', "call_id": "k1"}),
        _cx("turn_context", {"model": "gpt-5-codex"}),
        _item(_msg("user", "never mind, search")),
        _item(
            {
                "type": "web_search_call",
                "id": "ws1",
                "status": "completed",
                "action": {"type": "search", "query": "teich"},
            }
        ),
        _item(_msg("assistant", "found it")),
    ]
    (row,), report = _load(_write(tmp_path / "rollout.jsonl", records))
    tool = next(m for m in row.messages if m.role == "tool")
    assert tool.tool_call_id == "k1" and tool.content == "aborted"
    assert row.messages[[m.role for m in row.messages].index("tool") + 1].content == "never mind, search"
    search = row.messages[-1].tool_calls[0]
    assert search.function.name == "web_search" and search.function.arguments["query"] == "teich"
    assert row.metadata["models"] == ["gpt-5", "gpt-5-codex"]
    assert report.left_out["interrupted tool call (given Codex's 'aborted' output)"] == 1


def test_codex_legacy_layout_without_payload_wrapper(tmp_path):
    records = [
        {"id": "old-1", "timestamp": "2025-06-01T00:00:00Z", "instructions": "Be brief.", "git": {}},
        {"record_type": "state"},
        _msg("user", "hi"),
        {"type": "reasoning", "id": "r", "summary": [{"type": "summary_text", "text": "think"}]},
        {"type": "function_call", "name": "shell", "arguments": '{"command":["ls"]}', "call_id": "c"},
        {"type": "function_call_output", "call_id": "c", "output": json.dumps({"output": "a", "metadata": {}})},
        _msg("assistant", "one file"),
    ]
    path = _write(tmp_path / "rollout-2025-06-01.jsonl", records)
    assert detect_trace_type(records) == "codex"
    (row,), _ = _load(path)
    assert row.system == "Be brief." and row.metadata["session_id"] == "old-1"
    assert [m.role for m in row.messages] == ["system", "user", "assistant", "tool", "assistant"]
    assert row.messages[2].reasoning_content == "think"


def test_codex_compaction_starts_a_new_context(tmp_path):
    records = [
        _cx("session_meta", {"id": "c2", "base_instructions": {"text": "SYS"}}),
        _item(_msg("user", "<environment_context>cwd</environment_context>")),
        _item(_msg("user", "task one")),
        _item(_msg("assistant", "did one")),
        _cx("compacted", {"message": "Summary: did one."}),
        _item(_msg("user", "task two")),
        _item(_msg("assistant", "did two")),
    ]
    first, second = _load(_write(tmp_path / "r.jsonl", records))[0]
    assert _texts(first, "user") == ["task one"] and _texts(first, "assistant") == ["did one"]
    assert [m.role for m in second.messages] == ["system", "developer", "user", "user", "assistant"]
    assert _texts(second, "user") == ["Summary: did one.", "task two"]


# --- Pi ----------------------------------------------------------------------------------------


def _pi_msg(entry_id, parent, message: dict) -> dict:
    return {"type": "message", "id": entry_id, "parentId": parent, "message": message}


def test_pi_v1_session_without_ids(tmp_path):
    records = [
        {"type": "session", "id": "p1", "timestamp": "2025-08-01T00:00:00Z", "cwd": "/w"},
        {"type": "message", "message": {"role": "user", "content": [{"type": "text", "text": "hi"}]}},
        {
            "type": "message",
            "message": {
                "role": "assistant",
                "content": [{"type": "text", "text": "hello"}],
                "model": "m1",
                "provider": "p",
            },
        },
    ]
    (row,), _ = _load(_write(tmp_path / "v1.jsonl", records))
    assert row.prompt == "hi" and row.messages[-1].content == "hello" and row.metadata["format_version"] == 1


def test_pi_shell_commands_compaction_and_omitted_images(tmp_path):
    image = {"type": "image", "data": "AAAA", "mimeType": "image/png"}
    note = (
        "Read image file [image/png]\n"
        "[Current model does not support images. The image will be omitted from this request.]"
    )
    records = [
        {"type": "session", "version": 3, "id": "p2", "cwd": "/w"},
        _pi_msg("1", None, {"role": "user", "content": [{"type": "text", "text": "look"}]}),
        _pi_msg(
            "2",
            "1",
            {
                "role": "assistant",
                "content": [{"type": "toolCall", "id": "r1", "name": "read", "arguments": {"path": "a.png"}}],
            },
        ),
        _pi_msg(
            "3",
            "2",
            {
                "role": "toolResult",
                "toolCallId": "r1",
                "toolName": "read",
                "content": [{"type": "text", "text": note}, image, image],
                "isError": False,
            },
        ),
        _pi_msg("4", "3", {"role": "assistant", "content": [{"type": "text", "text": "cannot see it"}]}),
        _pi_msg("5", "4", {"role": "bashExecution", "command": "ls", "output": "a.png", "exitCode": 2}),
        _pi_msg("6", "5", {"role": "bashExecution", "command": "secret", "output": "x", "excludeFromContext": True}),
        {"type": "compaction", "id": "7", "parentId": "6", "summary": "We looked at a.png.", "firstKeptEntryId": "4"},
        _pi_msg("8", "7", {"role": "user", "content": [{"type": "text", "text": "again"}]}),
        _pi_msg("9", "8", {"role": "assistant", "content": [{"type": "text", "text": "ok"}]}),
    ]
    (first, second), report = _load(_write(tmp_path / "v3.jsonl", records))
    tool = next(m for m in first.messages if m.role == "tool")
    assert tool.content == note + "\n(tool image omitted: model does not support images)"
    assert first.messages[-1].content == "cannot see it"
    assert second.messages[0].content.startswith("The conversation history before this point was compacted")
    assert "We looked at a.png." in second.messages[0].content
    # kept from entry 4 on: the answer, the shell command as the model saw it, then the new turn
    assert [m.role for m in second.messages] == ["developer", "assistant", "user", "user", "assistant"]
    assert second.messages[2].content == "Ran `ls`\n```\na.png\n```\n\nCommand exited with code 2"
    assert report.left_out["! command kept out of the context (!!)"] == 2  # once per context it appears in


def test_pi_session_ending_in_compaction_keeps_the_context_before(tmp_path):
    records = [
        {"type": "session", "version": 3, "id": "p3", "cwd": "/w"},
        _pi_msg("1", None, {"role": "user", "content": "q"}),
        _pi_msg("2", "1", {"role": "assistant", "content": [{"type": "text", "text": "a"}]}),
        {"type": "compaction", "id": "3", "parentId": "2", "summary": "s", "firstKeptEntryId": "2"},
    ]
    rows, report = _load(_write(tmp_path / "v3.jsonl", records))
    assert len(rows) == 1 and rows[0].messages[-1].content == "a"


# --- Inputs: compression, duplicates, the registry ----------------------------------------------


def test_gzip_and_zstd_sessions_read_as_streams(tmp_path, shared_traces):
    raw = (shared_traces / "codex.jsonl").read_bytes()
    (tmp_path / "a.jsonl.gz").write_bytes(gzip.compress(raw))
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "c.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(raw))
    (tmp_path / "d.jsonl.zst").write_bytes(b"not zstd at all")
    rows, report = _load(tmp_path)
    (plain,), _ = _load(shared_traces / "codex.jsonl")
    assert len(rows) == 1 and rows[0].messages == plain.messages  # the copy is the same session: loaded once
    assert report.dropped["same session already loaded from another file"] == 1
    assert [p.path.endswith("d.jsonl.zst") for p in report.problems] == [True]


def test_a_new_format_is_one_module(tmp_path, monkeypatch):
    package = tmp_path / "plugin_formats"
    package.mkdir()
    (package / "toy.py").write_text(
        textwrap.dedent("""
        from teich.traces.conversation import Conversation
        from teich.traces.protocol import Converted, TraceFormat

        class Toy(TraceFormat):
            name = "toy"
            priority = 1

            def matches(self, records):
                return bool(records) and "toy_said" in records[0]

            def convert(self, records, path=None):
                conversation = Conversation()
                conversation.add("user", records[0]["toy_heard"])
                conversation.assistant(text=records[0]["toy_said"])
                return conversation.finish(self.name)

        FORMAT = Toy()
    """)
    )
    from teich.traces import formats

    monkeypatch.setattr(formats, "__path__", [*formats.__path__, str(package)])
    protocol.FORMATS.refresh()
    try:
        path = _write(tmp_path / "t.jsonl", [{"toy_heard": "ping", "toy_said": "pong"}])
        (row,), _ = _load(path)
        assert row.metadata["trace_type"] == "toy" and row.messages[-1].content == "pong"
    finally:
        monkeypatch.undo()
        protocol.FORMATS.refresh()
        sys.modules.pop("teich.traces.formats.toy", None)


def test_hermes_failures_are_marked_and_offered_tools_come_from_its_catalog():
    path = TESTS_DATA / "recorded" / "hermes" / "reasoning-tool-error.jsonl"
    raw = json.loads(path.read_text().splitlines()[0])
    results = [json.loads(m["content"]) for m in raw["messages"] if m["role"] == "tool"]
    (row,), _ = _load(path)
    # both results report a failure in their own JSON (exit code 1, a "File not found" error)
    assert (
        [m.is_error for m in row.messages if m.role == "tool"]
        == [bool(r.get("exit_code") or r.get("error")) for r in results]
        == [True, True]
    )
    catalog = json.loads((SRC_CATALOGS / "hermes.json").read_text())["entries"][-1]["tools"]
    assert row.metadata["tool_schema_source"] == "catalog" and row.tools == catalog
