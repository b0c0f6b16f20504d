"""The ``teich`` command line."""

from __future__ import annotations

import asyncio
import functools
import itertools
from collections.abc import Callable
from contextlib import contextmanager, nullcontext
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from teich import __version__
from teich.errors import TeichError
from teich.files import write_jsonl_atomic
from teich.generate.card import CARD, TOOLS, write_card
from teich.generate.config import MAX_CONCURRENCY, Config
from teich.generate.output import lock_output
from teich.generate.project import init_project
from teich.generate.publish import publish
from teich.generate.runner import Summary, make_provider, plan
from teich.generate.runner import generate as run_generation
from teich.schema import TrainingExample
from teich.traces.formats.atif import to_atif
from teich.traces.sources import LoadReport, iter_examples

app = typer.Typer(help="Turn coding-agent sessions into auditable SFT data.", no_args_is_help=True)
console = Console(stderr=True, soft_wrap=True)  # one message, one line: never wrap paths
MAX_PROBLEMS_SHOWN = 20


def _reported(command: Callable[..., None]) -> Callable[..., None]:
    """The command, with any :class:`TeichError` it raises printed as one ``error:`` line (exit 1)."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> None:
        try:
            command(*args, **kwargs)
        except TeichError as error:
            console.print(f"[red]error:[/red] {escape(str(error))}")
            raise typer.Exit(1) from None

    return run


def _version(value: bool) -> None:
    if value:
        typer.echo(f"teich {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """Teich: agent traces in, training rows out."""


class OutputFormat(str, Enum):
    """What ``teich convert`` writes."""

    openai = "openai"
    atif = "atif"


_OUTPUT_ROWS: dict[OutputFormat, Callable[[TrainingExample], dict[str, Any]]] = {
    OutputFormat.openai: TrainingExample.to_openai,
    OutputFormat.atif: to_atif,
}


@app.command()
@_reported
def convert(
    sources: Annotated[list[str], typer.Argument(help="Trace files, folders or Hugging Face dataset ids.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output JSONL file, one row (or trajectory) a line.")],
    keep_incomplete: Annotated[
        bool, typer.Option("--keep-incomplete", help="Keep rows that end on a tool result.")
    ] = False,
    to: Annotated[
        OutputFormat,
        typer.Option("--to", help="openai: OpenAI-style rows; atif: Harbor ATIF trajectories, one a line."),
    ] = OutputFormat.openai,
) -> None:
    """Convert native agent traces and chat datasets into standalone OpenAI-style rows or ATIF trajectories."""
    report = LoadReport()
    with _file_progress() as progress:
        task = progress.add_task("converting", total=None)
        examples = iter_examples(
            sources,
            report,
            drop_incomplete_traces=not keep_incomplete,
            on_file=lambda name: progress.update(task, advance=1, description=escape(Path(name).name)),
        )
        first = next(examples, None)
        if first is not None:
            rows = (_OUTPUT_ROWS[to](e) for e in itertools.chain([first], examples))
            written = write_jsonl_atomic(out, rows)
    _print_report(report)
    if first is None:
        raise TeichError(f"no rows could be converted; {out} was not written")
    noun = "ATIF trajectories" if to is OutputFormat.atif else "rows"
    console.print(f"[green]wrote {written} {noun}[/green] to {escape(str(out))}")


@app.command()
@_reported
def init(
    name: Annotated[Path, typer.Argument(help="Folder to create the generation project in.")],
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite config.yaml and prompts.csv in a non-empty folder.")
    ] = False,
) -> None:
    """Start a generation project: a commented config.yaml and an example prompts.csv."""
    written = init_project(name, force=force)
    for path in written:
        console.print(f"[green]wrote[/green] {escape(str(path))}", highlight=False)
    hint = (
        "For long or multi-line prompts, JSONL is recommended: one JSON object per line, "
        '{"prompt": ..., "system": ..., "follow_up_prompts": [...]}; point prompts_file at it.'
    )
    console.print(escape(hint), highlight=False)


def _file_progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


def _print_report(report: LoadReport) -> None:
    _print_problems("skipped", report.problems, "input problems")
    _print_problems("repaired", report.repairs, "records repaired")
    console.print(f"{report.rows} rows from {report.files} files", highlight=False)
    counted = [("dropped", report.dropped), ("left out", report.left_out)]
    if any(counts for _, counts in counted):
        table = Table("", "count", "reason", box=None, title="what was not kept, and why", title_justify="left")
        for what, counts in counted:
            for reason, count in sorted(counts.items(), key=lambda item: -item[1]):
                table.add_row(what, str(count), escape(reason))
        console.print(table)


def _print_problems(verb: str, problems: list, noun: str) -> None:
    for problem in problems[:MAX_PROBLEMS_SHOWN]:
        console.print(f"[yellow]{verb}[/yellow] {escape(str(problem))}", highlight=False)
    if len(problems) > MAX_PROBLEMS_SHOWN:
        console.print(f"[yellow]... and {len(problems) - MAX_PROBLEMS_SHOWN} more {noun}[/yellow]")


@app.command()
@_reported
def generate(
    config: Annotated[Path, typer.Option("--config", "-c", help="The project's config.yaml.")],
    resume: Annotated[
        bool, typer.Option("--resume", help="Skip prompts that already have a row; retry the rest.")
    ] = False,
    output: Annotated[
        Path | None, typer.Option("--output", help="Write rows here instead of output.traces_dir.")
    ] = None,
    concurrency: Annotated[
        int | None, typer.Option("--concurrency", min=1, max=MAX_CONCURRENCY, help="Prompts in flight at once.")
    ] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Run at most this many prompts.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would run; call no model.")] = False,
) -> None:
    """Run the config's prompts through its provider and write training rows, a card and failures.

    One run at a time per output folder: the run holds its lock from planning to publishing."""
    settings = Config.from_yaml(config)
    if output is not None:
        settings.output.traces_dir = output.resolve()
    with settings.redacting():
        provider = make_provider(settings)
        with nullcontext() if dry_run else lock_output(settings.output.traces_dir):
            pending, summary = plan(settings, provider, resume=resume, limit=limit)
            for problem in summary.problems:
                console.print(f"[yellow]skipped[/yellow] {escape(problem)}", highlight=False)
            if dry_run:
                _print_plan(settings, pending, summary)
                return
            with _generation_progress(len(pending)) as update:
                job = run_generation(settings, provider, pending, summary, concurrency=concurrency, on_update=update)
                asyncio.run(job)
            folder, files = settings.output.traces_dir, provider.output_files()
            write_card(settings, folder, provider.rows(), files, summary.failed)
            if settings.publish.repo_id:
                token, private = settings.hf_token(), settings.publish.private
                url = publish(folder, [*files, CARD, TOOLS], settings.publish.repo_id, token, private)
                console.print(f"published to {escape(url)}")
    for failure in summary.failures[:MAX_PROBLEMS_SHOWN]:
        console.print(f"[red]failed[/red] {escape(failure)}", highlight=False)
    console.print(summary.line(), highlight=False)
    if summary.failed:
        console.print(
            f"{summary.failed} prompts failed (see {escape(str(settings.output.failures_dir))}); rerun with --resume"
        )
        raise typer.Exit(1)


def _print_plan(settings: Config, pending: list, summary: Summary) -> None:
    console.print(
        f"would run {len(pending)} prompts with {settings.model.model} ({settings.api.wire_api} API at "
        f"{settings.base_url}), {summary.skipped} already done, writing {summary.output}",
        highlight=False,
    )
    for spec in pending[:MAX_PROBLEMS_SHOWN]:
        console.print(f"  {escape(spec.prompt[:100])}", highlight=False)


@contextmanager
def _generation_progress(total: int):
    """A live progress bar of done / failed / tokens / cost; yields the callback that updates it."""
    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    )
    with progress:
        task = progress.add_task("starting", total=total)

        def update(summary: Summary) -> None:
            cost = f" ${summary.cost:.4f}" if summary.cost else ""
            description = f"done {summary.done} failed {summary.failed} tokens {summary.tokens}{cost}"
            progress.update(task, completed=summary.done + summary.failed, description=description)

        yield update
