"""One report shape: every report Teich hands back, from a real call, is JSON with the same keys,
one summary line, and a table that shows its counts."""

from __future__ import annotations

import asyncio
import importlib
import json
import pkgutil
from pathlib import Path

import pytest
from model_families import family_tokenizer
from openai_server import Reply, scripted_servers
from rich.console import Console
from test_generate import make_project

import teich
from teich import Config, Report, anonymize, audit, extract, load_traces, prepare_data
from teich.generate.runner import generate, make_provider, plan

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "traces"


def report_types() -> set[type]:
    """Every report class in the package."""
    for module in pkgutil.walk_packages(teich.__path__, "teich."):
        if module.name != "teich.__main__":
            importlib.import_module(module.name)
    found, todo = set(), [Report]
    while todo:
        for cls in todo.pop().__subclasses__():
            found.add(cls)
            todo.append(cls)
    return found


def generation_summary(folder: Path) -> Report:
    """The summary of a generation run against a scripted server; one prompt line is a duplicate."""
    with scripted_servers() as serve:
        server = serve([Reply(content="Hi!"), Reply(content="Bye!")])
        config = Config.from_yaml(make_project(folder, server, ["Hello", "Goodbye", "Hello"]))
        provider = make_provider(config)
        pending, summary = plan(config, provider, resume=False, limit=None)
        return asyncio.run(generate(config, provider, pending, summary))


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> list[Report]:
    """One report of each kind, each from a real call."""
    _, loaded = load_traces(EXAMPLES, return_report=True)
    dataset, prepared = prepare_data(EXAMPLES, family_tokenizer("qwen3_6"), return_report=True)
    extracted = extract(tmp_path_factory.mktemp("extract") / "out", source=EXAMPLES, anonymize=False)
    redacted = anonymize(EXAMPLES, tmp_path_factory.mktemp("anonymize") / "out", return_report=True)
    generated = generation_summary(tmp_path_factory.mktemp("generate"))
    return [loaded, prepared, audit(dataset), generated, extracted, redacted]


def test_every_report_type_is_covered(reports) -> None:
    assert {type(report) for report in reports} == report_types()


def test_to_dict_has_the_common_keys_and_is_json(reports) -> None:
    for report in reports:
        data = report.to_dict()
        assert list(data) == ["report", "counts", "reasons", "notes"]
        assert data["report"] == report.kind
        assert json.loads(json.dumps(data)) == data
        assert all(isinstance(n, int | float) for n in data["counts"].values())
        assert all(isinstance(n, int) for counts in data["reasons"].values() for n in counts.values())
        assert all(isinstance(line, str) for lines in data["notes"].values() for line in lines)


def test_summary_is_one_line(reports) -> None:
    for report in reports:
        summary = report.summary()
        assert summary and "\n" not in summary


def test_table_shows_the_counts(reports) -> None:
    for report in reports:
        console = Console(record=True, width=200)
        console.print(report.table())
        lines = console.export_text().splitlines()
        assert lines[0].strip() == report.kind
        for name, value in report.to_dict()["counts"].items():
            shown = f"{value:.4f}" if isinstance(value, float) else str(value)
            assert [*name.split("_"), shown] in [line.split() for line in lines]


def test_the_reports_say_what_happened(reports) -> None:
    loaded, prepared, audited, generated, extracted, *_ = (report.to_dict() for report in reports)
    assert loaded["counts"] == {"rows": 4, "files": 3}
    assert prepared["counts"]["kept"] == 4 and prepared["counts"]["tokens"] > 0
    assert audited["counts"]["supervised"] > 0 and sum(audited["reasons"]["supervised_by_kind"].values()) > 0
    assert generated["counts"]["done"] == 2
    (skipped,) = generated["notes"]["skipped"]
    assert "duplicate of the prompt on line 1" in skipped
    assert extracted["counts"]["sessions_kept"] == 2 and extracted["reasons"]["skipped"] == {"not a session": 1}


def test_reasons_come_most_frequent_first(tmp_path: Path) -> None:
    user = {"role": "user", "content": "hi"}
    tool_ending = [user, {"role": "assistant", "content": "x"}, {"role": "tool", "tool_call_id": "a", "content": "r"}]
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps({"messages": m}) + "\n" for m in ([user], [user], tool_ending)))
    _, report = load_traces(path, return_report=True)
    dropped = report.to_dict()["reasons"]["dropped"]
    assert list(dropped.items()) == [("no assistant turn", 2), ("ends on a tool result", 1)]
