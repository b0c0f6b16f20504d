"""The ``teich`` command line."""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import os
import socket
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import asdict
from enum import Enum
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any
from urllib.parse import urlsplit

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from teich import __version__
from teich.errors import TeichError, first_line
from teich.files import write_json_atomic, write_jsonl_atomic
from teich.generate.agents.sandbox import BACKENDS
from teich.generate.card import CARD, write_card
from teich.generate.config import MAX_CONCURRENCY, Config
from teich.generate.distributed import execution
from teich.generate.output import lock_output
from teich.generate.project import init_project
from teich.generate.prompts import PromptSpec
from teich.generate.providers import PROVIDERS
from teich.generate.runner import Summary, make_provider, plan
from teich.generate.runner import generate as run_generation
from teich.privacy.anonymize import anonymize, report_path
from teich.privacy.extract import extract as extract_sessions
from teich.privacy.publish import publish
from teich.reports import Report
from teich.schema import TrainingExample
from teich.traces import format_names
from teich.traces.formats.atif import to_atif
from teich.traces.sources import TOOLS_SNAPSHOT, LoadOptions, LoadReport, iter_examples
from teich.training.labels import Policy

# What the registries hold, for the help (computed once, at import).
PROVIDERS_HELP = f"Providers (agent.provider): {', '.join(PROVIDERS.names())}."
BACKENDS_HELP = f"Sandbox backends (sandbox.backend): {', '.join(('auto', *BACKENDS.names()))}."
FORMATS_HELP = f"Trace formats: {', '.join(format_names())}."

app = typer.Typer(
    help="Turn coding-agent sessions into auditable SFT data.",
    epilog="\n\n".join((PROVIDERS_HELP, BACKENDS_HELP, FORMATS_HELP)),
    no_args_is_help=True,
)
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


_OUTPUT_ROWS: Mapping[OutputFormat, Callable[[TrainingExample], dict[str, Any]]] = MappingProxyType(
    {OutputFormat.openai: TrainingExample.to_openai, OutputFormat.atif: to_atif}
)


@app.command(epilog=FORMATS_HELP)
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
        options = LoadOptions(
            drop_incomplete_traces=not keep_incomplete,
            on_file=lambda name: progress.update(task, advance=1, description=escape(Path(name).name)),
        )
        examples = iter_examples(sources, report, options)
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


class ExtractAgent(str, Enum):
    """Whose sessions ``teich extract`` gathers."""

    all = "all"
    claude = "claude"
    codex = "codex"
    pi = "pi"
    cursor = "cursor"
    hermes = "hermes"


@app.command("extract")
@_reported
def extract_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write: new, empty, or an earlier extract.")],
    agent: Annotated[ExtractAgent, typer.Argument(help="Whose sessions: one agent, or all.")] = ExtractAgent.all,
    source: Annotated[
        Path | None, typer.Option("--from", help="Read this folder (a copied home, or session files) instead.")
    ] = None,
    project: Annotated[
        str | None, typer.Option("--project", help="Only sessions run in this folder (or below it), or a glob.")
    ] = None,
    since: Annotated[str | None, typer.Option("--since", help="Only sessions active on or after DATE (UTC).")] = None,
    until: Annotated[str | None, typer.Option("--until", help="Only sessions active on or before DATE (UTC).")] = None,
    min_turns: Annotated[int, typer.Option("--min-turns", min=0, help="Only sessions with N user turns or more.")] = 0,
    no_anonymize: Annotated[
        bool, typer.Option("--no-anonymize", help="Copy sessions unredacted, secrets and personal data included.")
    ] = False,
    own_names: Annotated[
        list[str] | None, typer.Option("--own-name", help="Your name, redacted wherever it appears (repeatable).")
    ] = None,
) -> None:
    """Gather the sessions coding agents keep on this machine into one folder, redacted, with a manifest.

    Claude Code, Codex, Pi, Cursor and Hermes, on Linux, macOS and Windows (and its side from WSL),
    honouring CLAUDE_CONFIG_DIR, CODEX_HOME, PI_CODING_AGENT_DIR and HERMES_HOME."""
    with _file_progress() as progress:
        task = progress.add_task("finding sessions", total=None)

        def update(done: int, total: int, what: str) -> None:
            progress.update(task, completed=done, total=total, description=escape(what))

        report = extract_sessions(
            out,
            agent.value,
            source=source,
            project=project,
            since=since,
            until=until,
            min_turns=min_turns,
            anonymize=not no_anonymize,
            own_names=own_names or (),
            on_progress=update,
        )
    _print_report(report)
    if report.out is None:
        raise TeichError(f"no sessions kept; {out} was not written")
    console.print(f"[green]wrote {report.kept} sessions[/green] to {escape(report.out)}", highlight=False)


