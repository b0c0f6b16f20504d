"""``mask_data``: labels for a supervision policy, applied to a built TRL / Unsloth trainer.

The trainer's datasets are relabelled from the spans ``prepare_data`` recorded, without rendering
again and without tokenizing again when the prepared token positions are there. Rows the trainer
packed are split back into their sequences (``seq_lengths``) and relabelled one by one, so packing
trains on exactly the tokens it would train on unpacked.
"""

from __future__ import annotations

import sys
import types
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import datasets
import numpy as np
import pyarrow as pa

from teich.errors import TeichError
from teich.labels import IGNORE_INDEX, TokenSpans, label_array, registered_token_spans, token_spans
from teich.spans import Span

_FLAG_KINDS = {
    "train_on_reasoning": "reasoning",
    "train_on_final_answers": "final_answer",
    "train_on_tools": "tool_call",
    "train_on_user": "user",
    "train_on_system": "system",
    "train_on_developer": "developer",
    "train_on_tool_responses": "tool_response",
}


@dataclass
class MaskAudit:
    """What a policy trains on: rows, tokens, supervised tokens per kind."""

    rows: int = 0
    tokens: int = 0
    supervised: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)
    fully_masked_rows: int = 0
    capped_rows: int = 0

    def summary(self) -> str:
        share = self.supervised / self.tokens if self.tokens else 0.0
        kinds = ", ".join(f"{kind} {n}" for kind, n in self.by_kind.most_common())
        return (
            f"{self.rows} rows, {self.tokens} tokens, {self.supervised} supervised ({share:.1%}): {kinds or 'none'}; "
            f"{self.fully_masked_rows} rows fully masked, {self.capped_rows} capped"
        )


def mask_data(
    trainer: Any,
    *,
    tokenizer: Any = None,
    train_on_reasoning: bool = True,
    train_on_final_answers: bool = True,
    train_on_tools: bool = True,
    train_on_user: bool = False,
    train_on_system: bool = False,
    train_on_developer: bool = False,
    train_on_tool_responses: bool = False,
    max_supervised_tokens: int | None = None,
    audit: bool = True,
) -> Any:
    """Replace the trainer's datasets with ``input_ids`` + ``labels`` for this policy; return the trainer.

    Each ``train_on_*`` flag selects one kind of span. ``max_supervised_tokens`` (default: the
    trainer's ``max_length``) caps the supervised tokens of a row, keeping the first ones. Raises if
    the policy leaves every row without a supervised token. The audit is kept as
    ``trainer.teich_audit`` and printed when ``audit=True``; ``trainer.train_dataset.preview(i)``
    shows a row's trained and masked text.
    """
    flags = {
        "train_on_reasoning": train_on_reasoning,
        "train_on_final_answers": train_on_final_answers,
        "train_on_tools": train_on_tools,
        "train_on_user": train_on_user,
        "train_on_system": train_on_system,
        "train_on_developer": train_on_developer,
        "train_on_tool_responses": train_on_tool_responses,
    }
    kinds = frozenset(kind for flag, kind in _FLAG_KINDS.items() if flags[flag])
    tokenizer = tokenizer or getattr(trainer, "processing_class", None) or getattr(trainer, "tokenizer", None)
    if max_supervised_tokens is None:
        max_supervised_tokens = getattr(getattr(trainer, "args", None), "max_length", None)
    report, cut = MaskAudit(), _start_cut_over(trainer)
    trainer.train_dataset = _relabel(
        trainer.train_dataset, tokenizer, kinds, max_supervised_tokens, report, "train", cut
    )
    evaluation = getattr(trainer, "eval_dataset", None)
    if isinstance(evaluation, dict):
        trainer.eval_dataset = {
            name: _relabel(d, tokenizer, kinds, max_supervised_tokens, MaskAudit(), f"eval {name}", cut)
            for name, d in evaluation.items()
        }
    elif evaluation is not None:
        trainer.eval_dataset = _relabel(evaluation, tokenizer, kinds, max_supervised_tokens, MaskAudit(), "eval", cut)
    trainer.teich_audit = report
    if audit:
        print(f"teich mask_data: {report.summary()}", file=sys.stderr)
    return trainer


def _start_cut_over(trainer: Any) -> int | None:
    """The length over which the trainer cut the start of unpacked rows (TRL ``truncation_mode="keep_end"``)."""
    args = getattr(trainer, "args", None)
    if getattr(args, "truncation_mode", None) != "keep_end" or getattr(args, "packing", False):
        return None
    return getattr(args, "max_length", None)


def _relabel(dataset, tokenizer, kinds, cap, report: MaskAudit, name: str, cut: int | None) -> datasets.Dataset:
    """The dataset's ``input_ids`` with labels for ``kinds``, read and written as whole Arrow columns."""
    if "input_ids" not in dataset.column_names:
        raise TeichError(f"{name} dataset has no input_ids: build the trainer on a prepare_data dataset")
    table = dataset.with_format("arrow")[:]  # in the dataset's order, honouring select / shuffle
    token_ids = table.column("input_ids").combine_chunks()
    offsets = np.asarray(token_ids.offsets, dtype=np.int64)
    values = token_ids.values.to_numpy(zero_copy_only=False)
    packed = "seq_lengths" in table.column_names and "spans" not in table.column_names
    spans_of = _packed_spans(table) if packed else _row_spans(table, tokenizer, name, cut)
    labels = []
    for index in range(len(offsets) - 1):
        ids = values[offsets[index] : offsets[index + 1]]
        pieces = [
            _audit(report, label_array(seg, spans, kinds, cap), spans, kinds, cap)
            for seg, spans in spans_of(ids, index)
        ]
        labels.append(np.concatenate(pieces) if pieces else np.zeros(0, np.int64))
    if report.rows and report.fully_masked_rows == report.rows:
        raise TeichError(f"every row of the {name} dataset is fully masked under this policy: nothing would be trained")
    flat = np.concatenate(labels) if labels else np.zeros(0, np.int64)
    result = {"input_ids": token_ids, "labels": pa.LargeListArray.from_arrays(offsets - offsets[0], flat)}
    for kept in ("seq_lengths", "spans", "text"):  # spans and text let mask_data apply another policy later
        if kept in table.column_names:
            result[kept] = table.column(kept)
    relabelled = datasets.Dataset(pa.table(result))
    relabelled.preview = types.MethodType(_preview_row, relabelled)
    relabelled.teich_tokenizer = tokenizer
    return relabelled


