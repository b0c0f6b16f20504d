"""``teich generate`` with the chat provider, end to end against a scripted OpenAI-compatible server
speaking the real wire protocols (Chat Completions and the Responses API) on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from hub_server import serving_hub
from openai_server import Fault, Reply, scripted_servers
from typer.testing import CliRunner

from teich import TrainingExample, load_traces
from teich.cli import app

FAST = {"retry-after-ms": "1"}


@pytest.fixture
def scripted_server():
    with scripted_servers() as make:
        yield make


def make_project(folder: Path, server, prompts: list[Any], **overrides: Any) -> Path:
    """A project folder with a JSONL prompts file and a config pointing at the scripted server."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "prompts.jsonl").write_text("".join(json.dumps(p) + "\n" for p in prompts))
    config = {
        "model": {"model": "scripted-model", "temperature": 0.2},
        "api": {"provider": "custom", "base_url": server.base_url, "api_key": "sk-test-secret"},
        "prompts_file": "prompts.jsonl",
        "system_prompt": "You are terse.",
        "concurrency": 2,
        "retry": {"max_attempts": 3, "backoff_seconds": 0.01, "timeout_seconds": 5},
    }
    for section, values in overrides.items():
        config[section] = {**config.get(section, {}), **values} if isinstance(values, dict) else values
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    return folder / "config.yaml"


def run(*args: str):
    return CliRunner().invoke(app, ["generate", *args])


def rows_of(config: Path) -> list[dict[str, Any]]:
    path = config.parent / "output" / "train.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_chat_completions_with_reasoning_and_follow_ups(tmp_path, scripted_server):
    server = scripted_server(
        [
            Reply(content="Hi!", reasoning="I should greet the user."),
            Reply(content="4", reasoning="Simple sum."),
            Reply(content="Still 4.", reasoning="Same answer."),
        ]
    )
    prompts = ["Hello", {"prompt": "2+2?", "follow_up_prompts": ["Are you sure?"], "category": "math"}]
    config = make_project(tmp_path, server, prompts, concurrency=1)
    result = run("-c", str(config))
    assert result.exit_code == 0, result.output
    assert "2 done, 0 failed" in result.output
    first, second = rows_of(config)
    assert first["messages"] == [
        {"thinking": None, "role": "system", "content": "You are terse."},
        {"thinking": None, "role": "user", "content": "Hello"},
        {"thinking": "I should greet the user.", "role": "assistant", "content": "Hi!"},
    ]
    assert (first["prompt"], first["response"], first["thinking"], first["model"]) == (
        "Hello",
        "Hi!",
        "I should greet the user.",
        "scripted-model",
    )
    assert [m["role"] for m in second["messages"]] == ["system", "user", "assistant", "user", "assistant"]
    assert second["response"] == "Still 4." and second["follow_up_prompts"] == ["Are you sure?"]
    assert second["category"] == "math" and second["metadata"]["usage"]["output_tokens"] > 0
    # the follow-up was asked in the same conversation, with the first answer in the history
    assert [m["content"] for m in server.bodies[2]["messages"]] == ["You are terse.", "2+2?", "4", "Are you sure?"]
    assert server.bodies[0]["temperature"] == 0.2
    assert server.requests[0].headers["authorization"] == "Bearer sk-test-secret"
    # rows load unchanged through Teich
    loaded = [TrainingExample.from_record(r) for r in load_traces(config.parent / "output" / "train.jsonl")]
    assert loaded[0].messages[-1].reasoning_content == "I should greet the user."
    assert loaded[1].follow_up_prompts == ["Are you sure?"]


def test_responses_api_captures_reasoning_summaries(tmp_path, scripted_server):
    server = scripted_server([Reply(content="Paris.", reasoning="Capital of France.")])
    config = make_project(
        tmp_path, server, ["Capital of France?"], api={"wire_api": "responses"}, model={"reasoning_effort": "low"}
    )
    result = run("-c", str(config))
    assert result.exit_code == 0, result.output
    (row,) = rows_of(config)
    assert (row["response"], row["thinking"]) == ("Paris.", "Capital of France.")
    request = server.requests[0]
    assert request.path == "/v1/responses"
    assert request.body["instructions"] == "You are terse."
    assert request.body["reasoning"] == {"effort": "low", "summary": "auto"}
    assert request.body["input"] == [{"role": "user", "content": "Capital of France?"}]