@app.command("anonymize")
@_reported
def anonymize_command(
    source: Annotated[Path, typer.Argument(help="A session or rows file, or a folder of them (a Hub-bound folder).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Where the redacted copy goes (a folder for a folder).")],
    names: Annotated[
        list[str] | None,
        typer.Option("--name", "--own-name", help="Your name, redacted wherever it appears (repeatable)."),
    ] = None,
    num_proc: Annotated[
        int, typer.Option("--num-proc", min=1, help="Processes the files are spread over.")
    ] = os.cpu_count() or 1,
) -> None:
    """Copy sessions, rows or a dataset folder with secrets and personal data replaced by placeholders.

    Each file keeps its format and records; the same value becomes the same placeholder throughout a
    session. This machine's user (login and full name) is always redacted. The report is written
    beside OUT, as OUT.anonymize.json."""
    with console.status(f"redacting {escape(str(source))}"):
        report = anonymize(source, out, own_names=names or (), return_report=True, num_proc=num_proc)
    written = report_path(out)
    write_json_atomic(written, report.to_dict())
    _print_report(report)
    console.print(f"[green]wrote[/green] {escape(str(out))} and its report {escape(str(written))}", highlight=False)


def _file_progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


def _print_report(report: Report) -> None:
    """Any report the same way: its notes, its table of counts and reasons, its line."""
    _print_notes(report)
    console.print(report.table())
    console.print(escape(report.summary()), highlight=False)


def _print_notes(report: Report) -> None:
    """The report's notes, one a line under what was done (the first few of each kind)."""
    for verb, lines in report.tally().notes.items():
        style = "red" if verb == "failed" else "yellow"
        for line in lines[:MAX_PROBLEMS_SHOWN]:
            console.print(f"[{style}]{verb}[/{style}] {escape(line)}", highlight=False)
        if len(lines) > MAX_PROBLEMS_SHOWN:
            console.print(f"[{style}]... and {len(lines) - MAX_PROBLEMS_SHOWN} more {verb}[/{style}]")


@app.command(epilog=f"{PROVIDERS_HELP}\n\n{BACKENDS_HELP}")
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
    ray: Annotated[
        str | None,
        typer.Option("--ray", metavar="ADDRESS", help="Run the prompts as tasks on this Ray cluster ('auto': found)."),
    ] = None,
) -> None:
    """Run the config's prompts through its provider and write training rows, a card and failures.

    One run at a time per output folder: the run holds its lock from planning to publishing."""
    settings = Config.from_yaml(config)
    if output is not None:
        settings.output.traces_dir = output.resolve()
    if ray is not None:
        settings.execution.backend, settings.execution.address = "ray", ray
    with settings.redacting():
        provider = make_provider(settings)
        with nullcontext() if dry_run else lock_output(settings.output.traces_dir):
            pending, summary = plan(settings, provider, resume=resume, limit=limit)
            if dry_run:
                _print_notes(summary)
                _print_plan(settings, pending, summary)
                return
            with _generation_progress(len(pending)) as update, execution(settings, provider, concurrency) as ways:
                execute, slots = ways
                job = run_generation(
                    settings, provider, pending, summary, concurrency=slots, on_update=update, execute=execute
                )
                asyncio.run(job)
            folder, files = settings.output.traces_dir, provider.output_files()
            write_card(settings, folder, provider.rows(), files, failed=summary.failed)
            if settings.publish.repo_id:
                token, private = settings.hf_token(), settings.publish.private
                published = [*files, CARD, TOOLS_SNAPSHOT]
                url = publish(folder, settings.publish.repo_id, files=published, token=token, private=private)
                console.print(f"published to {escape(url)}")
    _print_report(summary)
    if summary.failed:
        console.print(
            f"{summary.failed} prompts failed (see {escape(str(settings.output.failures_dir))}); rerun with --resume"
        )
        raise typer.Exit(1)


