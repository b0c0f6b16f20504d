"""``prepare_data``: rows in, rendered and supervised training examples out.

Each row is rendered once by the tokenizer's own chat template (the training text is exactly
``tokenizer.apply_chat_template(messages, tools=tools, **chat_template_kwargs)``), its typed spans
are located in that text, oversized rows are handled by policy, and with ``tokenize=True`` (the
default) the texts are tokenized in one batched call with offsets and labelled for the policy.
"""

from __future__ import annotations

import gc
import math
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Any, Literal, overload

import datasets
import numpy as np
import pyarrow as pa

from teich.errors import TeichError, TemplateError
from teich.parallel import can_fork, fork_map
from teich.reports import Report, Tally
from teich.schema import TrainingExample
from teich.traces.conversation import tool_name
from teich.traces.sources import LoadOptions, LoadReport, Source, iter_examples
from teich.training.dataset_labels import arrow_dataset, label_column, policy_note, require_training
from teich.training.labels import Policy, TokenSpans, encode, token_spans
from teich.training.render import (
    ParallelToolCalls,
    Reasoning,
    RenderedRow,
    render_row,
    template_messages,
)
from teich.training.spans import Span
from teich.training.templates import TemplateProfile, profile_template, render

OversizedPolicy = Literal["drop", "trim_followups", "error"]


@dataclass
class PrepareReport(Report):
    """What ``prepare_data`` kept, changed and dropped, and why."""

    kind = "prepare"

    rows_in: int = 0
    kept_row_ids: list[int] = field(default_factory=list)
    dropped: dict[int, str] = field(default_factory=dict)
    oversized: list[int] = field(default_factory=list)
    trimmed: dict[int, tuple[int, int]] = field(default_factory=dict)
    """Row id -> (user turns kept, user turns in the row)."""
    token_lengths: list[int] = field(default_factory=list)
    max_length: int | None = None
    notes: Counter[str] = field(default_factory=Counter)
    load: LoadReport = field(default_factory=LoadReport)

    def summary(self) -> str:
        parts = [f"{len(self.kept_row_ids)} of {self.rows_in} rows kept"]
        parts += [f"{n} dropped ({reason})" for reason, n in sorted(self._drop_reasons().items())]
        if self.trimmed:
            parts.append(f"{len(self.trimmed)} trimmed to fit {self.max_length} tokens")
        parts += [f"{note}: {n}" for note, n in sorted(self.notes.items())]
        return "; ".join(parts)

    def tally(self) -> Tally:
        return Tally(
            counts={
                "files": self.load.files,
                "rows_in": self.rows_in,
                "kept": len(self.kept_row_ids),
                "dropped": len(self.dropped),
                "oversized": len(self.oversized),
                "trimmed": len(self.trimmed),
                "tokens": sum(self.token_lengths),
            },
            reasons={
                "not_loaded": self.load.dropped,
                "left_out": self.load.left_out,
                "dropped": self._drop_reasons(),
                "noted": self.notes,
            },
            notes=self.load.tally().notes,
        )

    def _drop_reasons(self) -> Counter[str]:
        """Dropped rows by the kind of reason (the text before any ``:`` detail)."""
        return Counter(reason.split(":")[0] for reason in self.dropped.values())


@overload
def prepare_data(
    source_or_dataset: Source | Iterable[Source] | dict[str, Any],
    tokenizer: Any,
    *,
    return_report: Literal[False] = ...,
    **options: Any,
) -> datasets.Dataset: ...


@overload
def prepare_data(
    source_or_dataset: Source | Iterable[Source] | dict[str, Any],
    tokenizer: Any,
    *,
    return_report: Literal[True],
    **options: Any,
) -> tuple[datasets.Dataset, PrepareReport]: ...


