"""Where rows come from: folders, tool snapshots, saved datasets, Dataset objects, Hub ids, and
the standalone output of ``teich convert``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import datasets
import pytest
from typer.testing import CliRunner

import teich.traces.sources
from teich import TeichError, TrainingExample, load_traces
from teich.cli import app

ROW = {
    "messages": [
        {"role": "user", "content": "List files"},
        {"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "shell", "arguments": {"cmd": "ls"}}}]},
        {"role": "tool", "tool_call_id": "c", "content": "a.txt"},
        {"role": "assistant", "content": "One file: a.txt"},
    ]
}
SNAPSHOT = [
    {
        "type": "function",
        "function": {
            "name": "shell",
            "description": "Run a command",
            "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}, "required": ["cmd"]},
        },
    },
    {"type": "function", "function": {"name": "read_file", "description": "Read", "parameters": {"type": "object"}}},
]


def _rows(dataset):
    return [TrainingExample.from_record(r) for r in dataset]


def test_folder_is_read_recursively_with_tool_snapshot(tmp_path, shared_traces):
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    shutil.copy(shared_traces / "codex.jsonl", nested / "codex.jsonl")
    shutil.copy(shared_traces / "cursor.jsonl", tmp_path / "cursor.jsonl")
    (tmp_path / "a" / "tools.json").write_text(json.dumps(SNAPSHOT))
    (tmp_path / "notes.txt").write_text("not a trace")
    by_type = {r.metadata["trace_type"]: r for r in _rows(load_traces(tmp_path))}
    assert set(by_type) == {"codex", "cursor"}
    codex = by_type["codex"]
    # the snapshot's schemas (incl. the never-called read_file) plus inferred ones for other called tools
    names = [t["function"]["name"] for t in codex.tools]
    assert names[:2] == ["shell", "read_file"] and {"exec_command", "apply_patch", "write_stdin"} <= set(names)
    assert codex.metadata["tool_schema_source"] == "snapshot"
    # the cursor trace declared its own tools, and sits outside the snapshot's folder
    assert by_type["cursor"].metadata["tool_schema_source"] == "declared"


def test_dataset_object_and_saved_dataset(tmp_path):
    stored = load_traces(_jsonl(tmp_path, [ROW, ROW]))
    assert len(stored) == 2
    again = load_traces(stored)  # a datasets.Dataset in Teich's own storage form
    assert _rows(again) == _rows(stored)
    stored.save_to_disk(str(tmp_path / "saved"))
    assert _rows(load_traces(tmp_path / "saved")) == _rows(stored)
    split_dict = datasets.DatasetDict({"train": stored, "test": stored.select([0])})
    assert len(load_traces(split_dict, split="test")) == 1
    with pytest.raises(TeichError, match="split 'validation' not found"):
        load_traces(split_dict, split="validation")


def test_parquet_file(tmp_path):
    datasets.Dataset.from_list([{"messages": ROW["messages"][:1] + [ROW["messages"][3]]}]).to_parquet(
        str(tmp_path / "rows.parquet")
    )
    (row,) = _rows(load_traces(tmp_path / "rows.parquet"))
    assert row.messages[-1].content == "One file: a.txt"


def test_hub_dataset_id_downloads_a_snapshot(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    (repo / "data").mkdir(parents=True)
    _jsonl(repo / "data", [ROW], "train-00000.jsonl")
    _jsonl(repo / "data", [ROW, ROW], "test-00000.jsonl")
    calls = []

    def fake_snapshot_download(repo_id, **kwargs):
        calls.append((repo_id, kwargs))
        return str(repo)

    monkeypatch.setattr("huggingface_hub.snapshot_download", fake_snapshot_download)
    assert len(load_traces("someone/agent-traces", revision="v1", token="hf_x")) == 1
    assert len(load_traces("someone/agent-traces", split="test")) == 2
    repo_id, kwargs = calls[0]
    assert repo_id == "someone/agent-traces"
    assert kwargs["repo_type"] == "dataset" and kwargs["revision"] == "v1" and kwargs["token"] == "hf_x"


def test_list_of_sources(tmp_path, shared_traces):
    rows = _rows(load_traces([shared_traces / "cursor.jsonl", _jsonl(tmp_path, [ROW])]))
    assert [r.metadata["trace_type"] for r in rows] == ["cursor", "openai"]


def test_unknown_source_type():
    with pytest.raises(TeichError, match="cannot load traces from a int"):
        load_traces(3)


def test_convert_output_is_standalone(tmp_path, shared_traces, qwen_template_tokenizer):
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(app, ["convert", str(shared_traces), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "wrote 7 rows" in result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 7
    for row in rows:
        # plain dicts, arguments as objects: rendered with any HF chat template, no Teich needed
        text = qwen_template_tokenizer.apply_chat_template(row["messages"], tools=row["tools"], tokenize=False)
        assert row["prompt"][:50].strip() in text
    assert load_traces(out).num_rows == 7  # and it reads back


def _jsonl(folder: Path, rows, name="rows.jsonl") -> Path:
    path = folder / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def qwen_template_tokenizer():
    """A tiny offline tokenizer carrying the Qwen3 chat template that ``trl`` ships."""
    from importlib.resources import files

    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    tokenizer = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({"<unk>": 0}, "<unk>")))
    tokenizer.chat_template = (files("trl") / "chat_templates" / "qwen3.jinja").read_text()
    return tokenizer


def test_module_exports_trace_is_complete():
    assert teich.traces.sources.trace_is_complete({"messages": [{"role": "assistant"}]})
    assert not teich.traces.sources.trace_is_complete({"messages": [{"role": "tool"}]})


def test_missing_relative_file_is_not_taken_for_a_hub_id(monkeypatch):
    monkeypatch.setattr("huggingface_hub.snapshot_download", lambda *a, **k: pytest.fail("downloaded"))
    with pytest.raises(TeichError, match="data/x.jsonl: no such file or folder"):
        load_traces("data/x.jsonl")


def test_rows_without_tools_get_their_agents_offered_tools_in_memory_as_from_a_file(tmp_path):
    """A row that names its agent (``trace_type``) and declares no tools gets the tools that agent offered,
    whether it comes as a dict, a list, a ``Dataset`` or a line of a file: the same row, the same context."""
    row = {
        "messages": [
            {"role": "user", "content": "Show README.md"},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "read", "arguments": '{"path": "README.md"}'}}
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "# Demo"},
            {"role": "assistant", "content": "It is a one-line README."},
        ],
        "metadata": {"trace_type": "pi"},
    }
    (tmp_path / "rows.jsonl").write_text(json.dumps(row) + "\n")
    catalog = json.loads((Path(teich.traces.sources.__file__).parent / "catalogs" / "pi.json").read_text())
    newest = max(catalog["entries"], key=lambda entry: tuple(int(part) for part in entry["version"].split(".")))
    offered = [tool["function"]["name"] for tool in newest["tools"]]
    loaded = {
        "dict": load_traces(row),
        "list": load_traces([row]),
        "dataset": load_traces(datasets.Dataset.from_list([row])),
        "file": load_traces(tmp_path / "rows.jsonl"),
    }
    for how, rows in loaded.items():
        tools = json.loads(rows[0]["tools"])
        assert [tool["function"]["name"] for tool in tools] == offered, how
        assert json.loads(rows[0]["metadata"])["tool_schema_source"] == "catalog", how