def test_retries_then_failures_folder_and_the_run_goes_on(tmp_path, scripted_server):
    def script(body):
        prompt = body["messages"][-1]["content"]
        if prompt == "always broken":
            return Fault(status=500, headers=FAST)
        return Reply(content=f"answer to {prompt}")

    server = scripted_server(script)
    config = make_project(tmp_path, server, ["fine", "always broken", "also fine"])
    server.set_script([Fault(status=429, headers=FAST), Fault(malformed=True)] + [script] * 10)
    result = run("-c", str(config))
    assert result.exit_code == 1, result.output
    assert "2 done, 1 failed" in result.output and "rerun with --resume" in result.output
    assert sorted(r["prompt"] for r in rows_of(config)) == ["also fine", "fine"]
    (failure,) = list((tmp_path / "failures").glob("*.json"))
    record = json.loads(failure.read_text())
    assert record["prompt"] == "always broken" and "gave up after 3 attempts" in record["error"]
    assert "500" in record["error"]
    broken = [r for r in server.bodies if r["messages"][-1]["content"] == "always broken"]
    assert len(broken) == 3  # max_attempts


def test_resume_retries_only_what_is_missing(tmp_path, scripted_server):
    calls = []

    def script(body):
        calls.append(body["messages"][-1]["content"])
        return Reply(content="ok")

    server = scripted_server(script)
    config = make_project(tmp_path, server, ["a", "b", "c"])
    assert run("-c", str(config), "--limit", "2").exit_code == 0
    assert len(rows_of(config)) == 2
    refused = run("-c", str(config))
    assert refused.exit_code == 1 and "--resume" in refused.output
    result = run("-c", str(config), "--resume")
    assert result.exit_code == 0, result.output
    assert "1 done, 0 failed, 2 already done" in result.output
    assert sorted(r["prompt"] for r in rows_of(config)) == ["a", "b", "c"]
    assert sorted(calls) == ["a", "b", "c"]


def test_concurrency_limit_is_respected(tmp_path, scripted_server):
    server = scripted_server(lambda body: Reply(content="ok", delay=0.15))
    config = make_project(tmp_path, server, [f"prompt {i}" for i in range(8)], concurrency=3)
    result = run("-c", str(config))
    assert result.exit_code == 0, result.output
    assert server.max_in_flight == 3
    result = run("-c", str(config), "--resume", "--output", str(tmp_path / "other"), "--concurrency", "1")
    assert result.exit_code == 0 and server.max_in_flight == 3  # the earlier peak; this run had one at a time
    assert len((tmp_path / "other" / "train.jsonl").read_text().splitlines()) == 8


