"""The README's quick start works offline on the bundled samples."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

from typer.testing import CliRunner

from teich import load_traces
from teich.cli import app

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_prepare_sample_prints_trained_tokens(capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["prepare_sample.py"])
    runpy.run_path(str(EXAMPLES / "prepare_sample.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "qwen3_6: 4 of 4 rows kept" in out
    headers = [line for line in out.splitlines() if line.startswith("=== ")]
    assert len(headers) == 4 and "[[" in out and "<|im_end|>]]" in out


def test_convert_samples(tmp_path):
    out = tmp_path / "sample.jsonl"
    result = CliRunner().invoke(app, ["convert", str(EXAMPLES / "traces"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["metadata"]["trace_type"] for r in rows) == ["claude_code", "codex", "teich_chat", "teich_chat"]
    assert len(load_traces(out)) == 4