def prepare_data(
    source_or_dataset: Source | Iterable[Source] | dict[str, Any],
    tokenizer: Any,
    *,
    split: str = "train",
    revision: str | None = None,
    token: str | None = None,
    max_examples: int | None = None,
    chat_template_kwargs: dict[str, Any] | None = None,
    max_length: int | None = None,
    oversized_policy: OversizedPolicy = "drop",
    drop_oversized_examples: bool = True,
    tokenize: bool = True,
    teich_masking: bool = True,
    strict: bool = True,
    validate_tools: bool = False,
    preserve_columns: list[str] | None = None,
    return_report: bool = False,
    num_proc: int | None = None,
    parallel_tool_calls: ParallelToolCalls = "split",
    reasoning: Reasoning = "keep",
    **policy: Any,
) -> datasets.Dataset | tuple[datasets.Dataset, PrepareReport]:
    """Render rows with the tokenizer's chat template and record their supervision spans.

    Returns a ``datasets.Dataset`` with ``text`` and ``spans``; with ``tokenize=True`` also
    ``input_ids``, ``attention_mask``, ``num_tokens`` and ``labels`` for the policy, ready for TRL's
    ``SFTTrainer`` with any packing; the policy is recorded in the dataset's ``info``.

    ``source_or_dataset``: anything :func:`teich.load_traces` takes, a list of those, or a mix
    ``{"name": {"source": ..., "percentage": 80}, ...}``.
    ``tokenizer``: a ``transformers`` tokenizer with a chat template; rows render exactly as its
    ``apply_chat_template`` renders them.
    ``split``, ``revision``, ``token``, ``max_examples``: as in :func:`teich.load_traces`.
    ``chat_template_kwargs``: extra variables for the template (``enable_thinking=False``, ...).
    ``max_length``: the longest row in tokens; longer ones go by ``oversized_policy``: ``"drop"``
    them, ``"trim_followups"`` to the longest prefix of whole user turns that fits, or ``"error"``.
    ``drop_oversized_examples``: with ``"drop"``, ``False`` keeps them for the trainer to truncate.
    ``tokenize``: tokenize and label; with ``False`` there are no labels (TRL would train every
    token) until :func:`teich.mask_data` relabels the built trainer, and a warning says so.
    ``teich_masking``: write ``labels`` for the policy (``False`` leaves labelling to the trainer).
    ``strict``: rows that cannot be rendered or supervised raise; with ``False`` they are dropped
    and reported.
    ``validate_tools``: drop rows whose tool calls :func:`validate_tool_calls` finds problems in.
    ``preserve_columns``: columns of a dataset source to carry into the result.
    ``return_report``: also return the :class:`PrepareReport`.
    ``num_proc``: render and tokenize in that many forked processes (where the platform forks), for
    machines with more cores than the tokenizer's own threads keep busy; the result is the same.
    ``parallel_tool_calls``: for a turn with several calls where the template renders one call per
    message (GPT-OSS), ``"split"`` it into one-call turns, each followed by its result, in the order
    the results came, or ``"drop"`` the row.
    ``reasoning``: what the rendered history shows: ``"keep"`` every message's reasoning (as the
    template renders it; templates such as Qwen3 leave out earlier turns' reasoning, reported), only
    the ``"last"`` assistant message's, or ``"drop"`` all of it (counted in the report).
    ``policy``: :class:`~teich.Policy` fields: ``train_on_*`` flags and ``max_supervised_tokens``.
    """
    if oversized_policy not in ("drop", "trim_followups", "error"):
        raise TeichError(f"oversized_policy must be 'drop', 'trim_followups' or 'error', not {oversized_policy!r}")
    chosen = Policy.of(policy)
    if policy and not (tokenize and teich_masking):
        raise TeichError("a labelling policy needs tokenize=True and teich_masking=True: labels are written only then")
    kwargs = dict(chat_template_kwargs or {})
    profile = profile_template(tokenizer, kwargs)
    report = PrepareReport(max_length=max_length)
    with _gc_paused():  # the rows live until the end: full collections would walk them again and again
        options = LoadOptions(split=split, revision=revision, token=token, max_examples=max_examples)
        examples = _load(source_or_dataset, report.load, options)
        report.rows_in = len(examples)
        needs_tokens = tokenize or max_length is not None
        renderer = _Renderer(tokenizer, profile, kwargs, parallel_tool_calls, reasoning, needs_tokens, validate_tools)
        rows: dict[int, RenderedRow] = {}
        encoded: dict[int, _Tokens] = {}
        for row_id, outcome in enumerate(_prepare_all(examples, renderer, num_proc)):
            if isinstance(outcome, str):
                _reject(report, row_id, outcome, examples[row_id], strict)
                continue
            rows[row_id], tokens = outcome
            report.notes.update(rows[row_id].notes)
            if tokens is not None:
                encoded[row_id] = tokens
        if max_length is not None:
            _fit(rows, encoded, examples, renderer, report, oversized_policy, drop_oversized_examples)
        report.kept_row_ids = sorted(rows)
        report.token_lengths = [len(encoded[i].ids) for i in report.kept_row_ids] if encoded else []
        dataset = _to_dataset(rows, encoded if tokenize else None, examples, teich_masking, preserve_columns, chosen)
    if teich_masking and not tokenize:
        warnings.warn(
            "prepare_data(tokenize=False) writes no labels, so TRL's SFTTrainer would train on every token: "
            "pass tokenize=True, or call teich.mask_data(trainer) after building the trainer",
            stacklevel=2,
        )
    return (dataset, report) if return_report else dataset


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Cyclic garbage collection paused for the block (and restored as it was): preparing allocates
    millions of objects that all stay alive, which each full collection would traverse for nothing."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _load(source: Any, load_report: LoadReport, options: LoadOptions) -> list[TrainingExample]:
    if _is_mix(source):
        return _mix(source, load_report, options)
    examples = list(iter_examples(source, load_report, options))
    if not examples:
        detail = f": {load_report.problems[0]}" if load_report.problems else f" ({load_report.summary()})"
        raise TeichError(f"no training rows could be loaded{detail}")
    return examples


