"""Damaged and unusable inputs: each is reported on one line naming the file (and line), the rest
of the input still converts, and the CLI never shows a traceback or overwrites output for nothing."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from teich import TeichError, TrainingExample, load_traces, prepare_data
from teich.cli import app

BIG = 50 * 1024 * 1024
GOOD_ROWS = 2  # rows in the separate good file every mixed test adds
SENTINEL = '{"already": "here"}\n'


def openai_row(n: int = 0) -> dict:
    return {
        "messages": [
            {"role": "user", "content": f"question {n}"},
            {"role": "assistant", "content": f"answer {n}"},
        ]
    }


def row_line(n: int = 0) -> bytes:
    return json.dumps(openai_row(n)).encode() + b"\n"


def good_lines(count: int, start: int = 100) -> bytes:
    return b"".join(row_line(start + i) for i in range(count))


@dataclass
class Case:
    """A bad input, where its problem is reported, and how many good rows it still holds."""

    path: Path
    line: int | None
    message: str
    rows: int = 0


def truncated(folder: Path, good: int) -> Case:
    path = folder / "truncated.jsonl"
    path.write_bytes(good_lines(good) + b'{"messages": [{"role": "user", "content": "cut o')
    return Case(path, good + 1, "truncated JSON", good)


def malformed_middle(folder: Path, good: int) -> Case:
    path = folder / "malformed.jsonl"
    before, after = good // 2, good - good // 2
    path.write_bytes(good_lines(before) + b'{"messages": [1,, 2]}\n' + good_lines(after, 200))
    return Case(path, before + 1, "malformed JSON", good)


def unknown_format(folder: Path, good: int) -> Case:
    path = folder / "unknown.jsonl"
    path.write_text('{"event": "start", "when": 1}\n{"event": "stop", "when": 2}\n')
    return Case(path, None, "unknown trace format")


def empty_folder(folder: Path, good: int) -> Case:
    path = folder / "empty_folder"
    path.mkdir()
    return Case(path, None, "no trace files")


def empty_file(folder: Path, good: int) -> Case:
    path = folder / "empty.jsonl"
    path.write_bytes(b"")
    return Case(path, None, "empty file")


def binary_file(folder: Path, good: int) -> Case:
    path = folder / "binary.jsonl"
    path.write_bytes(bytes(range(256)) * 64)
    return Case(path, None, "binary file")


def huge_garbage_line(folder: Path, good: int) -> Case:
    path = folder / "garbage.jsonl"
    with path.open("wb") as out:
        out.write(good_lines(good))
        out.write(b"@" * BIG + b"\n")
    return Case(path, good + 1, "malformed JSON", good)


def invalid_utf8(folder: Path, good: int) -> Case:
    path = folder / "latin1.jsonl"
    before, after = good // 2, good - good // 2
    bad = '{"messages": [{"role": "user", "content": "caf\u00e9"}]}\n'.encode("latin-1")
    path.write_bytes(good_lines(before) + bad + good_lines(after, 200))
    return Case(path, before + 1, "invalid UTF-8", good)


def not_an_object(folder: Path, good: int) -> Case:
    path = folder / "list_line.jsonl"
    path.write_bytes(b'["user", "assistant"]\n' + good_lines(good))
    return Case(path, 1, "expected a JSON object", good)


def missing_path(folder: Path, good: int) -> Case:
    return Case(folder / "does_not_exist.jsonl", None, "no such file or folder")


def broken_record(folder: Path, good: int) -> Case:
    path = folder / "broken.jsonl"
    row = {
        "messages": [
            {"role": "user", "content": "run it"},
            {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {"arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "done"},
            {"role": "assistant", "content": "ok"},
        ]
    }
    path.write_bytes(good_lines(good) + json.dumps(row).encode() + b"\n")
    return Case(path, good + 1, "unusable openai row: 'messages[1].tool_calls[0]' is a tool call without a name", good)


KINDS: dict[str, Callable[[Path, int], Case]] = {
    "truncated": truncated,
    "malformed_middle": malformed_middle,
    "unknown_format": unknown_format,
    "empty_folder": empty_folder,
    "empty_file": empty_file,
    "binary_file": binary_file,
    "huge_garbage_line": huge_garbage_line,
    "invalid_utf8": invalid_utf8,
    "not_an_object": not_an_object,
    "missing_path": missing_path,
    "broken_record": broken_record,
}
# load_traces drops an unconvertible row (counted in report.dropped) rather than raising.
RAISES_ALONE = [kind for kind in KINDS if kind != "broken_record"]


def build(kind: str, tmp_path: Path, good: int, folder: str = "bad") -> Case:
    """The bad input of ``kind``, alone in its own folder under ``tmp_path``."""
    (tmp_path / folder).mkdir()
    return KINDS[kind](tmp_path / folder, good)


def good_file(tmp_path: Path) -> Path:
    path = tmp_path / "good" / "good.jsonl"
    path.parent.mkdir()
    path.write_bytes(good_lines(GOOD_ROWS, 0))
    return path


def where(case: Case) -> str:
    return f"{case.path}:{case.line}: " if case.line else f"{case.path}: "


def assert_one_problem(problems: list, case: Case) -> None:
    (problem,) = problems
    assert problem.path == str(case.path)
    assert problem.line == case.line
    text = str(problem)
    assert "\n" not in text
    assert text.startswith(where(case))
    assert case.message in text
    assert len(text) < 1000


def assert_one_line_naming(output: str, case: Case) -> None:
    """Exactly one output line names the bad input (with its line number), and says what is wrong."""
    lines = [line for line in output.splitlines() if str(case.path) in line]
    assert len(lines) == 1, output
    assert where(case) in lines[0]
    assert case.message in lines[0]


def run_cli(*args: str | Path) -> Result:
    """``teich convert ARGS`` in-process; it must end by exiting, never by an exception."""
    result = CliRunner().invoke(app, ["convert", *map(str, args)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    return result


def output_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("kind", KINDS)
def test_load_skips_bad_input_and_keeps_the_rest(kind: str, tmp_path: Path) -> None:
    case = build(kind, tmp_path, good=2)
    dataset, report = load_traces([good_file(tmp_path), case.path], return_report=True)
    assert len(dataset) == GOOD_ROWS + case.rows
    assert report.rows == GOOD_ROWS + case.rows
    assert_one_problem(report.problems, case)
    prompts = [TrainingExample.from_record(row).prompt for row in dataset]
    assert prompts[:GOOD_ROWS] == ["question 0", "question 1"]
    assert all(p.startswith("question ") for p in prompts)


@pytest.mark.parametrize("kind", RAISES_ALONE)
def test_load_fails_with_one_line_when_nothing_is_readable(kind: str, tmp_path: Path) -> None:
    case = build(kind, tmp_path, good=0)
    with pytest.raises(TeichError) as raised:
        load_traces(case.path, return_report=True)
    message = str(raised.value)
    assert "\n" not in message
    assert where(case) in message
    assert case.message in message


def test_load_reports_a_lone_unconvertible_record(tmp_path: Path) -> None:
    case = build("broken_record", tmp_path, good=0)
    dataset, report = load_traces(case.path, return_report=True)
    assert len(dataset) == 0
    assert report.dropped == {"unconvertible": 1}
    assert_one_problem(report.problems, case)
    assert "Error" not in report.problems[0].message


@pytest.mark.parametrize("kind", KINDS)
def test_cli_skips_bad_input_and_exits_zero(kind: str, tmp_path: Path) -> None:
    case = build(kind, tmp_path, good=2)
    out = tmp_path / "out.jsonl"
    out.write_text(SENTINEL)
    result = run_cli(good_file(tmp_path), case.path, "--out", out)
    assert result.exit_code == 0, result.output
    assert len(output_rows(out)) == GOOD_ROWS + case.rows
    assert_one_line_naming(result.stderr, case)
    assert f"wrote {GOOD_ROWS + case.rows} rows" in result.stderr
    assert len(result.output) < 5000  # the damaged input is never echoed


@pytest.mark.parametrize("kind", KINDS)
def test_cli_fails_and_keeps_existing_output_when_nothing_converts(kind: str, tmp_path: Path) -> None:
    case = build(kind, tmp_path, good=0)
    out = tmp_path / "out.jsonl"
    out.write_text(SENTINEL)
    result = run_cli(case.path, "--out", out)
    assert result.exit_code != 0
    assert out.read_text() == SENTINEL
    assert_one_line_naming(result.stderr, case)
    assert "error:" in result.stderr
    assert len(result.output) < 5000
    assert not list(tmp_path.glob(".out.jsonl.*"))  # no temporary file left behind


def test_cli_creates_no_output_file_when_nothing_converts(tmp_path: Path) -> None:
    case = build("truncated", tmp_path, good=0)
    out = tmp_path / "new" / "out.jsonl"
    result = run_cli(case.path, "--out", out)
    assert result.exit_code == 1
    assert not out.exists()


def test_folder_of_mixed_inputs_keeps_every_good_row(tmp_path: Path) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    good = good_file(tmp_path)
    small = [k for k in KINDS if k not in ("huge_garbage_line", "missing_path", "empty_folder")]
    cases = [KINDS[kind](folder, 2) for kind in small]
    dataset, report = load_traces([good, folder], return_report=True)
    expected = GOOD_ROWS + sum(c.rows for c in cases)
    assert len(dataset) == expected == report.rows
    assert report.files == 1 + len(cases)
    for case in cases:
        assert_one_problem([p for p in report.problems if p.path == str(case.path)], case)
    assert len(report.problems) == len(cases)


def test_huge_valid_line_converts(tmp_path: Path) -> None:
    text = "r\u00e9sum\u00e9 " * (BIG // 8)
    row = {"messages": [{"role": "user", "content": text}, {"role": "assistant", "content": "short"}]}
    path = tmp_path / "huge.jsonl"
    path.write_text(json.dumps(row, ensure_ascii=False) + "\n" + json.dumps(openai_row(1)) + "\n", encoding="utf-8")
    assert path.stat().st_size > BIG

    dataset, report = load_traces(path, return_report=True)
    assert len(dataset) == 2 and not report.problems
    example = TrainingExample.from_record(dataset[0])
    assert example.messages[0].content == text and example.prompt == text

    out = tmp_path / "out.jsonl"
    result = run_cli(path, "--out", out)
    assert result.exit_code == 0, result.output
    rows = output_rows(out)
    assert len(rows) == 2
    assert rows[0]["messages"][0]["content"] == text


def test_cli_names_files_with_markup_like_brackets(tmp_path: Path) -> None:
    bad = tmp_path / "session[draft].jsonl"
    bad.write_bytes(row_line(1) + b"{not json}\n")
    missing = tmp_path / "run[/red]" / "missing.jsonl"
    out = tmp_path / "out.jsonl"
    result = run_cli(bad, missing, "--out", out)
    assert result.exit_code == 0, result.output
    assert_one_line_naming(result.stderr, Case(bad, 2, "malformed JSON"))
    assert_one_line_naming(result.stderr, Case(missing, None, "no such file or folder"))
    assert len(output_rows(out)) == 1


def run_subprocess(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "60", "NO_COLOR": "1"}
    command = [sys.executable, "-m", "teich", "convert", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=cwd, timeout=120)


def test_subprocess_reports_bad_inputs_without_traceback(tmp_path: Path) -> None:
    cases = [build(kind, tmp_path, good=2, folder=kind) for kind in KINDS if kind != "huge_garbage_line"]
    out = tmp_path / "out.jsonl"
    out.write_text(SENTINEL)
    done = run_subprocess(good_file(tmp_path), *(c.path for c in cases), "--out", out, cwd=tmp_path)
    assert "Traceback" not in done.stderr + done.stdout
    assert done.returncode == 0, done.stderr
    assert len(output_rows(out)) == GOOD_ROWS + sum(c.rows for c in cases)
    for case in cases:
        assert_one_line_naming(done.stderr, case)


def test_subprocess_fails_cleanly_when_nothing_converts(tmp_path: Path) -> None:
    cases = [build(kind, tmp_path, good=0, folder=kind) for kind in RAISES_ALONE if kind != "huge_garbage_line"]
    out = tmp_path / "out.jsonl"
    out.write_text(SENTINEL)
    done = run_subprocess(*(c.path for c in cases), "--out", out, cwd=tmp_path)
    assert "Traceback" not in done.stderr + done.stdout
    assert done.returncode != 0
    assert out.read_text() == SENTINEL
    assert "no rows could be converted" in done.stderr
    for case in cases:
        assert_one_line_naming(done.stderr, case)


# Damage inside records (issue 11): each is reported on one line naming its file and line, in words
# rather than as a Python exception, and costs only the record it is in.

PYTHON_ERROR = re.compile(r"\b[A-Z]\w*(?:Error|Exception)\b")
DEEP = {"past the depth limit": 150, "past Python's recursion limit": 5000}


def deep_line(depth: int) -> bytes:
    return b'{"messages": ' + b"[" * depth + b"]" * depth + b"}\n"


def write_lines(path: Path, records: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def assert_clear(problems: list, path: Path) -> None:
    for problem in problems:
        text = str(problem)
        assert "\n" not in text and text.startswith(str(path)), text
        assert not PYTHON_ERROR.search(text), text


@pytest.mark.parametrize("depth", DEEP.values(), ids=DEEP)
def test_deeply_nested_line_is_skipped_alone(depth: int, tmp_path: Path) -> None:
    path = tmp_path / "deep.jsonl"
    path.write_bytes(row_line(1) + deep_line(depth) + row_line(2))
    dataset, report = load_traces(path, return_report=True)
    assert len(dataset) == 2
    assert_one_problem(report.problems, Case(path, 2, "JSON nested deeper than 100 levels"))
    result = run_cli(path, "--out", tmp_path / "out.jsonl")
    assert result.exit_code == 0 and len(output_rows(tmp_path / "out.jsonl")) == 2


@pytest.mark.parametrize("depth", DEEP.values(), ids=DEEP)
def test_deeply_nested_document_is_reported(depth: int, tmp_path: Path) -> None:
    path = tmp_path / "deep.json"
    path.write_bytes(deep_line(depth))
    with pytest.raises(TeichError, match=f"{path}: JSON nested deeper than 100 levels"):
        load_traces(path)


def test_deeply_nested_row_object_is_reported(tmp_path: Path) -> None:
    nested: list = []
    for _ in range(150):
        nested = [nested]
    rows = [openai_row(1), {"messages": [{"role": "user", "content": "q"}], "tools": nested}]
    dataset, report = load_traces(rows, return_report=True)
    assert len(dataset) == 1
    assert [(p.line, p.message) for p in report.problems] == [(2, "JSON nested deeper than 100 levels")]


SURROGATES = {
    "escaped in JSON": b'{"messages": [{"role": "user", "content": "bad \\ud800 char"}, '
    b'{"role": "assistant", "content": "ok \\udfff"}]}\n',
    "raw UTF-8 bytes": b'{"messages": [{"role": "user", "content": "bad \xed\xa0\x80 char"}, '
    b'{"role": "assistant", "content": "ok \xed\xbf\xbf"}]}\n',
}


@pytest.mark.parametrize("line", SURROGATES.values(), ids=SURROGATES)
@pytest.mark.parametrize("suffix", [".jsonl", ".json"])
def test_lone_surrogates_are_replaced_and_noted(line: bytes, suffix: str, tmp_path: Path) -> None:
    path = tmp_path / f"surrogates{suffix}"
    path.write_bytes(line)
    dataset, report = load_traces(path, return_report=True)
    (row,) = [TrainingExample.from_record(r) for r in dataset]
    assert [m.content for m in row.messages] == ["bad \ufffd char", "ok \ufffd"]
    assert not report.problems
    (repair,) = report.repairs
    assert str(repair) == f"{path}{':1' if suffix == '.jsonl' else ''}: 2 lone UTF-16 surrogate(s) replaced by U+FFFD"
    assert "1 records repaired" in report.summary()
    out = tmp_path / "out.jsonl"
    result = run_cli(path, "--out", out)
    assert result.exit_code == 0
    assert f"repaired {repair}" in result.stderr
    assert output_rows(out)[0]["messages"][0]["content"] == "bad \ufffd char"


def test_lone_surrogates_in_row_dicts_are_replaced(tmp_path: Path) -> None:
    row = {"messages": [{"role": "user", "content": "x\ud800"}, {"role": "assistant", "content": "y"}]}
    dataset, report = load_traces([row], return_report=True)
    assert TrainingExample.from_record(dataset[0]).messages[0].content == "x\ufffd"
    assert [(p.line, p.message) for p in report.repairs] == [(1, "1 lone UTF-16 surrogate(s) replaced by U+FFFD")]


@pytest.fixture(scope="module")
def tokenizer():
    from model_families import family_tokenizer

    return family_tokenizer("qwen3")


@pytest.mark.parametrize("line", SURROGATES.values(), ids=SURROGATES)
def test_prepare_data_never_meets_a_surrogate(line: bytes, tokenizer, tmp_path: Path) -> None:
    path = tmp_path / "surrogates.jsonl"
    path.write_bytes(line)
    dataset, report = prepare_data(path, tokenizer, return_report=True)
    assert "bad \ufffd char" in dataset[0]["text"]
    assert len(report.load.repairs) == 1


# Small sessions of each native format, two turns each; the record at DAMAGE[format] holds the
# first assistant turn's tool call, its damage is checked below.
def _claude(kind: str, uuid: str, parent: str | None, content, **extra) -> dict:
    message = {"role": kind, "content": content, **({"id": f"msg-{uuid}", "model": "m"} if kind == "assistant" else {})}
    return {"type": kind, "uuid": uuid, "parentUuid": parent, "sessionId": "s1", "message": message, **extra}


def _pi(entry_id: str, parent: str | None, role: str, content, **extra) -> dict:
    return {
        "type": "message",
        "id": entry_id,
        "parentId": parent,
        "message": {"role": role, "content": content, **extra},
    }


def _codex(kind: str, **payload) -> dict:
    return {"timestamp": "2026-01-01T00:00:00Z", "type": "response_item", "payload": {"type": kind, **payload}}


SESSIONS = {
    "claude_code": [
        _claude("user", "u1", None, "list files"),
        _claude("assistant", "a1", "u1", [{"type": "tool_use", "id": "t1", "name": "Bash", "input": {"cmd": "ls"}}]),
        _claude("user", "u2", "a1", [{"type": "tool_result", "tool_use_id": "t1", "content": "a.txt"}]),
        _claude("assistant", "a2", "u2", [{"type": "text", "text": "one file"}]),
        _claude("user", "u3", "a2", "thanks"),
        _claude("assistant", "a3", "u3", [{"type": "text", "text": "welcome"}]),
    ],
    "pi": [
        {"type": "session", "version": 3, "id": "s1", "cwd": "/w"},
        _pi("1", None, "user", [{"type": "text", "text": "list files"}]),
        _pi("2", "1", "assistant", [{"type": "toolCall", "id": "t1", "name": "bash", "arguments": {"cmd": "ls"}}]),
        _pi("3", "2", "toolResult", [{"type": "text", "text": "a.txt"}], toolCallId="t1", toolName="bash"),
        _pi("4", "3", "assistant", [{"type": "text", "text": "one file"}]),
        _pi("5", "4", "user", "thanks"),
        _pi("6", "5", "assistant", [{"type": "text", "text": "welcome"}]),
    ],
    "droid": [
        {"type": "session_start", "id": "s1", "cwd": "/w"},
        {"type": "message", "id": "m1", "message": {"role": "user", "content": "list files"}},
        {
            "type": "message",
            "id": "m2",
            "parentId": "m1",
            "message": {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "ls", "input": {}}]},
        },
        {
            "type": "message",
            "id": "m3",
            "parentId": "m2",
            "message": {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "a.txt"}]},
        },
        {"type": "message", "id": "m4", "parentId": "m3", "message": {"role": "assistant", "content": "one file"}},
        {"type": "message", "id": "m5", "parentId": "m4", "message": {"role": "user", "content": "thanks"}},
        {"type": "message", "id": "m6", "parentId": "m5", "message": {"role": "assistant", "content": "welcome"}},
    ],
    "codex": [
        {"timestamp": "2026-01-01T00:00:00Z", "type": "session_meta", "payload": {"id": "s1", "cwd": "/w"}},
        _codex("message", role="user", content=[{"type": "input_text", "text": "list files"}]),
        _codex("function_call", name="shell", arguments='{"cmd": "ls"}', call_id="c1"),
        _codex("function_call_output", call_id="c1", output="a.txt"),
        _codex("message", role="assistant", content=[{"type": "output_text", "text": "one file"}]),
        _codex("message", role="user", content=[{"type": "input_text", "text": "thanks"}]),
        _codex("message", role="assistant", content=[{"type": "output_text", "text": "welcome"}]),
    ],
}
CALL_LINE = {"claude_code": 2, "pi": 3, "droid": 3, "codex": 3}  # 1-based line of the tool call


def session_file(tmp_path: Path, name: str, edit: Callable[[list], None] = lambda records: None) -> Path:
    records = json.loads(json.dumps(SESSIONS[name]))
    edit(records)
    return write_lines(tmp_path / f"{name}.jsonl", records)


def texts(dataset) -> list[str]:
    return [m.content or "" for row in dataset for m in TrainingExample.from_record(row).messages]


def _set_path(record: dict, path: str, value) -> None:
    *steps, last = path.split(".")
    for step in steps:
        record = record[int(step)] if isinstance(record, list) else record[step]
    record[last] = value


# (format, line, field path, bad value, message)
BAD_FIELDS = [
    ("droid", 3, "id", ["m2"], "unusable droid record: 'id' is a list, expected text or a number or null"),
    (
        "droid",
        5,
        "message.content",
        5,
        "unusable droid record: 'message.content' is a number, expected text or a list or null",
    ),
    ("droid", 3, "message.content.0.name", None, "'message.content[0]' is a tool call without a name ('name' is null)"),
    ("claude_code", 2, "message", [], "unusable claude_code record: 'message' is a list, expected an object or null"),
    ("claude_code", 4, "message.content.0.text", 3, "'message.content[0].text' is a number, expected text or null"),
    ("pi", 5, "message.content.0.text", {"x": 1}, "unusable pi record: 'message.content[0].text' is an object"),
    ("pi", 3, "parentId", [1], "unusable pi record: 'parentId' is a list"),
    ("codex", 5, "payload", [], "unusable codex record: 'payload' is a list, expected an object or null"),
    ("codex", 2, "payload.role", 7, "unusable codex record: 'payload.role' is a number, expected one of system"),
]


@pytest.mark.parametrize(("name", "line", "field", "value", "message"), BAD_FIELDS)
def test_a_bad_field_skips_its_record_and_keeps_the_session(name, line, field, value, message, tmp_path) -> None:
    path = session_file(tmp_path, name, lambda records: _set_path(records[line - 1], field, value))
    dataset, report = load_traces(path, return_report=True)
    assert len(dataset) == 1 and "welcome" in texts(dataset)
    problem = next(p for p in report.problems if p.line == line)
    assert message in problem.message, problem
    assert report.left_out["unusable record (see the input problems)"] == 1
    assert_clear(report.problems + report.repairs, path)


@pytest.mark.parametrize(("name", "key"), [("claude_code", "parentUuid"), ("pi", "parentId"), ("droid", "parentId")])
def test_a_missing_or_deleted_parent_link_keeps_every_message(name: str, key: str, tmp_path: Path) -> None:
    """A record without its link (or whose parent's line was lost) follows the record before it: no
    message goes missing unnoticed."""
    whole = texts(load_traces(session_file(tmp_path, name)))
    line = len(SESSIONS[name]) - 1  # the last user turn

    def unlink(records: list) -> None:
        del records[line - 1][key]
        if name == "droid":  # droid writes no link on a root: a link to a lost line is the damage
            records[line - 1][key] = "gone"

    path = session_file(tmp_path, name, unlink)
    dataset, report = load_traces(path, return_report=True)
    assert texts(dataset) == whole
    (repair,) = report.repairs
    assert repair.line == line and "taken to follow" in repair.message


@pytest.mark.parametrize("name", SESSIONS)
def test_arguments_that_are_not_json_are_noted(name: str, tmp_path: Path) -> None:
    key = {"claude_code": "message.content.0.input", "pi": "message.content.0.arguments"}.get(name)
    key = key or {"droid": "message.content.0.input", "codex": "payload.arguments"}[name]
    line = CALL_LINE[name]
    path = session_file(tmp_path, name, lambda records: _set_path(records[line - 1], key, "ls -la {"))
    dataset, report = load_traces(path, return_report=True)
    calls = [c for r in dataset for m in TrainingExample.from_record(r).messages for c in m.tool_calls or []]
    assert [c.function.arguments for c in calls] == [{"input": "ls -la {"}]
    (repair,) = report.repairs
    assert repair.line == line
    assert "are not a JSON object; kept as" in repair.message


@pytest.mark.parametrize("name", SESSIONS)
def test_a_result_whose_call_is_lost_is_left_out_and_named(name: str, tmp_path: Path) -> None:
    line = CALL_LINE[name]
    path = session_file(tmp_path, name, lambda records: records.pop(line - 1))
    dataset, report = load_traces(path, return_report=True)
    assert "a.txt" not in texts(dataset) and "welcome" in texts(dataset)
    (problem,) = report.problems
    assert problem.line == line  # the result's line, now where the call was
    assert "answers no call before it" in problem.message
    assert report.left_out["tool result with no call before it"] == 1


BAD_FIRST_ROWS = {
    "null messages": ({"messages": None}, "'messages' is null, expected a list"),
    "text messages": ({"messages": "hi"}, "'messages' is text, expected a list"),
    "message not an object": ({"messages": [5]}, "'messages[0]' is a number, expected an object"),
}


@pytest.mark.parametrize(("row", "message"), BAD_FIRST_ROWS.values(), ids=BAD_FIRST_ROWS)
def test_a_malformed_first_row_loses_only_itself(row: dict, message: str, tmp_path: Path) -> None:
    path = write_lines(tmp_path / "rows.jsonl", [row, openai_row(1), openai_row(2)])
    dataset, report = load_traces(path, return_report=True)
    assert len(dataset) == 2
    assert_one_problem(report.problems, Case(path, 1, f"unusable openai row: {message}"))


def orphan_row() -> dict:
    return {
        "messages": [
            {"role": "user", "content": "q"},
            {"role": "tool", "tool_call_id": "c9", "content": "stray"},
            {"role": "assistant", "content": "a"},
        ]
    }


def test_prepare_data_rejects_a_tool_result_answering_no_call(tokenizer, tmp_path: Path) -> None:
    path = write_lines(tmp_path / "rows.jsonl", [openai_row(1), orphan_row()])
    assert len(load_traces(path)) == 2  # a row dataset's rows are kept as given
    with pytest.raises(TeichError, match=r"row 1 \(.*rows.jsonl:2\): message 1: tool result 'c9' answers no call"):
        prepare_data(path, tokenizer)
    dataset, report = prepare_data(path, tokenizer, strict=False, return_report=True)
    assert len(dataset) == 1
    assert report.dropped == {1: "message 1: tool result 'c9' answers no call before it"}


def test_prepare_data_names_the_field_of_a_nameless_tool_call(tokenizer, tmp_path: Path) -> None:
    case = build("broken_record", tmp_path, good=0)
    with pytest.raises(TeichError) as raised:
        prepare_data(case.path, tokenizer)
    assert f"{case.path}:1: unusable openai row: 'messages[1].tool_calls[0]' is a tool call without a name" in str(
        raised.value
    )
    assert "KeyError" not in str(raised.value)


def test_stored_content_parts_given_as_a_list_rather_than_json_text_load(tmp_path):
    """The storage form keeps multimodal content as JSON text in ``content_parts``; a row that holds
    the parts themselves (a list) means the same thing and loads (found by the fuzz test)."""
    parts = [{"type": "text", "text": "Look:"}, {"type": "image_url", "image_url": {"url": "data:,"}}]
    row = {
        "prompt": "Look:",
        "messages": [
            {"role": "user", "content": "Look:", "content_parts": parts},
            {"role": "assistant", "content": "A picture.", "content_parts": None},
        ],
        "tools": "[]",
        "metadata": "{}",
    }
    path = tmp_path / "stored.jsonl"
    path.write_text(json.dumps(row) + "\n")
    (loaded,) = [TrainingExample.from_record(r) for r in load_traces(path)]
    assert loaded.messages[0].content == [{"type": "text", "text": "Look:"}, {"type": "image", "image": "data:,"}]
    assert loaded.messages[1].content == "A picture."
