"""Shared fixtures: the real traces in ``../shared/traces`` (tests skip where it is absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

from teich import TrainingExample, load_traces

SHARED_TRACES = Path(__file__).resolve().parents[1].parent / "shared" / "traces"


@pytest.fixture(scope="session")
def shared_traces() -> Path:
    if not SHARED_TRACES.is_dir():
        pytest.skip("../shared/traces is not present")
    return SHARED_TRACES


@pytest.fixture(scope="session")
def shared_examples(shared_traces: Path) -> dict[str, TrainingExample]:
    """Each shared trace file converted, keyed by file stem."""
    converted = {}
    for path in sorted(shared_traces.glob("*.jsonl")):
        (row,) = load_traces(path)
        converted[path.stem] = TrainingExample.from_record(row)
    return converted
