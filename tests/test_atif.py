"""Harbor's ATIF both ways: trajectories read into rows, rows written as trajectories (``to_atif`` and
``teich convert --to atif``) that Harbor's own ``Trajectory`` model accepts."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from teich import TrainingExample, load_traces
from teich.cli import app
from teich.files import write_json_atomic, write_jsonl_atomic
from teich.traces import find_format
from teich.traces.formats.atif import SCHEMA_VERSION, to_atif

# Field sets of harbor 0.26's pydantic models (harbor.models.trajectories), all ``extra="forbid"``.
ROOT_FIELDS = {
    "schema_version",
    "session_id",
    "trajectory_id",
    "agent",
    "steps",
    "notes",
    "final_metrics",
    "continued_trajectory_ref",
    "extra",
    "subagent_trajectories",
}
AGENT_FIELDS = {"name", "version", "model_name", "tool_definitions", "extra"}
STEP_FIELDS = {
    "step_id",
    "timestamp",
    "source",
    "model_name",
    "reasoning_effort",
    "message",
    "reasoning_content",
    "tool_calls",
    "observation",
    "metrics",
    "is_copied_context",
    "llm_call_count",
    "extra",
}
AGENT_ONLY = {"model_name", "reasoning_effort", "reasoning_content", "tool_calls", "metrics"}
CALL_FIELDS = {"tool_call_id", "function_name", "arguments", "extra"}
RESULT_FIELDS = {"source_call_id", "content", "subagent_trajectory_ref", "extra"}
FINAL_FIELDS = {
    "total_prompt_tokens",
    "total_completion_tokens",
    "total_cached_tokens",
    "total_cost_usd",
    "total_steps",
    "extra",
}

TRAJECTORY: dict[str, Any] = {
    "schema_version": "ATIF-v1.8",
    "session_id": "run-42",
    "agent": {
        "name": "terminus-2",
        "version": "2.0.0",
        "model_name": "anthropic/claude-sonnet-4",
        "tool_definitions": [
            {
                "type": "function",
                "function": {
                    "name": "read_file",
                    "description": "Read a file",
                    "parameters": {"type": "object", "properties": {"path": {"type": "string"}}},
                },
            },
            {
                "name": "run",
                "description": "Run a shell command",
                "parameters": {"type": "object", "properties": {"command": {"type": "string"}}},
            },
        ],
    },
    "steps": [
        {
            "step_id": 1,
            "timestamp": "2026-01-02T03:04:05Z",
            "source": "system",
            "message": "You are a careful coding agent.",
        },
        {"step_id": 2, "timestamp": "2026-01-02T03:04:06Z", "source": "user", "message": "Why does the build fail?"},
        {
            "step_id": 3,
            "timestamp": "2026-01-02T03:04:09Z",
            "source": "agent",
            "message": "Let me look at the build files.",
            "reasoning_content": "Read the config and run the build, both at once.",
            "tool_calls": [
                {"tool_call_id": "call_1", "function_name": "read_file", "arguments": {"path": "pyproject.toml"}},
                {"tool_call_id": "call_2", "function_name": "run", "arguments": {"command": "make build"}},
            ],
            "observation": {
                "results": [
                    {"source_call_id": "call_1", "content": '[project]\nname = "demo"'},
                    {"source_call_id": "call_2", "content": "make: *** [build] Error 2", "extra": {"is_error": True}},
                ]
            },
            "metrics": {"prompt_tokens": 1200, "completion_tokens": 80, "cached_tokens": 1000, "cost_usd": 0.01},
        },
        {
            "step_id": 4,
            "timestamp": "2026-01-02T03:04:15Z",
            "source": "agent",
            "message": "The build target is missing its `gen` dependency.",
            "reasoning_content": "make failed before compiling anything.",
            "metrics": {"prompt_tokens": 1300, "completion_tokens": 40, "cached_tokens": 1100, "cost_usd": 0.01},
        },
    ],
    "final_metrics": {
        "total_prompt_tokens": 2500,
        "total_completion_tokens": 120,
        "total_cached_tokens": 2100,
        "total_cost_usd": 0.02,
        "total_steps": 4,
    },
}

EXPECTED_MESSAGES = [
    {"role": "system", "content": "You are a careful coding agent."},
    {"role": "user", "content": "Why does the build fail?"},
    {
        "role": "assistant",
        "content": "Let me look at the build files.",
        "reasoning_content": "Read the config and run the build, both at once.",
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "read_file", "arguments": {"path": "pyproject.toml"}},
            },
            {"id": "call_2", "type": "function", "function": {"name": "run", "arguments": {"command": "make build"}}},
        ],
    },
    {"role": "tool", "content": '[project]\nname = "demo"', "tool_call_id": "call_1", "name": "read_file"},
    {"role": "tool", "content": "make: *** [build] Error 2", "tool_call_id": "call_2", "name": "run", "is_error": True},
    {
        "role": "assistant",
        "content": "The build target is missing its `gen` dependency.",
        "reasoning_content": "make failed before compiling anything.",
    },
]


def messages_of(example: TrainingExample) -> list[dict[str, Any]]:
    return [m.model_dump(exclude_none=True) for m in example.messages]


def rows_of(source: Any, **kwargs: Any) -> list[TrainingExample]:
    return [TrainingExample.from_record(row) for row in load_traces(source, **kwargs)]


def assert_schema_facts(doc: dict[str, Any]) -> None:
    """What harbor's ``Trajectory`` model requires, checked without harbor."""
    assert set(doc) <= ROOT_FIELDS and doc["schema_version"] == SCHEMA_VERSION
    agent = doc["agent"]
    assert set(agent) <= AGENT_FIELDS and isinstance(agent["name"], str) and isinstance(agent["version"], str)
    assert doc["steps"], "a trajectory needs at least one step"
    for number, step in enumerate(doc["steps"], start=1):
        assert set(step) <= STEP_FIELDS and step["step_id"] == number
        assert step["source"] in ("system", "user", "agent")
        assert isinstance(step["message"], (str, list))
        if step["source"] != "agent":
            assert not AGENT_ONLY & set(step)
        calls = step.get("tool_calls") or []
        for call in calls:
            assert set(call) <= CALL_FIELDS and isinstance(call["arguments"], dict)
            assert isinstance(call["tool_call_id"], str) and isinstance(call["function_name"], str)
        call_ids = {call["tool_call_id"] for call in calls}
        for result in (step.get("observation") or {"results": []})["results"]:
            assert set(result) <= RESULT_FIELDS
            assert result.get("source_call_id") is None or result["source_call_id"] in call_ids
    assert set(doc.get("final_metrics") or {}) <= FINAL_FIELDS