@app.command("publish")
@_reported
def publish_command(
    folder: Annotated[Path, typer.Argument(help="The folder of sessions or rows to upload, card included.")],
    repo: Annotated[str, typer.Option("--repo", help="The Hugging Face dataset repo, OWNER/NAME.")],
    private: Annotated[
        bool, typer.Option("--private", help="Create the repo private; refuse an existing public one.")
    ] = False,
    allow_secrets: Annotated[
        bool, typer.Option("--allow-secrets", help="Upload even while the secret scan finds credentials.")
    ] = False,
    num_proc: Annotated[
        int, typer.Option("--num-proc", min=1, help="Processes the secret scan spreads files over.")
    ] = os.cpu_count() or 1,
) -> None:
    """Upload a folder to a Hugging Face dataset repo in one commit, with a card written from it when it has none.

    Every file is scanned for secrets first: while any remains, nothing is uploaded (each is named by file and line)."""
    with console.status(f"checking and uploading {escape(str(folder))}"):
        url = publish(folder, repo, private=private, allow_secrets=allow_secrets, num_proc=num_proc)
    console.print(f"published {escape(str(folder))} to {escape(url)}", highlight=False)


def _print_plan(settings: Config, pending: list[PromptSpec], summary: Summary) -> None:
    console.print(
        f"would run {len(pending)} prompts with {settings.model.model} ({settings.api.wire_api} API at "
        f"{settings.base_url}), {summary.skipped} already done, writing {summary.output}",
        highlight=False,
    )
    for spec in pending[:MAX_PROBLEMS_SHOWN]:
        console.print(f"  {escape(spec.prompt[:100])}", highlight=False)


@contextmanager
def _generation_progress(total: int) -> Iterator[Callable[[Summary], None]]:
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


#: ``--policy``: :class:`~teich.Policy` fields as ``NAME=VALUE``, comma-separated or repeated.
PolicyOption = Annotated[
    list[str] | None,
    typer.Option(
        "--policy",
        metavar="NAME=VALUE,...",
        help="What trains: train_on_reasoning=false,train_on_user=true, max_supervised_tokens=N, train_turns=last.",
    ),
]


def policy_options(values: list[str]) -> dict[str, Any]:
    """The :class:`~teich.Policy` fields that ``--policy`` values set (``train_on_tools=false``, ``0``/``1``,
    ``yes``/``no`` too; ``max_supervised_tokens=none``), checked by building the policy.

    ``values``: the option's values, each one or more comma-separated ``NAME=VALUE``.
    """
    defaults = asdict(Policy())
    options: dict[str, Any] = {}
    for item in (part.strip() for value in values for part in value.split(",") if part.strip()):
        name, equals, text = item.partition("=")
        if not equals or name.strip() not in defaults:
            raise TeichError(f"--policy {item!r}: expected NAME=VALUE with NAME one of {', '.join(defaults)}")
        options[name.strip()] = _policy_value(name.strip(), text.strip(), defaults[name.strip()])
    Policy.of(options)
    return options


def _policy_value(name: str, text: str, default: Any) -> Any:
    """``text`` as the type of the policy field ``name`` (whose default is ``default``)."""
    lowered = text.lower()
    if isinstance(default, bool):
        if lowered not in _BOOLEANS:
            raise TeichError(f"--policy {name}={text}: expected true or false")
        return _BOOLEANS[lowered]
    if name == "max_supervised_tokens":
        if lowered == "none":
            return None
        if not text.isdigit():
            raise TeichError(f"--policy {name}={text}: expected a number of tokens or none")
        return int(text)
    return text


