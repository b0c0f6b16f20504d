"""The ``teich`` command line."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from teich import __version__
from teich.errors import TeichError
from teich.files import write_jsonl_atomic
from teich.sources import LoadReport, iter_examples

app = typer.Typer(help="Turn coding-agent sessions into auditable SFT data.", no_args_is_help=True)
console = Console(stderr=True, soft_wrap=True)  # one message, one line: never wrap paths
MAX_PROBLEMS_SHOWN = 20


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


@app.command()
def convert(
    sources: Annotated[list[str], typer.Argument(help="Trace files, folders or Hugging Face dataset ids.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output JSONL file of OpenAI-style rows.")],
    keep_incomplete: Annotated[
        bool, typer.Option("--keep-incomplete", help="Keep rows that end on a tool result.")
    ] = False,
) -> None:
    """Convert native agent traces and chat datasets into standalone OpenAI-style JSONL rows."""
    report = LoadReport()
    try:
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
                written = write_jsonl_atomic(out, (e.to_openai() for e in itertools.chain([first], examples)))
    except TeichError as error:
        console.print(f"[red]error:[/red] {escape(str(error))}")
        raise typer.Exit(1) from None
    _print_report(report)
    if first is None:
        console.print(f"[red]error:[/red] no rows could be converted; {escape(str(out))} was not written")
        raise typer.Exit(1)
    console.print(f"[green]wrote {written} rows[/green] to {escape(str(out))}")


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
    for problem in report.problems[:MAX_PROBLEMS_SHOWN]:
        console.print(f"[yellow]skipped[/yellow] {escape(str(problem))}", highlight=False)
    if len(report.problems) > MAX_PROBLEMS_SHOWN:
        console.print(f"[yellow]... and {len(report.problems) - MAX_PROBLEMS_SHOWN} more input problems[/yellow]")
    console.print(report.summary(), highlight=False)
