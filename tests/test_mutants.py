"""Tests written for mutants that survived scripts/mutation_score.py (expected values stated by hand)."""

from __future__ import annotations

import json
from pathlib import Path

from teich import load_traces


def _codex(kind: str, **payload) -> dict:
    return {"timestamp": "2026-01-01T00:00:00Z", "type": "response_item", "payload": {"type": kind, **payload}}


def test_an_unknown_codex_item_is_counted_as_left_out(tmp_path: Path) -> None:
    # Survivor: src/teich/traces/formats/codex.py `conversation.leave_out(f"codex item {kind!r}")` removed.
    records = [
        {"timestamp": "2026-01-01T00:00:00Z", "type": "session_meta", "payload": {"id": "s1", "cwd": "/w"}},
        _codex("message", role="user", content=[{"type": "input_text", "text": "hello"}]),
        _codex("hologram_call", id="h1"),
        _codex("message", role="assistant", content=[{"type": "output_text", "text": "hi"}]),
    ]
    path = tmp_path / "rollout-2026-01-01T00-00-00-s1.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    dataset, report = load_traces(path, return_report=True)
    assert len(dataset) == 1
    assert report.left_out == {"codex item 'hologram_call'": 1}


def test_a_claude_code_record_with_a_bad_rendered_field_is_reported(tmp_path: Path) -> None:
    # Survivor: src/teich/traces/formats/claude_code.py `field(record, "rendered", list, NULL)` removed.
    def record(kind: str, uuid: str, parent: str | None, content, **extra) -> dict:
        return {"type": kind, "uuid": uuid, "parentUuid": parent, "sessionId": "s1",
                "timestamp": "2026-01-01T00:00:00Z", "message": {"role": kind, "content": content}, **extra}

    records = [
        record("user", "u1", None, "hello"),
        record("assistant", "a1", "u1", [{"type": "text", "text": "hi"}]),
        record("user", "u2", "a1", "again", rendered="not a list"),
        record("assistant", "a2", "u2", [{"type": "text", "text": "welcome"}]),
    ]
    path = tmp_path / "s1.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    _dataset, report = load_traces(path, return_report=True)
    assert [p.line for p in report.problems if "'rendered'" in p.message] == [3]
