"""Running every prompt of a config through its provider: concurrency, resume, failures, outputs.

Rows are appended to ``<traces_dir>/train.jsonl`` one complete line at a time, flushed and synced,
as each prompt finishes. A run that is killed loses at most the prompts in flight: ``--resume``
cuts a half-written last line, skips every prompt that already has a row, and retries the rest,
failed ones included. A prompt that keeps failing is written to ``<failures_dir>/<key>.json`` with
its error, and the run goes on.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from teich.errors import TeichError
from teich.files import write_json_atomic
from teich.generate.chat import ChatProvider, GenerationError
from teich.generate.config import Config
from teich.generate.prompts import PromptSpec, key_for, read_prompts

ROWS_FILE = "train.jsonl"


@dataclass
class Summary:
    """What a generation run did."""

    output: Path
    pending: int = 0
    done: int = 0
    failed: int = 0
    skipped: int = 0
    tokens: int = 0
    cost: float = 0.0
    problems: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def line(self) -> str:
        cost = f", ${self.cost:.4f}" if self.cost else ""
        return (
            f"{self.done} done, {self.failed} failed, {self.skipped} already done, "
            f"{self.tokens} tokens{cost} -> {self.output}"
        )


class RowLog:
    """The append-only JSONL file of finished rows."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def rows(self) -> list[dict[str, Any]]:
        """Every complete row; a line cut short by a crash is removed from the file first."""
        if not self.path.exists():
            return []
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            data = data[: data.rfind(b"\n") + 1]
            with self.path.open("r+b") as handle:
                handle.truncate(len(data))
        rows = []
        for number, line in enumerate(data.splitlines(), start=1):
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                raise TeichError(f"{self.path}:{number}: not a JSON row; fix or remove it before resuming") from None
        return rows

    def append(self, row: dict[str, Any]) -> None:
        """One row as one line, written with a single call and synced before returning."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = (json.dumps(row, ensure_ascii=False) + "\n").encode()
        descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(descriptor, line)
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def row_key(row: dict[str, Any]) -> str:
    """The resume key of an output row: its prompt, system prompt and follow-ups."""
    return key_for(row.get("prompt", ""), row.get("system"), row.get("follow_up_prompts") or ())


def plan(config: Config, *, resume: bool, limit: int | None) -> tuple[list[PromptSpec], Summary]:
    """The prompts still to run, and a summary holding what was skipped and why."""
    specs, problems = read_prompts(config.prompts_file, default_system=config.system_prompt)
    log = RowLog(config.output.traces_dir / ROWS_FILE)
    summary = Summary(output=log.path, problems=list(problems))
    rows = log.rows()
    if rows and not resume:
        raise TeichError(f"{log.path} already has {len(rows)} rows: pass --resume to continue, or remove it")
    done = {row_key(row) for row in rows if _complete(row)}
    pending = [spec for spec in specs if spec.key not in done]
    summary.skipped = len(specs) - len(pending)
    if limit is not None:
        pending = pending[:limit]
    summary.pending = len(pending)
    return pending, summary


def _complete(row: dict[str, Any]) -> bool:
    messages = row.get("messages") or []
    return bool(messages) and messages[-1].get("role") == "assistant"


async def generate(
    config: Config,
    pending: list[PromptSpec],
    summary: Summary,
    *,
    concurrency: int | None = None,
    on_update: Callable[[Summary], None] | None = None,
) -> Summary:
    """Run the pending prompts, at most ``concurrency`` at a time, writing rows as they finish."""
    log = RowLog(summary.output)
    failures = config.output.failures_dir
    provider = ChatProvider(config)
    gate = asyncio.Semaphore(concurrency or config.concurrency)

    async def one(spec: PromptSpec) -> None:
        async with gate:
            try:
                row = await provider.run(spec)
            except GenerationError as error:
                summary.failed += 1
                summary.failures.append(f"{spec.prompt[:60]!r}: {error}")
                write_json_atomic(failures / f"{spec.key}.json", _failure(spec, str(error)))
            else:
                log.append(row)
                (failures / f"{spec.key}.json").unlink(missing_ok=True)
                summary.done += 1
                usage = row["metadata"].get("usage", {})
                summary.tokens += usage.get("input_tokens", 0) + usage.get("output_tokens", 0)
                summary.cost += row["metadata"].get("cost", 0.0)
            if on_update:
                on_update(summary)

    try:
        await asyncio.gather(*(one(spec) for spec in pending))
    finally:
        await provider.close()
    return summary


def _failure(spec: PromptSpec, error: str) -> dict[str, Any]:
    return {
        "prompt": spec.prompt,
        "system": spec.system,
        "follow_up_prompts": list(spec.follow_up_prompts),
        "category": spec.category,
        "error": error,
        "failed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