def assert_valid(doc: dict[str, Any]) -> None:
    """The schema facts, and harbor's own model where harbor is installed."""
    assert_schema_facts(doc)
    try:
        from harbor.models.trajectories import Trajectory
    except ImportError:
        return
    Trajectory.model_validate(doc)


def test_detected_only_for_atif_documents() -> None:
    assert find_format([TRAJECTORY]).name == "atif"
    assert find_format([{**TRAJECTORY, "schema_version": "1.0"}]) is None
    assert find_format([{"messages": [{"role": "user", "content": "hi"}]}]).name == "openai"


def test_hand_written_trajectory_converts(tmp_path: Path) -> None:
    path = tmp_path / "trajectory.json"
    path.write_text(json.dumps(TRAJECTORY, indent=2))
    (row,) = rows_of(path)
    assert messages_of(row) == EXPECTED_MESSAGES
    assert row.prompt == "Why does the build fail?"
    assert row.system == "You are a careful coding agent."
    assert [t["function"]["name"] for t in row.tools] == ["read_file", "run"]
    assert row.tools[1] == {"type": "function", "function": TRAJECTORY["agent"]["tool_definitions"][1]}
    meta = row.metadata
    assert meta["trace_type"] == "atif" and meta["tool_schema_source"] == "declared"
    assert meta["session_id"] == "run-42"
    assert meta["model"] == "anthropic/claude-sonnet-4"
    assert (meta["agent"], meta["agent_version"]) == ("terminus-2", "2.0.0")
    assert meta["atif_schema_version"] == "ATIF-v1.8"
    assert meta["timestamp"] == "2026-01-02T03:04:05Z"
    assert meta["usage"] == {"prompt_tokens": 2500, "completion_tokens": 120, "cached_tokens": 2100}
    assert meta["cost"] == 0.02


