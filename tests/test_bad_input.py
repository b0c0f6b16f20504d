"""Damaged and unusable inputs: each is reported on one line naming the file (and line), the rest
of the input still converts, and the CLI never shows a traceback or overwrites output for nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from teich import TeichError, TrainingExample, load_traces
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
    return Case(path, good + 1, "cannot convert openai trace", good)


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
    assert "KeyError" in report.problems[0].message


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