def _packed_spans(table: pa.Table):
    """Per packed row: its sequences, each with the spans prepare_data recorded for it."""
    lengths = table.column("seq_lengths").to_pylist()

    def spans_of(ids: np.ndarray, index: int):
        start = 0
        for length in lengths[index]:
            segment = ids[start : start + length]
            spans = registered_token_spans(segment)
            if spans is None:
                raise TeichError(
                    f"packed row {index}: a sequence was not prepared in this process or was cut by packing; "
                    "call prepare_data(tokenize=True, max_length=...) before building the trainer"
                )
            yield segment, spans
            start += length

    return spans_of


def _row_spans(table: pa.Table, tokenizer: Any, name: str, cut: int | None):
    """Spans per row from the ``spans`` column, tokenizing ``text`` only where token positions are missing.

    A row the trainer truncated keeps the labels of its first tokens. Rows of ``cut`` tokens or more
    whose start the trainer may have cut (``keep_end``) are refused unless they are prepared rows.
    """
    if "spans" not in table.column_names:
        raise TeichError(f"{name} dataset has no spans column: build the trainer on a prepare_data dataset")
    records = table.column("spans").to_pylist()
    encodings = None
    if "text" in table.column_names and not _has_token_positions(records):
        if tokenizer is None:
            raise TeichError("mask_data needs the tokenizer to place the spans on tokens")
        texts = table.column("text").to_pylist()
        encodings = tokenizer._tokenizer.encode_batch(texts, add_special_tokens=False)

    def spans_of(ids: np.ndarray, index: int):
        if encodings is None:
            if cut is not None and len(ids) >= cut and registered_token_spans(ids) is None:
                raise TeichError(
                    f"{name} row {index}: the trainer may have cut the start of this row (truncation_mode='keep_end'), "
                    "where its token positions count from; use 'keep_start' or prepare_data(max_length=...)"
                )
            spans = _stored_token_spans(records[index])
        else:
            encoding = encodings[index]
            kept = min(len(ids), len(encoding))  # the trainer may have truncated the row, or added an EOS
            if not np.array_equal(ids[:kept], encoding.ids[:kept]):
                raise TeichError(f"{name} row {index}: the trainer's input_ids are not the tokens of the prepared text")
            spans = token_spans([Span(s["kind"], s["start"], s["end"], s["message"]) for s in records[index]], encoding)
        yield ids, spans

    return spans_of


def _has_token_positions(records: list[list[dict[str, Any]]]) -> bool:
    first = next((spans for spans in records if spans), [])
    return bool(first) and first[0].get("token_start") is not None


def _stored_token_spans(records: list[dict[str, Any]]) -> TokenSpans:
    return TokenSpans(tuple(r["kind"] for r in records), tuple((r["token_start"], r["token_end"]) for r in records))


def _audit(report: MaskAudit, labels: np.ndarray, spans: TokenSpans, kinds, cap) -> np.ndarray:
    trained = labels != IGNORE_INDEX
    supervised = int(trained.sum())
    report.rows += 1
    report.tokens += len(labels)
    report.supervised += supervised
    report.fully_masked_rows += int(not supervised)
    for kind, (start, end) in zip(spans.kinds, spans.ranges, strict=True):
        if kind in kinds:
            report.by_kind[kind] += int(trained[start:end].sum())
    if cap is not None and supervised >= cap and _supervisable(spans, kinds, len(labels)) > cap:
        report.capped_rows += 1
    return labels


def _supervisable(spans: TokenSpans, kinds, length: int) -> int:
    mask = np.zeros(length, dtype=bool)
    for kind, (start, end) in zip(spans.kinds, spans.ranges, strict=True):
        if kind in kinds:
            mask[start:end] = True
    return int(mask.sum())


def preview_sft_example(tokenizer: Any, input_ids: list[int], labels: list[int], *, color: bool | None = None) -> str:
    """A row's text with trained and masked tokens told apart: green vs dim in a terminal,
    ``[[`` trained ``]]`` markers otherwise."""
    color = sys.stdout.isatty() if color is None else color
    trained = [label != IGNORE_INDEX for label in labels]
    pieces, start = [], 0
    for end in range(1, len(input_ids) + 1):
        if end == len(input_ids) or trained[end] != trained[start]:
            text = tokenizer.decode(input_ids[start:end])
            if color:
                pieces.append(f"\033[32m{text}\033[0m" if trained[start] else f"\033[2m{text}\033[0m")
            else:
                pieces.append(f"[[{text}]]" if trained[start] else text)
            start = end
    return "".join(pieces)


def _preview_row(dataset: datasets.Dataset, index: int, tokenizer: Any = None, *, color: bool | None = None) -> str:
    row = dataset[index]
    tokenizer = tokenizer or getattr(dataset, "teich_tokenizer", None)
    if tokenizer is None:
        raise TeichError("preview needs a tokenizer")
    text = preview_sft_example(tokenizer, row["input_ids"], row["labels"], color=color)
    print(text)
    return text