_BOOLEANS = MappingProxyType({"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False})


@app.command("view")
@_reported
def view_command(
    path: Annotated[str, typer.Argument(help="Traces or rows (anything load_traces reads), or a prepared dataset.")],
    tokenizer: Annotated[
        str | None,
        typer.Option("--tokenizer", help="Tokenizer folder or Hub id: rows are prepared with it for the token page."),
    ] = None,
    max_length: Annotated[
        int | None, typer.Option("--max-length", min=1, help="Drop (or trim, with --trim) rows longer than this.")
    ] = None,
    trim: Annotated[bool, typer.Option("--trim", help="Trim oversized rows to whole user turns instead.")] = False,
    policy: PolicyOption = None,
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port on 127.0.0.1 (0: any free one).")] = 8765,
    export: Annotated[
        Path | None, typer.Option("--export", help="Write a static site to this folder instead of serving.")
    ] = None,
    no_open: Annotated[bool, typer.Option("--no-open", help="Do not open the page in a browser.")] = False,
) -> None:
    """See a dataset in the browser: its rows (kept, trimmed, dropped and why), each conversation, and each
    row's tokens coloured by span kind and trained or masked, with the policy's flags to toggle."""
    from teich.view import ViewData, export_site, serve

    options: dict[str, Any] = {"max_length": max_length, "oversized_policy": "trim_followups" if trim else "drop"}
    options.update(policy_options(policy or []))
    with console.status(f"loading {escape(path)}"):
        view = ViewData.open(path, _tokenizer(tokenizer) if tokenizer else None, **options)
    if export is not None:
        written = export_site(view, export)
        console.print(f"wrote {written} files to {escape(str(export))}; open {escape(str(export / 'index.html'))}")
        return
    serve(view, port, open_browser=not no_open, on_ready=lambda url: console.print(f"serving {url} (Ctrl-C stops)"))


def _tokenizer(name: str) -> Any:
    """The fast tokenizer in a folder, or of a Hub id (from the Hugging Face cache, else downloaded), or
    one error line saying why not: no such folder, no tokenizer in it, or not cached and not reachable."""
    from huggingface_hub.utils import logging as hub_logging
    from transformers import AutoTokenizer

    folder = Path(name).expanduser()
    if folder.is_dir() and not any((folder / f).is_file() for f in _TOKENIZER_FILES):
        raise TeichError(f"cannot load tokenizer {name!r}: the folder has none of {', '.join(_TOKENIZER_FILES)}")
    if not folder.is_dir() and (name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name):
        raise TeichError(f"cannot load tokenizer {name!r}: no such folder")
    if not folder.is_dir():
        try:
            return AutoTokenizer.from_pretrained(name, local_files_only=True)
        except (OSError, ValueError):
            pass  # not in the cache: download it
        if not _hub_reachable():
            raise TeichError(
                f"cannot load tokenizer {name!r}: not in the Hugging Face cache, and the Hub cannot be reached"
            )
    verbosity = hub_logging.get_verbosity()
    hub_logging.set_verbosity(logging.ERROR)  # no retry warnings: one error line says it all
    try:
        return AutoTokenizer.from_pretrained(folder if folder.is_dir() else name)
    except (OSError, ValueError) as error:
        where = "" if folder.is_dir() else " (not in the Hugging Face cache, and the Hub could not give it)"
        raise TeichError(f"cannot load tokenizer {name!r}{where}: {first_line(error)}") from None
    finally:
        hub_logging.set_verbosity(verbosity)


_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")


def _hub_reachable() -> bool:
    """Whether the Hub can be asked (not ``HF_HUB_OFFLINE``, and its host answers): a quick look, in place of
    the Hub client's minute of retries."""
    from huggingface_hub import constants

    address = urlsplit(constants.ENDPOINT)
    if constants.HF_HUB_OFFLINE or address.hostname is None:
        return False
    try:
        socket.create_connection((address.hostname, address.port or 443), timeout=5).close()
    except OSError:
        return False
    return True