def test_step_metrics_summed_without_final_metrics(tmp_path: Path) -> None:
    doc = {k: v for k, v in TRAJECTORY.items() if k != "final_metrics"}
    path = tmp_path / "trajectory.json"
    path.write_text(json.dumps(doc))
    (row,) = rows_of(path)
    assert row.metadata["usage"] == {"prompt_tokens": 2500, "completion_tokens": 120, "cached_tokens": 2100}
    assert row.metadata["cost"] == pytest.approx(0.02)


def test_producer_variants(tmp_path: Path) -> None:
    """Text-only agents (results of no call), Claude Code adapter error flags, developer steps, images."""
    doc = copy.deepcopy(TRAJECTORY)
    doc["steps"][0]["extra"] = {"role": "developer"}
    agent_step = doc["steps"][2]
    agent_step["observation"]["results"][1]["extra"] = {"tool_result_is_error": True}
    agent_step["observation"]["results"].append({"content": "Current terminal state:\n$ "})
    image = {"type": "image", "source": {"media_type": "image/png", "path": "shots/1.png"}}
    agent_step["observation"]["results"][0]["content"] = [{"type": "text", "text": "see"}, image]
    path = tmp_path / "trajectory.json"
    path.write_text(json.dumps(doc))
    (row,) = rows_of(path)
    messages = messages_of(row)
    assert messages[0]["role"] == "developer"
    assert messages[3]["content"] == [{"type": "text", "text": "see"}, {"type": "image", "image": "shots/1.png"}]
    assert messages[4]["is_error"] is True
    assert messages[5] == {"role": "user", "content": "Current terminal state:\n$ "}
    assert messages[6]["role"] == "assistant"


def test_trajectories_as_json_lines(tmp_path: Path) -> None:
    second = {**TRAJECTORY, "session_id": "run-43"}
    path = tmp_path / "trajectories.jsonl"
    write_jsonl_atomic(path, [TRAJECTORY, second])
    rows = rows_of(path)
    assert [r.metadata["session_id"] for r in rows] == ["run-42", "run-43"]
    assert [r.metadata["source_line"] for r in rows] == [1, 2]
    assert all(messages_of(r) == EXPECTED_MESSAGES for r in rows)


def test_round_trip_of_real_traces(tmp_path: Path, shared_examples: dict[str, TrainingExample]) -> None:
    for stem, example in shared_examples.items():
        doc = to_atif(example)
        assert_valid(doc)
        jsonl, document = tmp_path / f"{stem}.jsonl", tmp_path / stem / "trajectory.json"
        write_jsonl_atomic(jsonl, [doc])
        write_json_atomic(document, doc)
        for path in (jsonl, document):
            (back,) = rows_of(path)
            assert messages_of(back) == messages_of(example), stem
            assert back.tools == example.tools, stem
            assert back.prompt == example.prompt and back.system == example.system, stem
            assert back.metadata["trace_type"] == "atif"
            assert back.metadata["session_id"] == example.metadata["session_id"]
            assert back.metadata.get("usage") == example.metadata.get("usage"), stem


