"""Running every prompt of a config through its provider: concurrency, resume, failures, outputs.

Each provider keeps a prompt's output as soon as it finishes (a row appended to ``train.jsonl`` for
``chat``, a native session file for the agents). A run that is killed loses at most the prompts in
flight: ``--resume`` skips every prompt that already has a complete output and retries the rest,
failed ones included. A prompt that keeps failing is written to ``<failures_dir>/<key>.json`` with
its error, and the run goes on. An output that cannot be written (disk full, read-only) stops the run:
no prompt is started after that, answers already received are kept (see :mod:`teich.generate.output`),
and ``--resume`` finishes without asking for them again. Error texts never show a configured secret.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from teich.errors import GenerationError, OutputError, TeichError
from teich.files import write_json_atomic
from teich.generate.config import Config
from teich.generate.output import cannot_write
from teich.generate.prompts import PromptSpec, read_prompts
from teich.generate.providers import PROVIDERS, Provider
from teich.reports import Report, Tally


@dataclass
class Summary(Report):
    """What a generation run did."""

    kind = "generate"

    output: Path
    pending: int = 0
    done: int = 0
    failed: int = 0
    skipped: int = 0
    tokens: int = 0
    cost: float = 0.0
    problems: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def summary(self) -> str:
        cost = f", ${self.cost:.4f}" if self.cost else ""
        return (
            f"{self.done} done, {self.failed} failed, {self.skipped} already done, "
            f"{self.tokens} tokens{cost} -> {self.output}"
        )

    def tally(self) -> Tally:
        return Tally(
            counts={
                "pending": self.pending,
                "done": self.done,
                "failed": self.failed,
                "already_done": self.skipped,
                "tokens": self.tokens,
                "cost": self.cost,
            },
            notes={"skipped": self.problems, "failed": self.failures},
        )


def make_provider(config: Config) -> Provider:
    """The registered provider ``agent.provider`` names, for ``config``."""
    return PROVIDERS[config.agent.provider](config)


def plan(config: Config, provider: Provider, *, resume: bool, limit: int | None) -> tuple[list[PromptSpec], Summary]:
    """The prompts still to run, and a summary holding what was skipped and why."""
    specs, problems = read_prompts(config.prompts_file, default_system=config.system_prompt)
    summary = Summary(output=config.output.traces_dir, problems=list(problems))
    existing = provider.existing()
    if existing and not resume:
        raise TeichError(f"{summary.output} already has {existing} rows: pass --resume to continue, or remove them")
    done = provider.done_keys()
    pending = [spec for spec in specs if spec.key not in done]
    summary.skipped = len(specs) - len(pending)
    if limit is not None:
        pending = pending[:limit]
    summary.pending = len(pending)
    return pending, summary


async def generate(
    config: Config,
    provider: Provider,
    pending: list[PromptSpec],
    summary: Summary,
    *,
    concurrency: int | None = None,
    on_update: Callable[[Summary], None] | None = None,
    execute: Callable[[PromptSpec], Awaitable[dict[str, Any]]] | None = None,
) -> Summary:
    """Run the pending prompts, at most ``concurrency`` at a time, keeping outputs as they finish.

    ``execute`` runs one prompt attempt and keeps its output (default: ``provider.run``; the Ray
    executor of :mod:`teich.generate.distributed` runs it on the cluster). Rows an earlier run could not
    write are moved into place first; an output that cannot be written raises :class:`OutputError`
    once the prompts in flight have finished."""
    gate = asyncio.Semaphore(concurrency or config.concurrency)
    attempt = execute or provider.run
    stopped: list[OutputError] = []

    async def one(spec: PromptSpec) -> None:
        async with gate:
            if stopped:
                return  # the output cannot be written: ask for nothing more
            try:
                await _run_prompt(config, attempt, provider.attempts, spec, summary)
            except OutputError as error:
                stopped.append(error)
            if on_update:
                on_update(summary)

    provider.recover()
    try:
        await asyncio.gather(*(one(spec) for spec in pending))
    finally:
        await provider.close()
    if stopped:
        raise stopped[-1]  # the last says how many answers were kept
    return summary


async def _run_prompt(
    config: Config,
    execute: Callable[[PromptSpec], Awaitable[dict[str, Any]]],
    attempts: int,
    spec: PromptSpec,
    summary: Summary,
) -> None:
    """One prompt, tried whole up to ``attempts`` times; one that keeps failing is recorded in the
    failures folder."""
    failure = config.output.failures_dir / f"{spec.key}.json"
    for attempt in range(1, attempts + 1):
        try:
            metadata = await execute(spec)
        except GenerationError as error:
            if attempt < attempts:
                continue
            summary.failed += 1
            summary.failures.append(config.redact(f"{spec.prompt[:60]!r}: {error}"))
            try:
                write_json_atomic(failure, _failure(config, spec, str(error), error.output))
            except OSError as problem:
                raise cannot_write(failure, problem) from None
        else:
            with suppress(OSError):  # a stale record is harmless: resume goes by the rows
                failure.unlink(missing_ok=True)
            summary.done += 1
            usage = metadata.get("usage") or {}
            summary.tokens += sum(v for k, v in usage.items() if k in _TOKEN_KEYS and isinstance(v, int))
            summary.cost += metadata.get("cost") or 0.0
            return


# Usage keys that count tokens in rows written by Teich (chat) or converted from agent sessions.
_TOKEN_KEYS = frozenset({"input_tokens", "output_tokens", "input", "output"})


def _failure(config: Config, spec: PromptSpec, error: str, output: str) -> dict[str, Any]:
    record = {
        "prompt": spec.prompt,
        "system": spec.system,
        "follow_up_prompts": list(spec.follow_up_prompts),
        "category": spec.category,
        "error": config.redact(error),
        "failed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if output:
        record["agent_output"] = config.redact(output)  # the end of what the agent CLI printed (stderr, then stdout)
    return record
