"""Resume keys on both sides: a prompt (``PromptSpec.key``) and the output it left (``row_key`` of a
``chat`` row, the session file an agent run kept), for prompts with follow-ups, system-prompt
variants and duplicates.

What ``--resume`` must do (docs/generate.md): skip every prompt that has a complete output and run
the rest, once. Duplicates (same prompt, system prompt and follow-ups) are skipped when the prompts
are read, so they run once; the same prompt with other follow-ups or another system prompt is other
work and runs. Every expected key, row and request count below is written by hand.
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from openai_server import Reply, scripted_servers
from typer.testing import CliRunner

from teich.cli import app
from teich.generate.agents.provider import AgentCli
from teich.generate.agents.sandbox import BACKENDS, Run
from teich.generate.chat import row_key
from teich.generate.config import Config
from teich.generate.prompts import PromptSpec, read_prompts
from teich.generate.providers import PROVIDERS
from teich.generate.runner import make_provider, plan

RECORDED = Path(__file__).parent / "data" / "recorded"
# A real Codex session of one prompt and one follow-up (tests/data/recorded/README.md).
CODEX_FOLLOW_UP = RECORDED / "codex" / "raw-reasoning.jsonl"
CODEX_PROMPT, CODEX_FOLLOW_UP_PROMPT = "What is 17 * 23? Check it with the shell.", "And 391 / 17?"


@pytest.fixture
def scripted_server():
    with scripted_servers() as make:
        yield make


def _project(folder: Path, prompts: list[Any], **config: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "prompts.jsonl").write_text("".join(json.dumps(p) + "\n" for p in prompts))
    settings = {
        "model": {"model": "scripted-model"},
        "api": {"provider": "custom", "base_url": "http://127.0.0.1:9/v1", "api_key": "sk-test"},
        "prompts_file": "prompts.jsonl",
        "system_prompt": "You are terse.",
        "concurrency": 1,
        "retry": {"max_attempts": 1, "backoff_seconds": 0.01, "timeout_seconds": 10},
        **config,
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(settings))
    return folder / "config.yaml"


def _generate(config: Path, *args: str):
    return CliRunner().invoke(app, ["generate", "-c", str(config), *args])


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


# --- The prompt side ----------------------------------------------------------------------------


def test_prompt_keys_tell_follow_ups_and_system_prompts_apart() -> None:
    prompt = "Write a parser"
    variants = [
        PromptSpec(prompt=prompt),
        PromptSpec(prompt=prompt, follow_up_prompts=("Add tests",)),
        PromptSpec(prompt=prompt, follow_up_prompts=("Add docs",)),
        PromptSpec(prompt=prompt, follow_up_prompts=("Add tests", "Add docs")),
        PromptSpec(prompt=prompt, follow_up_prompts=("Add docs", "Add tests")),  # the same follow-ups, reordered
        PromptSpec(prompt=prompt, follow_up_prompts=("Add tests Add docs",)),  # joined into one
        PromptSpec(prompt=prompt, system="Be terse."),
        PromptSpec(prompt=prompt, system="Be thorough."),
        PromptSpec(prompt=prompt, system="Be terse.", follow_up_prompts=("Add tests",)),
        PromptSpec(prompt="Add tests", follow_up_prompts=(prompt,)),  # prompt and follow-up swapped
        PromptSpec(prompt="Be terse.", system=prompt),  # prompt and system swapped
    ]
    assert len({spec.key for spec in variants}) == len(variants)
    # labels are not part of the key (docs/generate.md: duplicates are the same prompt, system and follow-ups)
    labelled = PromptSpec(prompt=prompt, follow_up_prompts=("Add tests",), category="code", github_repo="octo/x")
    assert labelled.key == variants[1].key
    # the text is stripped, so padding makes no new prompt
    assert PromptSpec(prompt=f"  {prompt}\n", follow_up_prompts=(" Add tests ",)).key == variants[1].key


def test_duplicates_are_read_once_and_variants_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "prompts.jsonl"
    lines = [
        {"prompt": "p", "follow_up_prompts": ["f1"]},
        {"prompt": "p", "follow_up_prompts": ["f2"]},
        {"prompt": "p"},
        {"prompt": "p", "follow_up_prompts": ["f1"], "category": "again"},  # a duplicate of line 1
        {"prompt": "p", "system": "default", "follow_up_prompts": ["f1"]},  # line 1 once the default applies
        {"prompt": "p", "system": "other", "follow_up_prompts": ["f1"]},
        {"prompt": "p", "follow_up_prompts": ["f1", "f2"]},
        {"prompt": "p", "follow_up_prompts": ["f2", "f1"]},
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    specs, problems = read_prompts(path, default_system="default")
    assert [(s.system, s.follow_up_prompts) for s in specs] == [
        ("default", ("f1",)),
        ("default", ("f2",)),
        ("default", ()),
        ("other", ("f1",)),
        ("default", ("f1", "f2")),
        ("default", ("f2", "f1")),
    ]
    assert problems == [
        f"{path}:4: duplicate of the prompt on line 1, skipped",
        f"{path}:5: duplicate of the prompt on line 1, skipped",
    ]


# --- The output-row side ------------------------------------------------------------------------


def _chat_row(prompt: str, system: str | None, follow_ups: list[str]) -> dict[str, Any]:
    """An output row as docs/generate.md shows the ``chat`` provider writing it."""
    messages = [{"role": "system", "content": system, "thinking": None}] if system else []
    for number, text in enumerate([prompt, *follow_ups]):
        messages += [
            {"role": "user", "content": text, "thinking": None},
            {"role": "assistant", "content": f"answer {number}", "thinking": None},
        ]
    row: dict[str, Any] = {"messages": messages, "system": system, "prompt": prompt, "response": "answer"}
    if follow_ups:
        row["follow_up_prompts"] = follow_ups
    return row


@pytest.mark.parametrize(
    ("system", "follow_ups"),
    [(None, []), ("Be terse.", []), (None, ["Why?"]), ("Be terse.", ["Why?", "And then?"])],
    ids=["plain", "system", "follow-up", "system+follow-ups"],
)
def test_an_output_row_has_the_key_of_its_prompt(system: str | None, follow_ups: list[str]) -> None:
    spec = PromptSpec(prompt="2+2?", system=system, follow_up_prompts=tuple(follow_ups))
    assert row_key(_chat_row("2+2?", system, follow_ups)) == spec.key
    others = [
        PromptSpec(prompt="2+2?", system=system, follow_up_prompts=(*follow_ups, "More?")),
        PromptSpec(prompt="2+2?", system="Be verbose.", follow_up_prompts=tuple(follow_ups)),
    ]
    assert all(row_key(_chat_row("2+2?", system, follow_ups)) != other.key for other in others)


def test_chat_done_keys_count_complete_rows_with_their_follow_ups(tmp_path: Path) -> None:
    config = Config.from_yaml(_project(tmp_path, ["unused"]), environ={})
    output = config.output.traces_dir
    output.mkdir(parents=True)
    complete = _chat_row("Name a prime", "You are terse.", ["Another one"])
    cut_short = _chat_row("Name a prime", "You are terse.", ["A larger one"])
    cut_short["messages"] = cut_short["messages"][:-1]  # ends on the follow-up: not done
    (output / "train.jsonl").write_text(json.dumps(complete) + "\n" + json.dumps(cut_short) + "\n")
    done = make_provider(config).done_keys()
    assert done == {PromptSpec(prompt="Name a prime", system="You are terse.", follow_up_prompts=("Another one",)).key}


# --- End to end: ``teich generate --resume`` with the chat provider ------------------------------

PRIME_PROMPTS = [
    {"prompt": "Name a prime", "follow_up_prompts": ["Another one"]},
    {"prompt": "Name a prime", "follow_up_prompts": ["A larger one"]},
    "Name a prime",
    {"prompt": "Name a prime", "system": "Answer in French."},
    {"prompt": "Name a prime", "follow_up_prompts": ["Another one"]},  # an exact duplicate of line 1
    {"prompt": "Name a prime", "system": "You are terse.", "follow_up_prompts": ["Another one"]},  # line 1 again
]
# The distinct conversations, as (system, user turns), and the requests they take: one per user turn.
PRIME_CONVERSATIONS = {
    ("You are terse.", ("Name a prime", "Another one")),
    ("You are terse.", ("Name a prime", "A larger one")),
    ("You are terse.", ("Name a prime",)),
    ("Answer in French.", ("Name a prime",)),
}
PRIME_REQUESTS = 2 + 2 + 1 + 1


def _conversation(row: dict[str, Any]) -> tuple[str | None, tuple[str, ...]]:
    return row.get("system"), tuple(m["content"] for m in row["messages"] if m["role"] == "user")


def test_resume_with_follow_ups_runs_each_conversation_once(tmp_path: Path, scripted_server) -> None:
    asked: list[tuple[str | None, tuple[str, ...]]] = []

    def answer(body: dict[str, Any]) -> Reply:
        messages = body["messages"]
        users = tuple(m["content"] for m in messages if m["role"] == "user")
        asked.append((messages[0]["content"] if messages[0]["role"] == "system" else None, users))
        return Reply(content=f"prime number {len(users)}")

    server = scripted_server(answer)
    config = _project(tmp_path, PRIME_PROMPTS, api={"provider": "custom", "base_url": server.base_url})
    rows_file = tmp_path / "output" / "train.jsonl"

    first = _generate(config, "--limit", "2")
    assert first.exit_code == 0, first.output
    assert "2 done, 0 failed, 0 already done" in first.output
    assert "prompts.jsonl:5: duplicate of the prompt on line 1, skipped" in first.output
    assert "prompts.jsonl:6: duplicate of the prompt on line 1, skipped" in first.output
    assert {_conversation(r) for r in _rows(rows_file)} == {
        ("You are terse.", ("Name a prime", "Another one")),
        ("You are terse.", ("Name a prime", "A larger one")),
    }

    second = _generate(config, "--resume")
    assert second.exit_code == 0, second.output
    assert "2 done, 0 failed, 2 already done" in second.output
    third = _generate(config, "--resume")
    assert third.exit_code == 0, third.output
    assert "0 done, 0 failed, 4 already done" in third.output

    rows = _rows(rows_file)
    assert len(rows) == len(PRIME_CONVERSATIONS) and {_conversation(r) for r in rows} == PRIME_CONVERSATIONS
    assert len(asked) == PRIME_REQUESTS  # nothing asked twice, no duplicate run
    assert Counter(asked) == {  # the first turn of the two conversations with a follow-up, and the two without
        ("You are terse.", ("Name a prime",)): 3,
        ("You are terse.", ("Name a prime", "Another one")): 1,
        ("You are terse.", ("Name a prime", "A larger one")): 1,
        ("Answer in French.", ("Name a prime",)): 1,
    }
    # every row written keys back to exactly one prompt read from the file
    specs, _ = read_prompts(config.parent / "prompts.jsonl", default_system="You are terse.")
    assert sorted(row_key(r) for r in rows) == sorted(spec.key for spec in specs)


def test_a_new_system_prompt_makes_new_work(tmp_path: Path, scripted_server) -> None:
    """The key holds the effective system prompt: after the config's ``system_prompt`` changes, the
    prompts run again under it (and the rows of the old one stay)."""
    server = scripted_server(lambda body: Reply(content="ok"))
    api = {"provider": "custom", "base_url": server.base_url}
    prompts = [{"prompt": "Hi", "follow_up_prompts": ["Bye"]}]
    config = _project(tmp_path, prompts, api=api)
    assert _generate(config).exit_code == 0
    _project(tmp_path, prompts, api=api, system_prompt="You are verbose.")
    result = _generate(config, "--resume")
    assert result.exit_code == 0, result.output
    assert "1 done, 0 failed, 0 already done" in result.output
    assert _generate(config, "--resume").output.count("0 done, 0 failed, 1 already done") == 1
    rows = _rows(tmp_path / "output" / "train.jsonl")
    assert [_conversation(r) for r in rows] == [
        ("You are terse.", ("Hi", "Bye")),
        ("You are verbose.", ("Hi", "Bye")),
    ]


def test_a_blank_system_prompt_is_no_system_prompt(tmp_path: Path, scripted_server) -> None:
    """A config ``system_prompt`` of only spaces is no system prompt for the key (the prompt reader strips
    it), so the row must hold none either: otherwise its key differs and every --resume asks again."""
    server = scripted_server(lambda body: Reply(content="ok"))
    config = _project(tmp_path, ["Hi"], api={"provider": "custom", "base_url": server.base_url}, system_prompt="  \n")
    assert _generate(config).exit_code == 0
    assert "0 done, 0 failed, 1 already done" in _generate(config, "--resume").output
    (row,) = _rows(tmp_path / "output" / "train.jsonl")
    assert row["system"] is None and [m["role"] for m in row["messages"]] == ["user", "assistant"]
    assert [m["role"] for m in server.bodies[0]["messages"]] == ["user"] and len(server.bodies) == 1


# --- The agent side: a kept session is named by its prompt's key --------------------------------


TURNS: list[str] = []  # the prompts the replayed CLI was started with, in order


class _ReplayCodex(AgentCli):
    """An "agent CLI" that writes the recorded Codex session (a prompt and its follow-up) into its home;
    each turn it is started for is logged."""

    def install(self) -> Path:
        raise AssertionError("the backend's image holds this CLI")

    def offered_tools(self) -> list[dict[str, Any]]:
        return []

    def setup(self, home: Path, config: Config, base_url: str) -> dict[str, str]:
        return {}

    def command(self, executable: str, prompt: str, workspace: Path, session: str | None, config: Config) -> list[str]:
        TURNS.append(prompt)
        copy = "import os, shutil, sys; shutil.copyfile(sys.argv[1], os.path.join(os.environ['HOME'], 's.jsonl'))"
        return [sys.executable, "-c", copy, str(CODEX_FOLLOW_UP)]

    def session_id(self, stdout: str, home: Path) -> str | None:
        return "replayed"

    def session_file(self, home: Path, session: str | None) -> Path | None:
        return home / "s.jsonl"


class _AsIs:
    """A sandbox backend that runs commands as they are (tried first by ``auto``)."""

    name = "as-is"
    priority = 0
    contains = True
    missing = "nothing"

    def available(self) -> bool:
        return True

    def prepare(self) -> str:
        return "as-is-image"

    def user(self) -> tuple[int, int]:
        return os.getuid(), os.getgid()

    def command(self, argv: list[str], *, run: Run, install: Path | None, env: list[str]) -> list[str]:
        return argv


def test_agent_sessions_with_follow_ups_resume_by_their_prompt_key(tmp_path: Path) -> None:
    cli = _ReplayCodex("replay-codex", "replay", "1.0", "bin/replay")
    TURNS.clear()
    asked = {"prompt": CODEX_PROMPT, "follow_up_prompts": [CODEX_FOLLOW_UP_PROMPT]}
    other = {"prompt": CODEX_PROMPT, "follow_up_prompts": ["And 391 / 23?"]}
    duplicate = dict(asked)
    config = _project(
        tmp_path, [asked, other, duplicate], agent={"provider": "replay-codex"}, sandbox={"backend": "auto"}
    )
    with BACKENDS.registered(_AsIs()), PROVIDERS.registered(cli):
        first = _generate(config, "--limit", "1")
        assert first.exit_code == 0, first.output
        assert TURNS == [CODEX_PROMPT, CODEX_FOLLOW_UP_PROMPT]  # one session, resumed for the follow-up
        spec = PromptSpec(prompt=CODEX_PROMPT, system="You are terse.", follow_up_prompts=(CODEX_FOLLOW_UP_PROMPT,))
        assert [p.name for p in (tmp_path / "output").glob("*.jsonl")] == [f"{spec.key}.jsonl"]
        loaded = Config.from_yaml(config, environ={})
        provider = make_provider(loaded)
        assert provider.done_keys() == {spec.key}
        pending, summary = plan(loaded, provider, resume=True, limit=None)
        assert [(p.prompt, p.follow_up_prompts) for p in pending] == [(CODEX_PROMPT, ("And 391 / 23?",))]
        assert summary.skipped == 1
        second = _generate(config, "--resume")
        assert second.exit_code == 0, second.output
        assert "1 done, 0 failed, 1 already done" in second.output
        assert TURNS[2:] == [CODEX_PROMPT, "And 391 / 23?"]
        third = _generate(config, "--resume")
        assert "0 done, 0 failed, 2 already done" in third.output and len(TURNS) == 4