def test_resume_after_the_process_is_killed(tmp_path, scripted_server):
    """A real ``kill -9`` mid-run loses no finished row, and --resume neither duplicates nor loses rows."""
    server = scripted_server(lambda body: Reply(content="ok " + body["messages"][-1]["content"], delay=0.2))
    prompts = [f"prompt {i}" for i in range(12)]
    config = make_project(tmp_path, server, prompts, concurrency=2)
    rows = config.parent / "output" / "train.jsonl"
    process = subprocess.Popen(
        [sys.executable, "-m", "teich", "generate", "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not rows.exists() or len(rows.read_text().splitlines()) < 3):
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=10)
    written = rows_of(config)
    assert 3 <= len(written) < len(prompts)
    # a half-written last line (a kill during a write) is repaired by --resume
    with rows.open("a") as out:
        out.write('{"prompt": "half a ro')
    result = run("-c", str(config), "--resume")
    assert result.exit_code == 0, result.output
    final = [r["prompt"] for r in rows_of(config)]
    assert sorted(final) == sorted(prompts) and len(final) == len(set(final))


def test_card_and_publishing(tmp_path, scripted_server, monkeypatch):
    server = scripted_server([Reply(content="Hi!", reasoning="Greet.")])
    config = make_project(
        tmp_path,
        server,
        ["Hello"],
        publish={"repo_id": "me/chat-data", "private": False},
        output={"pretty_name": "Demo"},
    )
    with serving_hub(monkeypatch) as hub:
        monkeypatch.setenv("HF_TOKEN", "hf_secret_token")
        result = run("-c", str(config))
    assert result.exit_code == 0, result.output
    card = (tmp_path / "output" / "README.md").read_text()
    assert card.startswith("---\npretty_name: Demo\n")
    for tag in ("conversational", "distillation", "teich", "scripted-model"):
        assert f"- {tag}\n" in card
    assert "| rows | 1 |" in card and '"response": "Hi!"' in card and "load_traces" in card
    assert "sk-test-secret" not in card and "hf_secret_token" not in card
    repo = hub.repos["me/chat-data"]
    (commit,) = repo.commits  # one commit: the rows and their card (no tools were offered: no tools.json)
    rows = (tmp_path / "output" / "train.jsonl").read_bytes()
    assert commit.files == {"train.jsonl": rows, "README.md": card.encode()} and repo.private is False
    created = next(r for r in hub.requests if r.path == "/api/repos/create")
    assert created.headers["authorization"] == "Bearer hf_secret_token"
    assert "sk-test-secret" not in result.output and "hf_secret_token" not in result.output


def test_dry_run_calls_no_model(tmp_path, scripted_server):
    server = scripted_server([])
    config = make_project(tmp_path, server, ["a", "b"])
    result = run("-c", str(config), "--dry-run")
    assert result.exit_code == 0, result.output
    assert "would run 2 prompts" in result.output and server.bodies == []
    assert not (tmp_path / "output" / "train.jsonl").exists()


def test_config_errors_are_one_line(tmp_path, scripted_server):
    server = scripted_server([])
    config = make_project(tmp_path, server, ["a"], model={"temprature": 1})
    result = run("-c", str(config))
    assert result.exit_code == 1
    assert "model.temprature" in result.output and "Traceback" not in result.output
    result = run("-c", str(tmp_path / "missing.yaml"))
    assert result.exit_code == 1 and "not found" in result.output


@pytest.mark.parametrize("wire_api", ["chat", "responses"])
def test_streaming_replies(tmp_path, scripted_server, wire_api):
    server = scripted_server([Reply(content="Streamed answer, word by word.", reasoning="Think in pieces.")])
    config = make_project(tmp_path, server, ["Stream please"], api={"wire_api": wire_api, "stream": True})
    result = run("-c", str(config))
    assert result.exit_code == 0, result.output
    (row,) = rows_of(config)
    assert (row["response"], row["thinking"]) == ("Streamed answer, word by word.", "Think in pieces.")
    assert server.bodies[0]["stream"] is True and row["metadata"]["usage"]["output_tokens"] > 0


def test_slow_server_times_out_and_fails(tmp_path, scripted_server):
    server = scripted_server(lambda body: Reply(content="too late", delay=3))
    config = make_project(tmp_path, server, ["slow"], retry={"max_attempts": 2, "timeout_seconds": 0.3})
    result = run("-c", str(config))
    assert result.exit_code == 1
    (failure,) = list((tmp_path / "failures").glob("*.json"))
    assert "APITimeoutError" in json.loads(failure.read_text())["error"]
    assert len(server.bodies) == 2 and rows_of(config) == []


@pytest.mark.parametrize(
    ("provider", "wire_api", "described"),
    [
        ("chat", "responses", "(responses API, custom)"),
        ("codex", "responses", "(the codex agent CLI, npm `@openai/codex` 0.169.0; Responses API, custom)"),
        ("pi", "chat", "(the pi agent CLI, npm `@mariozechner/pi-coding-agent` 0.73.1; Chat Completions API, custom)"),
        (
            "claude-code",
            "chat",  # whatever wire_api says, Claude Code speaks the Messages API
            "(the claude-code agent CLI, npm `@anthropic-ai/claude-code` 2.1.332; Anthropic Messages API, custom)",
        ),
        ("hermes", "responses", "(the hermes agent CLI, pypi `hermes-agent` 0.19.0; Chat Completions API, custom)"),
    ],
)
def test_the_card_names_what_made_the_rows(tmp_path, provider, wire_api, described):
    """An agent provider's card names the agent CLI, its pinned package and the API it spoke."""
    from teich.generate.card import render_card
    from teich.generate.config import Config

    api = {"provider": "custom", "wire_api": wire_api, "base_url": "http://127.0.0.1:9/v1"}
    config = Config.model_validate({"agent": {"provider": provider}, "model": {"model": "m"}, "api": api})
    (line,) = [
        line for line in render_card(config, [], ["train.jsonl"], 0).splitlines() if line.startswith("| provider |")
    ]
    assert line == f"| provider | `{provider}` {described} |"
