"""Prompt files: every format, text blocks vs lines, comments, duplicates, bad rows and the resume key."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from teich import TeichError
from teich.generate.prompts import PromptSpec, key_for, read_prompts


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_csv(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "p.csv",
        "prompt,system,category,follow_up_prompts,github_repo\n"
        'Fix the bug,,coding,"[""Now add a test""]",octo/repo\n'
        '"A prompt\nover two lines",Be terse.,,,\n',
    )
    specs, problems = read_prompts(path)
    assert problems == []
    assert specs == [
        PromptSpec(
            prompt="Fix the bug", category="coding", follow_up_prompts=("Now add a test",), github_repo="octo/repo"
        ),
        PromptSpec(prompt="A prompt\nover two lines", system="Be terse."),
    ]


def test_csv_with_only_a_prompt_column_and_excel_bom(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_bytes("\ufeffprompt\nfirst\n\nsecond\n".encode())
    specs, problems = read_prompts(path)
    assert [spec.prompt for spec in specs] == ["first", "second"] and problems == []


def test_csv_bad_rows_are_reported_with_file_and_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "p.csv",
        "prompt,follow_up_prompts\n"
        "good,\n"
        '"  ","[""x""]"\n'
        "next,[not json\n"
        'obj,"{""a"": 1}"\n'
        '"multi\nline",[1]\n'
        "too,many,fields\n"
        "last,\n",
    )
    specs, problems = read_prompts(path)
    assert [spec.prompt for spec in specs] == ["good", "last"]
    assert problems == [
        f"{path}:3: prompt: must not be empty",
        f'{path}:4: follow_up_prompts: invalid JSON (Expecting value); write a list such as ["next question"]',
        f"{path}:5: follow_up_prompts: should be a JSON list of strings",
        f"{path}:6: follow_up_prompts.0: Input should be a valid string",
        f"{path}:8: 3 fields but 2 columns",
    ]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("text,category\n", "p.csv:1: no 'prompt' column (columns: text, category)"),
        ("prompt,follow_ups\n", "unknown columns follow_ups"),
    ],
)
def test_csv_header_problems_stop_the_run(tmp_path: Path, header: str, expected: str) -> None:
    with pytest.raises(TeichError, match=re.escape(expected)):
        read_prompts(write(tmp_path, "p.csv", header + "x,y\n"))


def test_jsonl_objects_and_bare_strings(tmp_path: Path) -> None:
    rows = [
        {"prompt": "Write a parser", "system": "You are terse.", "follow_up_prompts": ["Add tests", "Add docs"]},
        "Just a string",
        {"prompt": "Tagged", "category": "misc", "github_repo": "octo/repo", "system": None, "follow_up_prompts": None},
    ]
    path = write(tmp_path, "p.jsonl", "\n".join(json.dumps(row) for row in rows) + "\n\n")
    specs, problems = read_prompts(path)
    assert problems == []
    assert specs[0] == PromptSpec(
        prompt="Write a parser", system="You are terse.", follow_up_prompts=("Add tests", "Add docs")
    )
    assert specs[1] == PromptSpec(prompt="Just a string")
    assert (specs[2].category, specs[2].github_repo) == ("misc", "octo/repo")


def test_ndjson_bad_rows(tmp_path: Path) -> None:
    lines = [
        '{"prompt": "ok"}',
        "{not json",
        '{"prompt": ""}',
        '{"prompt": "x", "follow_up_prompts": "not a list"}',
        '{"prompt": "x", "follow_up_prompts": ["fine", 3]}',
        '{"prompt": "x", "sytem": "typo"}',
        "[1, 2]",
        '{"system": "no prompt"}',
    ]
    path = write(tmp_path, "p.ndjson", "\n".join(lines))
    specs, problems = read_prompts(path)
    assert [spec.prompt for spec in specs] == ["ok"]
    assert problems == [
        f"{path}:2: invalid JSON: Expecting property name enclosed in double quotes (column 2)",
        f"{path}:3: prompt: must not be empty",
        f"{path}:4: follow_up_prompts: Input should be a valid tuple",
        f"{path}:5: follow_up_prompts.1: Input should be a valid string",
        f"{path}:6: sytem: unknown key",
        f"{path}:7: expected a prompt string or an object, not list",
        f"{path}:8: prompt: Field required",
    ]


def test_json_list_with_line_numbers(tmp_path: Path) -> None:
    text = '[\n  "first",\n  {\n    "prompt": "second",\n    "category": "c"\n  },\n  {"prompt": ""},\n  42\n]\n'
    path = write(tmp_path, "p.json", text)
    specs, problems = read_prompts(path)
    assert [spec.prompt for spec in specs] == ["first", "second"]
    assert problems == [
        f"{path}:7: prompt: must not be empty",
        f"{path}:8: expected a prompt string or an object, not int",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"prompt": "x"}', "p.json: should be a JSON list of prompts, not dict"),
        ('[\n"a",\n', "p.json:3: invalid JSON"),
    ],
)
def test_json_file_problems_stop_the_run(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(TeichError, match=expected):
        read_prompts(write(tmp_path, "p.json", text))


def test_text_one_prompt_per_line(tmp_path: Path) -> None:
    text = "# my prompts\n# one per line\n\nFirst prompt\n  Second prompt  \n# a comment between\nThird prompt\n\n"
    specs, problems = read_prompts(write(tmp_path, "p.txt", text))
    assert [spec.prompt for spec in specs] == ["First prompt", "Second prompt", "Third prompt"] and problems == []


def test_text_blocks_separated_by_blank_lines(tmp_path: Path) -> None:
    text = (
        "# header\n\nWrite a function that\n  - parses dates\n  - handles time zones\n\n\n"
        "# note\nShort one\n   \nLast\nblock\n"
    )
    path = write(tmp_path, "p.txt", text)
    specs, problems = read_prompts(path)
    assert [spec.prompt for spec in specs] == [
        "Write a function that\n  - parses dates\n  - handles time zones",
        "Short one",
        "Last\nblock",
    ]
    assert problems == []


def test_text_duplicates_report_their_line(tmp_path: Path) -> None:
    path = write(tmp_path, "p.txt", "alpha\nbeta\nalpha\n  beta\n")
    specs, problems = read_prompts(path)
    assert [spec.prompt for spec in specs] == ["alpha", "beta"]
    assert problems == [
        f"{path}:3: duplicate of the prompt on line 1, skipped",
        f"{path}:4: duplicate of the prompt on line 2, skipped",
    ]


def test_dedupe_counts_system_and_follow_ups(tmp_path: Path) -> None:
    rows = [
        {"prompt": "p"},
        {"prompt": "p", "system": "default"},  # the same once the default system prompt applies
        {"prompt": "p", "system": "other"},
        {"prompt": "p", "follow_up_prompts": ["more"]},
        {"prompt": "p", "category": "ignored by the key"},
    ]
    path = write(tmp_path, "p.jsonl", "\n".join(json.dumps(row) for row in rows))
    specs, problems = read_prompts(path, default_system="default")
    assert [(spec.system, spec.follow_up_prompts) for spec in specs] == [
        ("default", ()),
        ("other", ()),
        ("default", ("more",)),
    ]
    assert sum("duplicate" in problem for problem in problems) == 2


def test_resume_key_is_stable_and_matches_output_rows() -> None:
    spec = PromptSpec(prompt="Fix it", system="Be brief.", follow_up_prompts=("And test it",))
    assert spec.key == key_for("Fix it", "Be brief.", ["And test it"])  # a row's list of follow-ups
    assert spec.key == "4977b45ce817a079"  # fixed forever: changing it breaks --resume of existing runs
    assert key_for("Fix it") == key_for("Fix it", "", ()) == PromptSpec(prompt="Fix it").key
    assert len({key_for("a"), key_for("a", "s"), key_for("a", None, ["f"]), key_for("a\n")}) == 4


@pytest.mark.parametrize("name", ["p.xlsx", "prompts"])
def test_unknown_extension(tmp_path: Path, name: str) -> None:
    with pytest.raises(TeichError, match="unknown prompts format .*; use .csv, .jsonl, .ndjson, .json, .txt"):
        read_prompts(write(tmp_path, name, "x"))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(TeichError, match="p.csv: not found"):
        read_prompts(tmp_path / "p.csv")
