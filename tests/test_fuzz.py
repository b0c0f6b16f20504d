"""Seeded fuzzing of the loaders with damaged copies of real inputs: the shared sessions
(``../shared/traces``), the bundled ones (``tests/data``) and row datasets made from them.

Each case damages one input in one way: a flipped bit, a cut, a deleted or repeated line, a JSON
field of another type or deleted, deep nesting, a lone surrogate, tool arguments that are not JSON.
Whatever the damage, ``load_traces``, ``teich convert`` and ``prepare_data`` raise nothing but a
``TeichError``, each problem is one line naming its file and no Python exception, and damage confined
to one record costs at most that record: the other rows of a row dataset load, and a session is never
rejected whole for a record other than its first. The default run tries a few hundred cases, ``-m slow``
thousands.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import SHARED_TRACES
from typer.testing import CliRunner

from teich import TeichError, TrainingExample, load_traces, prepare_data
from teich.cli import app
from teich.traces.formats.atif import to_atif

BUNDLED = Path(__file__).parent / "data"
PYTHON_ERROR = re.compile(r"\b[A-Z]\w*(?:Error|Exception)\b")
SWAPS: tuple[Any, ...] = (None, [], 7, -1.5e308, True, "text", {"a": {"b": [1]}}, [{"k": None}], "")
DEEP = (150, 3000)  # past Teich's limit; past Python's recursion limit
MARK = "teichfuzzmark"
SEED = 1105


@dataclass
class Case:
    """One damaged input: which source, how it was damaged, and the line changed (when one was)."""

    source: Path
    kind: str
    seed: int
    data: bytes = b""
    line: int | None = None

    def __str__(self) -> str:
        return f"{self.kind} #{self.seed} of {self.source.name} (line {self.line})"


Mutation = Callable[[random.Random, list[bytes]], tuple[list[bytes], int | None]]


def byte_flip(rng: random.Random, lines: list[bytes]) -> tuple[list[bytes], int | None]:
    data = bytearray(b"".join(lines))
    data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    return [bytes(data)], None


def truncate(rng: random.Random, lines: list[bytes]) -> tuple[list[bytes], int | None]:
    data = b"".join(lines)
    return [data[: rng.randrange(len(data))]], None


def delete_line(rng: random.Random, lines: list[bytes]) -> tuple[list[bytes], int | None]:
    index = rng.randrange(len(lines))
    return lines[:index] + lines[index + 1 :], index + 1


def duplicate_line(rng: random.Random, lines: list[bytes]) -> tuple[list[bytes], int | None]:
    index = rng.randrange(len(lines))
    return lines[: index + 1] + lines[index:], index + 1


def type_swap(rng: random.Random, lines: list[bytes]) -> tuple[list[bytes], int | None]:
    return _edit_record(rng, lines, lambda record, path: _set(record, path, rng.choice(SWAPS)))


def drop_field(rng: random.Random, lines: list[bytes]) -> tuple[list[bytes], int | None]:
    def edit(record: Any, path: tuple) -> None:
        parent = record
        for key in path[:-1]:
            parent = parent[key]
        del parent[path[-1]]

    return _edit_record(rng, lines, edit)


def deep_nesting(rng: random.Random, lines: list[bytes]) -> tuple[list[bytes], int | None]:
    depth = rng.choice(DEEP)
    nested = ("[" * depth + "]" * depth).encode()
    return _edit_record(rng, lines, lambda record, path: _set(record, path, MARK), {f'"{MARK}"'.encode(): nested})


def surrogate_escape(rng: random.Random, lines: list[bytes]) -> tuple[list[bytes], int | None]:
    return _edit_record(rng, lines, _mark_text, {MARK.encode(): rb"\ud800"}, strings=True)


def surrogate_bytes(rng: random.Random, lines: list[bytes]) -> tuple[list[bytes], int | None]:
    return _edit_record(rng, lines, _mark_text, {MARK.encode(): b"\xed\xa0\x80"}, strings=True)


def non_json_arguments(rng: random.Random, lines: list[bytes]) -> tuple[list[bytes], int | None]:
    def edit(record: Any, path: tuple) -> None:
        arguments = [p for p, _ in _nodes(record) if p[-1] in ("arguments", "input")]
        if arguments:
            _set(record, rng.choice(arguments), rng.choice(["{not json", "[1, 2]", "42"]))

    with_calls = [i for i, line in enumerate(lines) if b'"arguments"' in line or b'"input"' in line]
    return _edit_record(rng, lines, edit, only=with_calls)


MUTATIONS: dict[str, Mutation] = {
    f.__name__: f
    for f in (
        byte_flip,
        truncate,
        delete_line,
        duplicate_line,
        type_swap,
        drop_field,
        deep_nesting,
        surrogate_escape,
        surrogate_bytes,
        non_json_arguments,
    )
}
# Damage confined to one line (so to one record).
ONE_RECORD = {"delete_line", "duplicate_line", "type_swap", "drop_field", "deep_nesting", "surrogate_escape"}
ONE_RECORD |= {"surrogate_bytes", "non_json_arguments"}


def _nodes(value: Any, path: tuple = ()) -> Iterator[tuple[tuple, Any]]:
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in children:
        yield (*path, key), child
        yield from _nodes(child, (*path, key))


def _set(record: Any, path: tuple, value: Any) -> None:
    for key in path[:-1]:
        record = record[key]
    record[path[-1]] = value


def _mark_text(record: Any, path: tuple) -> None:
    _set(record, path, MARK + "tail")


def _edit_record(
    rng: random.Random,
    lines: list[bytes],
    edit: Callable[[Any, tuple], None],
    replace: dict[bytes, bytes] | None = None,
    strings: bool = False,
    only: list[int] | None = None,
) -> tuple[list[bytes], int | None]:
    """``lines`` with ``edit`` applied at a random place of one record, then written back (``replace``
    swapping the text of a marker for what JSON cannot express)."""
    candidates = only if only else list(range(len(lines)))
    index = rng.choice(candidates)
    try:
        record = json.loads(lines[index])
    except ValueError:
        return lines, None
    places = [path for path, value in _nodes(record) if not strings or isinstance(value, str)]
    if not places:
        return lines, None
    edit(record, rng.choice(places))
    text = json.dumps(record, ensure_ascii=rng.random() < 0.5).encode()
    for marker, raw in (replace or {}).items():
        text = text.replace(marker, raw, 1)
    ending = b"\n" if lines[index].endswith(b"\n") else b""
    return [*lines[:index], text + ending, *lines[index + 1 :]], index + 1


@pytest.fixture(scope="module", params=["bundled", "shared"])
def sources(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[Path, int]:
    """Every fuzzed input with the rows it loads undamaged: the bundled or the shared sessions, and row
    datasets made from them."""
    if request.param == "bundled":
        sessions = sorted(BUNDLED.rglob("*.jsonl"))
    elif SHARED_TRACES.is_dir():
        sessions = sorted(SHARED_TRACES.glob("*.jsonl"))
    else:
        pytest.skip("../shared/traces is not present")
    rows = [TrainingExample.from_record(r) for r in load_traces(sessions)]
    folder = tmp_path_factory.mktemp("rows")
    made = {
        "openai.jsonl": [r.to_openai() for r in rows],
        "stored.jsonl": [r.to_record() for r in rows],
        "atif.jsonl": [to_atif(r) for r in rows[:8]],
        "sharegpt.jsonl": [_sharegpt(r) for r in rows[:8]],
    }
    for name, records in made.items():
        (folder / name).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return {path: len(load_traces(path)) for path in [*sessions, *(folder / name for name in made)]}


def _sharegpt(row: TrainingExample) -> dict[str, Any]:
    speakers = {"user": "human", "assistant": "gpt", "system": "system", "developer": "system", "tool": "observation"}
    turns = []
    for message in row.messages:
        for call in message.tool_calls or ():
            turns.append({"from": "function_call", "value": json.dumps(call.function.model_dump())})
        if message.content or not message.tool_calls:
            turns.append({"from": speakers[message.role], "value": str(message.content or "")})
    return {"conversations": turns}


def cases(sources: dict[Path, int], kind: str, count: int) -> Iterator[Case]:
    rng = random.Random(f"{SEED}-{kind}")
    paths = sorted(sources)
    for seed in range(count):
        source = rng.choice(paths)
        lines = source.read_bytes().splitlines(keepends=True)
        damaged, line = MUTATIONS[kind](random.Random(f"{SEED}-{kind}-{seed}"), lines)
        yield Case(source, kind, seed, b"".join(damaged), line)


def load_case(case: Case, baseline: int, folder: Path) -> str:
    """Load one damaged input and check the promises; how it went: ``full``, ``partial`` or ``rejected``."""
    path = folder / f"{case.kind}-{case.seed}-{case.source.name}"
    path.write_bytes(case.data)
    try:
        dataset, report = load_traces(path, return_report=True)
    except TeichError as error:
        assert_one_line(str(error), path, case)
        return "rejected"
    except Exception as error:  # the promise broken: say which case
        pytest.fail(f"{case}: {type(error).__name__}: {error}")
    for problem in report.problems + report.repairs:
        assert_one_line(str(problem), path, case)
    if case.kind in ONE_RECORD and case.line:
        assert_rest_kept(case, baseline, len(dataset), report)
    path.unlink()
    if len(dataset) == baseline and not report.problems and not report.repairs:
        return "full"
    return "partial" if len(dataset) else "rejected"


def assert_one_line(text: str, path: Path, case: Case) -> None:
    assert "\n" not in text, case
    assert str(path) in text, (case, text)
    assert not PYTHON_ERROR.search(text), (case, text)


def assert_rest_kept(case: Case, baseline: int, rows: int, report: Any) -> None:
    """Damage to one record costs that record: a row dataset keeps its other rows, and a session is not
    rejected whole (unless the record was the one its format is recognised by)."""
    if case.source.parent.name.startswith("rows"):
        assert rows >= baseline - 1, (case, report.summary())
    elif case.line > 1:
        whole = [p for p in report.problems if "cannot convert" in p.message or "unknown trace format" in p.message]
        assert not whole, (case, whole)


def run_loads(sources: dict[Path, int], kind: str, count: int, folder: Path) -> Counter[str]:
    return Counter(load_case(case, sources[case.source], folder) for case in cases(sources, kind, count))


@pytest.mark.parametrize("kind", MUTATIONS)
def test_load_traces_raises_only_teich_errors_and_keeps_the_rest(kind, sources, tmp_path) -> None:
    outcomes = run_loads(sources, kind, 20, tmp_path)
    assert sum(outcomes.values()) == 20


@pytest.mark.slow
@pytest.mark.parametrize("kind", MUTATIONS)
def test_load_traces_thousands(kind, sources, tmp_path) -> None:
    outcomes = run_loads(sources, kind, 200, tmp_path)
    assert sum(outcomes.values()) == 200


def convert_case(case: Case, folder: Path) -> int:
    path = folder / f"{case.kind}-{case.seed}-{case.source.name}"
    path.write_bytes(case.data)
    result = CliRunner().invoke(app, ["convert", str(path), "--out", str(folder / "out.jsonl")])
    assert result.exception is None or isinstance(result.exception, SystemExit), (case, result.exception)
    assert "Traceback" not in result.output, case
    assert result.exit_code in (0, 1), case
    return result.exit_code


@pytest.mark.parametrize("kind", MUTATIONS)
def test_convert_never_shows_a_traceback(kind, sources, tmp_path) -> None:
    for case in cases(sources, kind, 2):
        convert_case(case, tmp_path)


@pytest.fixture(scope="module")
def tokenizer():
    from model_families import family_tokenizer

    return family_tokenizer("qwen3")


def prepare_case(case: Case, tokenizer: Any, folder: Path) -> None:
    path = folder / f"{case.kind}-{case.seed}-{case.source.name}"
    path.write_bytes(case.data)
    try:
        prepare_data(path, tokenizer, strict=case.seed % 2 == 0, return_report=True)
    except TeichError as error:  # it may name no file: when every row was dropped, it gives the load's summary
        assert "\n" not in str(error) and not PYTHON_ERROR.search(str(error)), (case, error)
    except Exception as error:
        pytest.fail(f"{case}: {type(error).__name__}: {error}")


def small(sources: dict[Path, int]) -> dict[Path, int]:
    """The inputs quick to render: under 100 kB."""
    return {path: rows for path, rows in sources.items() if path.stat().st_size < 100_000}


@pytest.mark.parametrize("kind", MUTATIONS)
def test_prepare_data_raises_only_teich_errors(kind, sources, tokenizer, tmp_path) -> None:
    for case in cases(small(sources), kind, 2):
        prepare_case(case, tokenizer, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("kind", MUTATIONS)
def test_convert_and_prepare_thousands(kind, sources, tokenizer, tmp_path) -> None:
    for case in cases(sources, kind, 30):
        convert_case(case, tmp_path)
    for case in cases(small(sources), kind, 30):
        prepare_case(case, tokenizer, tmp_path)
