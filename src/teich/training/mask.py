"""``mask_data``: labels for a supervision policy, applied to a built TRL / Unsloth trainer.

Unpacked rows keep their ``spans`` through TRL's preparation, so they are relabelled from them,
without rendering again and without tokenizing again when the spans carry token positions; rows
the trainer truncated are relabelled in place (``keep_start``) or placed back in the whole row
from its ``num_tokens`` (``keep_end``). The relabelled rows' spans then count from the trainer
row's first token (``num_tokens`` is its length), so :func:`teich.audit` reads them as they are.
Packed rows lost their spans: their labels are kept when they were made with the requested policy
(recorded in the dataset's ``info``), and refused otherwise.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from typing import Any

import datasets
import numpy as np
import pyarrow as pa

from teich.errors import TeichError
from teich.training.dataset_labels import (
    MaskAudit,
    arrow_table,
    has_token_positions,
    label_column,
    recorded_policy,
    require_training,
    row_arrays,
    stored_spans,
    with_columns,
)
from teich.training.dataset_labels import audit as audit_labels
from teich.training.labels import Policy, TokenSpans, encode, token_spans, window
from teich.training.spans import Span

ADVICE = (
    "pass the policy to prepare_data(..., tokenize=True) or call teich.relabel(dataset, ...) "
    "before building the trainer"
)


def mask_data(trainer: Any, *, tokenizer: Any = None, audit: bool = True, **policy: Any) -> Any:
    """Relabel the datasets of ``trainer`` (a TRL ``SFTTrainer``) for this policy; return the trainer.

    ``tokenizer``: the one that made the datasets; by default the trainer's ``processing_class``.
    ``audit``: print the train dataset's :class:`MaskAudit`.
    ``policy``: :class:`~teich.Policy` fields (``train_on_tools=True``, ...).

    ``max_supervised_tokens`` defaults to the trainer's ``max_length`` for the rows it relabels
    (so it caps only rows the trainer did not truncate) and to the prepared cap for rows it keeps.
    Raises when the policy leaves every row without a supervised token, and when packed rows
    (which have lost their spans) were prepared with another policy. :func:`teich.audit` recomputes
    the printed audit.
    """
    requested = Policy.of(policy)
    args = getattr(trainer, "args", None)
    tokenizer = tokenizer or getattr(trainer, "processing_class", None) or getattr(trainer, "tokenizer", None)
    job = _Job(requested, tokenizer, args)
    trainer.train_dataset, report = job.masked(trainer.train_dataset, "train")
    evaluation = getattr(trainer, "eval_dataset", None)
    if isinstance(evaluation, dict):
        trainer.eval_dataset = {name: job.masked(d, f"eval {name}")[0] for name, d in evaluation.items()}
    elif evaluation is not None:
        trainer.eval_dataset = job.masked(evaluation, "eval")[0]
    if audit:
        print(f"teich mask_data: {report.summary()}", file=sys.stderr)
    return trainer


class _Job:
    """One ``mask_data`` call: the requested policy, the tokenizer and the trainer's arguments."""

    def __init__(self, requested: Policy, tokenizer: Any, args: Any) -> None:
        self.requested, self.tokenizer = requested, tokenizer
        self.max_length = getattr(args, "max_length", None)
        self.packed = bool(getattr(args, "packing", False))
        keep_end = getattr(args, "truncation_mode", None) == "keep_end" and not self.packed
        self.cut_start_at = self.max_length if keep_end else None

    def masked(self, dataset: datasets.Dataset, name: str) -> tuple[datasets.Dataset, MaskAudit]:
        if "input_ids" not in dataset.column_names:
            raise TeichError(f"the {name} dataset has no input_ids: build the trainer on a prepare_data dataset")
        if "spans" not in dataset.column_names:
            return dataset, self.kept(dataset, name)
        policy = self.requested
        if policy.max_supervised_tokens is None:
            policy = replace(policy, max_supervised_tokens=self.max_length)
        table = arrow_table(dataset)
        token_rows = row_arrays(table.column("input_ids"))
        spans = self.row_spans(table, token_rows, name)
        labels, report = label_column(token_rows, spans, policy)
        require_training(report, f"the {name} dataset")
        columns = {"labels": labels, **_placed(table, spans, token_rows)}
        return with_columns(dataset, table, columns, policy), report

    def kept(self, dataset: datasets.Dataset, name: str) -> MaskAudit:
        """The audit of labels that cannot be relabelled but were made with the requested policy."""
        if self.packed:
            what = f"the trainer packed the {name} rows and dropped their spans, so mask_data cannot relabel them"
        else:
            what = f"the {name} dataset has no spans column, so mask_data cannot relabel its rows"
        recorded = recorded_policy(dataset)
        if recorded is None:
            raise TeichError(f"{what}, and their labels record no teich policy to keep; {ADVICE}")
        cap = self.requested.max_supervised_tokens
        same_spans = (recorded.kinds, recorded.train_turns) == (self.requested.kinds, self.requested.train_turns)
        if not same_spans or cap not in (None, recorded.max_supervised_tokens):
            raise TeichError(
                f"{what}: their labels were prepared {recorded.describe()}, not {self.requested.describe()} as asked; "
                + ADVICE
            )
        return audit_labels(dataset)

    def row_spans(self, table: pa.Table, token_rows: list[np.ndarray], name: str) -> list[TokenSpans]:
        """Each trainer row's spans, counted from its first token."""
        if not has_token_positions(table):
            return self.text_spans(table, token_rows, name)
        lengths = table.column("num_tokens").to_pylist() if "num_tokens" in table.column_names else None
        spans = stored_spans(table)
        return [
            window(spans[index], self.cut(index, len(ids), lengths, name), len(ids))
            for index, ids in enumerate(token_rows)
        ]

    def cut(self, index: int, length: int, lengths: list[int] | None, name: str) -> int:
        """How many tokens the trainer cut from the start of a prepared row (``keep_end``)."""
        if self.cut_start_at is None or (lengths is None and length < self.cut_start_at):
            return 0
        if lengths is None:
            raise TeichError(
                f"{name} row {index}: the trainer may have cut the start of this row (truncation_mode='keep_end') "
                "and the dataset has no num_tokens column to place its spans; use truncation_mode='keep_start', "
                "prepare_data(max_length=...), or prepare the dataset again with this version of prepare_data"
            )
        if length > lengths[index]:
            raise TeichError(f"{name} row {index}: {length} tokens, more than the {lengths[index]} prepared")
        return lengths[index] - length

    def text_spans(self, table: pa.Table, token_rows: list[np.ndarray], name: str) -> list[TokenSpans]:
        """Spans of ``prepare_data(tokenize=False)`` rows, placed by one batched tokenization of ``text``.

        The trainer's ids must be the text's tokens, maybe with the EOS it appends, cut as it truncates.
        """
        if self.tokenizer is None:
            raise TeichError("mask_data needs the tokenizer to place the spans on tokens")
        records, texts = table.column("spans").to_pylist(), table.column("text").to_pylist()
        encodings = encode(texts, self.tokenizer)
        eos = getattr(self.tokenizer, "eos_token_id", None)
        spans = []
        for index, (ids, encoding) in enumerate(zip(token_rows, encodings, strict=True)):
            full = list(encoding.ids)
            if len(ids) and ids[-1] == eos and full[-1:] != [eos]:
                full.append(eos)
            offset = len(full) - len(ids) if self.cut_start_at is not None else 0
            if offset < 0 or not np.array_equal(ids, full[offset : offset + len(ids)]):
                raise TeichError(f"{name} row {index}: the trainer's input_ids are not the tokens of the prepared text")
            located = [Span(r["kind"], r["start"], r["end"], r["message"], r.get("train")) for r in records[index]]
            spans.append(window(token_spans(located, encoding), offset, len(ids)))
        return spans


def _placed(table: pa.Table, spans: list[TokenSpans], token_rows: list[np.ndarray]) -> dict[str, pa.Array]:
    """The ``spans`` and ``num_tokens`` columns of the trainer's rows: token positions from their first token."""
    records = table.column("spans").to_pylist()
    for row, placed in zip(records, spans, strict=True):
        for record, (start, end) in zip(row, placed.ranges, strict=True):
            record["token_start"], record["token_end"] = start, end
    return {"spans": pa.array(records), "num_tokens": pa.array([len(ids) for ids in token_rows], pa.int64())}