def test_written_trajectory_shape() -> None:
    (row,) = [TrainingExample.model_validate({"prompt": "", "messages": EXPECTED_MESSAGES})]
    row.metadata.update(session_id="s-1", model="m-1", usage={"input_tokens": 10, "output_tokens": 2}, cost=0.5)
    doc = to_atif(row)
    assert_valid(doc)
    assert [s["source"] for s in doc["steps"]] == ["system", "user", "agent", "agent"]
    results = doc["steps"][2]["observation"]["results"]
    assert results == [
        {"source_call_id": "call_1", "content": '[project]\nname = "demo"'},
        {"source_call_id": "call_2", "content": "make: *** [build] Error 2", "extra": {"is_error": True}},
    ]
    assert doc["agent"]["model_name"] == "m-1" and doc["session_id"] == "s-1"
    assert doc["final_metrics"] == {
        "total_prompt_tokens": 10,
        "total_completion_tokens": 2,
        "total_cost_usd": 0.5,
        "total_steps": 4,
    }


def test_tool_result_without_its_call_is_kept() -> None:
    messages = [
        {"role": "user", "content": "go"},
        {"role": "tool", "content": "late output", "tool_call_id": "call_9", "name": "run"},
        {"role": "assistant", "content": "done"},
    ]
    doc = to_atif(TrainingExample.model_validate({"prompt": "go", "messages": messages}))
    assert_valid(doc)
    (back,) = rows_of([doc])
    assert messages_of(back) == messages


def test_cli_writes_atif_trajectories(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "trajectory.json").write_text(json.dumps(TRAJECTORY))
    row = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    (tmp_path / "in" / "rows.jsonl").write_text(json.dumps(row) + "\n")
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(app, ["convert", str(tmp_path / "in"), "--to", "atif", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "wrote 2 ATIF trajectories" in result.output
    docs = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(docs) == 2
    for doc in docs:
        assert_valid(doc)
    back = rows_of(out)
    assert sorted(len(r.messages) for r in back) == [2, len(EXPECTED_MESSAGES)]
    assert all(r.metadata["trace_type"] == "atif" for r in back)


def test_cli_default_is_still_openai(tmp_path: Path) -> None:
    source = tmp_path / "trajectory.json"
    source.write_text(json.dumps(TRAJECTORY))
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(app, ["convert", str(source), "--out", str(out)])
    assert result.exit_code == 0, result.output
    (row,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert row["messages"] == EXPECTED_MESSAGES


def test_step_missing_required_fields_is_one_problem(tmp_path: Path) -> None:
    broken = copy.deepcopy(TRAJECTORY)
    del broken["steps"][1]["source"]
    (tmp_path / "bad.json").write_text(json.dumps(broken))
    no_message = copy.deepcopy(TRAJECTORY)
    del no_message["steps"][3]["message"]
    lines = tmp_path / "mixed.jsonl"
    write_jsonl_atomic(lines, [no_message, TRAJECTORY])
    (tmp_path / "good.json").write_text(json.dumps({**TRAJECTORY, "session_id": "run-43"}))
    dataset, report = load_traces(tmp_path, return_report=True)
    assert sorted(json.loads(m)["session_id"] for m in dataset["metadata"]) == ["run-42", "run-43"]
    problems = sorted(report.problems, key=str)
    assert [(Path(p.path).name, p.line) for p in problems] == [("bad.json", None), ("mixed.jsonl", 1)]
    for problem, field in zip(problems, ("source", "message"), strict=True):
        text = str(problem)
        assert "\n" not in text and text.startswith(problem.path)
        assert f"'{field}'" in text and "atif" in text


def test_harbor_accepts_written_trajectories(shared_examples: dict[str, TrainingExample]) -> None:
    trajectories = pytest.importorskip("harbor.models.trajectories")
    for example in [*shared_examples.values(), *rows_of([TRAJECTORY])]:
        trajectories.Trajectory.model_validate(to_atif(example))