def _is_mix(source: Any) -> bool:
    return (
        isinstance(source, dict)
        and bool(source)
        and all(isinstance(v, dict) and "source" in v for v in source.values())
    )


def _mix(mix: dict[str, dict[str, Any]], load_report: LoadReport, options: LoadOptions) -> list[TrainingExample]:
    """Rows of several sources in exactly the given proportions.

    The percentages are reduced to the smallest whole units (80/20 -> 4:1); the mix takes as many
    whole units as every source can fill (and ``max_examples`` allows), so the realised ratios stay
    true when one source runs short. Where not even one unit fits (33.3/66.7 is 333:667), the
    shares are approximated, each rounded down.
    """
    loaded = []
    for spec in mix.values():
        share = Fraction(str(spec.get("percentage", 100 / len(mix)))).limit_denominator(1000)
        if share <= 0:
            raise TeichError("every source in a mix needs a positive percentage")
        each = replace(options, split=spec.get("split", options.split), max_examples=None)
        loaded.append((list(iter_examples(spec["source"], load_report, each)), share))
    scale = math.lcm(*(share.denominator for _, share in loaded))
    whole = [int(share * scale) for _, share in loaded]
    units = [n // math.gcd(*whole) for n in whole]
    repeats = min(len(rows) // unit for (rows, _), unit in zip(loaded, units, strict=True))
    if options.max_examples is not None:
        repeats = min(repeats, options.max_examples // sum(units))
    counts = [repeats * unit for unit in units]
    if not repeats:  # not even one whole unit fits: approximate the shares instead
        weight = sum(share for _, share in loaded)
        total = min(len(rows) * weight / share for rows, share in loaded)
        if options.max_examples is not None:
            total = min(total, Fraction(options.max_examples))
        counts = [math.floor(total * share / weight) for _, share in loaded]
    picked = [row for (rows, _), count in zip(loaded, counts, strict=True) for row in rows[:count]]
    if not picked:
        raise TeichError("the mix yielded no rows")
    return picked


@dataclass(frozen=True)
class _Renderer:
    """How every row of one ``prepare_data`` call is checked and rendered."""

    tokenizer: Any
    profile: TemplateProfile
    chat_template_kwargs: dict[str, Any]
    parallel_tool_calls: ParallelToolCalls
    reasoning: Reasoning
    tokenize: bool
    validate_tools: bool

    def row(self, example: TrainingExample) -> RenderedRow:
        options = (self.parallel_tool_calls, self.reasoning)
        return render_row(example, self.tokenizer, self.profile, self.chat_template_kwargs, *options)


@dataclass(frozen=True)
class _Tokens:
    """A rendered row's token ids and its spans as token ranges."""

    ids: np.ndarray
    spans: TokenSpans

    @classmethod
    def of(cls, row: RenderedRow, encoding: Any) -> _Tokens:
        return cls(np.asarray(encoding.ids, dtype=np.int32), token_spans(row.spans, encoding))


_Outcome = tuple[RenderedRow, _Tokens | None] | str
_Trimmed = tuple[tuple[RenderedRow, _Tokens], int, int]  # the row, the user turns kept, the user turns


def _prepare_all(examples: list[TrainingExample], renderer: _Renderer, num_proc: int | None) -> list[_Outcome]:
    """Every row rendered (and tokenized), or why it cannot be used. In one process the texts are
    tokenized in one batched call; with ``num_proc`` each forked process renders and tokenizes its
    share of the rows, so the Python work of rendering runs on every core too."""
    if num_proc and num_proc > 1 and len(examples) >= 2 * num_proc and can_fork():
        return fork_map(lambda i: _prepare_one(examples[i], renderer), len(examples), num_proc)
    rendered = [_render_one(example, renderer) for example in examples]
    if not renderer.tokenize:
        return [o if isinstance(o, str) else (o, None) for o in rendered]
    encodings = iter(encode([o.text for o in rendered if not isinstance(o, str)], renderer.tokenizer))
    return [o if isinstance(o, str) else (o, _Tokens.of(o, next(encodings))) for o in rendered]


def _prepare_one(example: TrainingExample, renderer: _Renderer) -> _Outcome:
    outcome = _render_one(example, renderer)
    if isinstance(outcome, str) or not renderer.tokenize:
        return outcome if isinstance(outcome, str) else (outcome, None)
    (encoding,) = encode([outcome.text], renderer.tokenizer)
    return outcome, _Tokens.of(outcome, encoding)


def _render_one(example: TrainingExample, renderer: _Renderer) -> RenderedRow | str:
    """The rendered row, or why it cannot be used."""
    if renderer.validate_tools:
        problems = validate_tool_calls(example)
        if problems:
            return f"invalid tool calls: {problems[0]}"
    try:
        return renderer.row(example)
    except TemplateError as error:
        return str(error)


def _reject(report: PrepareReport, row_id: int, reason: str, example: TrainingExample, strict: bool) -> None:
    where = _where(example, row_id)
    if strict:
        raise TeichError(f"{where}: {reason} (pass strict=False to drop such rows)")
    report.dropped[row_id] = reason


def _where(example: TrainingExample, row_id: int) -> str:
    meta = example.metadata
    if meta.get("source_file"):
        return f"row {row_id} ({meta['source_file']}:{meta.get('source_line', '?')})"
    return f"row {row_id}"


def _fit(
    rows: dict[int, RenderedRow],
    encoded: dict[int, _Tokens],
    examples: list[TrainingExample],
    renderer: _Renderer,
    report: PrepareReport,
    policy: OversizedPolicy,
    drop_oversized: bool,
) -> None:
    """Apply the oversized policy to rows longer than ``report.max_length`` tokens; the report's notes
    count the changes made to the rows kept, so a dropped row's are taken back and a trimmed row's
    replaced by those of its prefix."""
    limit = report.max_length
    assert limit is not None, "only rows with a max_length are fitted"
    for row_id in [i for i in rows if len(encoded[i].ids) > limit]:
        report.oversized.append(row_id)
        length = len(encoded[row_id].ids)
        if policy == "error":
            raise TeichError(f"{_where(examples[row_id], row_id)}: {length} tokens > max_length {limit}")
        if policy == "drop":
            if drop_oversized:
                report.dropped[row_id] = f"oversized: {length} tokens > max_length {limit}"
                report.notes -= rows[row_id].notes
                del rows[row_id], encoded[row_id]
            continue
        trimmed = _trim_followups(examples[row_id], renderer, limit)
        report.notes -= rows[row_id].notes
        if trimmed is None:
            del rows[row_id], encoded[row_id]
            report.dropped[row_id] = f"oversized: even the first assistant step is longer than {limit} tokens"
            continue
        (row, encoding), kept, total = trimmed
        rows[row_id], encoded[row_id] = row, encoding
        report.trimmed[row_id] = (kept, total)
        report.notes.update(row.notes)


def _trim_followups(example: TrainingExample, renderer: _Renderer, limit: int) -> _Trimmed | None:
    """The longest prefix of whole user turns that fits, by binary search over the number of turns.

    A prefix ends right before a user message that follows an assistant turn, so it ends on the
    answer to the previous turn; the user turns kept are those before the cut (a user message that
    follows another one or a tool result is no place to cut, but it counts as a turn). When not even
    the first user turn fits, the first turn itself is cut after its longest run of assistant steps
    that fits (ending on an assistant message, before a tool result), so a long agent session still
    yields a row. Only ``log2`` of the candidate cuts are rendered and tokenized.
    """
    messages = example.messages
    starts = [i for i, m in enumerate(messages) if m.role == "user"]
    turn_cuts = [end for end in starts[1:] if messages[end - 1].role == "assistant"]
    first_turn_end = turn_cuts[0] if turn_cuts else len(messages)
    step_cuts = [end for end in range(starts[0] + 2, first_turn_end) if messages[end - 1].role == "assistant"]
    for cuts in (turn_cuts, step_cuts):
        found = _longest_fitting(example, cuts, starts, renderer, limit)
        if found is not None:
            return found
    return None


def _longest_fitting(
    example: TrainingExample, cuts: list[int], starts: list[int], renderer: _Renderer, limit: int
) -> _Trimmed | None:
    """Binary search for the last cut whose prefix renders within ``limit`` tokens."""
    best: _Trimmed | None = None
    low, high = 0, len(cuts) - 1
    while low <= high:
        middle = (low + high) // 2
        kept = sum(start < cuts[middle] for start in starts)
        prefix = example.model_copy(update={"messages": example.messages[: cuts[middle]]})
        prefix = prefix.model_copy(update={"follow_up_prompts": example.follow_up_prompts[: kept - 1]})
        try:
            row = renderer.row(prefix)
        except TemplateError:
            high = middle - 1
            continue
        (encoding,) = encode([row.text], renderer.tokenizer)
        if len(encoding) <= limit:
            best = (row, _Tokens.of(row, encoding)), kept, len(starts)
            low = middle + 1
        else:
            high = middle - 1
    return best


def _to_dataset(
    rows: dict[int, RenderedRow],
    encoded: dict[int, _Tokens] | None,
    examples: list[TrainingExample],
    teich_masking: bool,
    preserve_columns: list[str] | None,
    policy: Policy,
) -> datasets.Dataset:
    """The prepared rows as one Arrow table; token columns are built from flat arrays, not lists, and
    the labels' policy is recorded in the dataset's ``info``."""
    ids = sorted(rows)
    spans: list[TokenSpans | None] = [encoded[i].spans for i in ids] if encoded is not None else [None] * len(ids)
    columns: dict[str, pa.Array] = {"text": pa.array([rows[i].text for i in ids], pa.string())}
    if teich_masking:
        columns["spans"] = _span_column([rows[i].spans for i in ids], spans)
    info = datasets.DatasetInfo()
    if encoded is not None:
        token_ids = [encoded[i].ids for i in ids]
        offsets = np.cumsum([0] + [len(t) for t in token_ids], dtype=np.int64)
        flat = np.concatenate(token_ids) if token_ids else np.zeros(0, np.int32)
        columns["input_ids"] = pa.LargeListArray.from_arrays(offsets, flat)
        columns["attention_mask"] = pa.LargeListArray.from_arrays(offsets, np.ones(len(flat), np.int8))
        if teich_masking:
            columns["num_tokens"] = pa.array(np.diff(offsets))
            columns["labels"], report = label_column(token_ids, [encoded[i].spans for i in ids], policy)
            require_training(report, "the prepared dataset")
            info.description = policy_note(None, policy)
    for name in preserve_columns or []:
        columns[name] = pa.array([_column(examples[i], name) for i in ids])
    return arrow_dataset(pa.table(columns), info)


def _span_column(row_spans: list[list[Span]], token_ranges: list[TokenSpans | None]) -> pa.ListArray:
    """Each row's spans as a list of structs (``kind``, character ``start``/``end``, ``message``,
    ``train``, and ``token_start``/``token_end`` when tokenized), built column by column."""
    flat = [span for spans in row_spans for span in spans]
    fields = {
        "kind": pa.array([s.kind for s in flat], pa.string()),
        "start": pa.array([s.start for s in flat], pa.int64()),
        "end": pa.array([s.end for s in flat], pa.int64()),
        "message": pa.array([s.message for s in flat], pa.int64()),
        "train": pa.array([s.train for s in flat], pa.bool_()),
    }
    if token_ranges and token_ranges[0] is not None:
        bounds = np.array([r for ranges in token_ranges if ranges for r in ranges.ranges], np.int64).reshape(-1, 2)
        fields["token_start"], fields["token_end"] = pa.array(bounds[:, 0]), pa.array(bounds[:, 1])
    offsets = np.cumsum([0] + [len(spans) for spans in row_spans], dtype=np.int32)
    return pa.ListArray.from_arrays(offsets, pa.StructArray.from_arrays(list(fields.values()), list(fields)))


def _column(example: TrainingExample, name: str) -> Any:
    record = example.to_record()
    if name not in record:
        raise TeichError(f"preserve_columns: {name!r} is not a row column (have {', '.join(record)})")
    return record[name]


def row_fits_context(
    row: TrainingExample | dict[str, Any],
    tokenizer: Any,
    max_length: int,
    chat_template_kwargs: dict[str, Any] | None = None,
    parallel_tool_calls: ParallelToolCalls = "split",
    reasoning: Reasoning = "keep",
) -> bool:
    """Whether ``row`` (a :class:`TrainingExample` or its record), rendered by the template of
    ``tokenizer`` as :func:`prepare_data` renders it, is at most ``max_length`` tokens.

    ``chat_template_kwargs``, ``parallel_tool_calls``, ``reasoning``: as in :func:`prepare_data`.
    """
    example = row if isinstance(row, TrainingExample) else TrainingExample.from_record(row)
    kwargs = dict(chat_template_kwargs or {})
    messages, _ = template_messages(example, profile_template(tokenizer, kwargs), parallel_tool_calls, reasoning)
    (encoding,) = encode([render(tokenizer, messages, example.tools, kwargs)], tokenizer)
    return len(encoding.ids) <= max_length


def validate_tool_calls(row: TrainingExample | dict[str, Any]) -> list[str]:
    """Problems with the tool calls of ``row`` (a :class:`TrainingExample` or its record): unnamed or
    undeclared tools, missing required arguments, results that answer no call. Schemas Teich
    inferred from the calls (``metadata.inferred_tools``) do not count as declared. An empty list
    means the calls are valid."""
    example = row if isinstance(row, TrainingExample) else TrainingExample.from_record(row)
    inferred = set(example.metadata.get("inferred_tools") or [])
    schemas = {tool_name(t): t.get("function") or t for t in example.tools if tool_name(t) not in inferred}
    problems, called = [], set()
    for index, message in enumerate(example.messages):
        for call in message.tool_calls or []:
            called.add(call.id)
            name = call.function.name
            if not name:
                problems.append(f"message {index}: a tool call has no name")
            elif schemas and name not in schemas:
                problems.append(f"message {index}: tool {name!r} is not declared")
            else:
                required = ((schemas.get(name) or {}).get("parameters") or {}).get("required") or []
                missing = [key for key in required if key not in call.function.arguments]
                if missing:
                    problems.append(f"message {index}: {name!r} misses required {', '.join(missing)}")
        if message.role == "tool" and message.tool_call_id not in called:
            problems.append(f"message {index}: tool result {message.tool_call_id!r} answers no call")
    return problems
