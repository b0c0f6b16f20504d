"""Labels as data: relabel a prepared dataset for a policy, audit what its labels train, preview a row.

Everything here reads the dataset's own columns (``input_ids``, ``labels``, ``spans`` with token
positions, ``seq_lengths`` of packed rows) and the policy recorded in its ``info.description``;
nothing is kept between calls, so it works on a dataset saved, loaded, shuffled or mapped anywhere.
"""

from __future__ import annotations

import hashlib
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import datasets
import numpy as np
import pyarrow as pa

from teich.errors import TeichError
from teich.reports import Report, Tally
from teich.training.labels import IGNORE_INDEX, Policy, TokenSpans, label_array, span_mask, stored_token_spans
from teich.training.spans import KINDS

POLICY_NOTE = "teich labels: "
NO_SPANS = TokenSpans((), ())


@dataclass
class MaskAudit(Report):
    """What labels train: rows, tokens, supervised tokens per kind (where spans are known)."""

    kind = "audit"

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

    def tally(self) -> Tally:
        return Tally(
            counts={
                "rows": self.rows,
                "tokens": self.tokens,
                "supervised": self.supervised,
                "fully_masked_rows": self.fully_masked_rows,
                "capped_rows": self.capped_rows,
            },
            reasons={"supervised_by_kind": self.by_kind},
        )

    def count(self, labels: np.ndarray, spans: TokenSpans, kinds: frozenset[str], cap: int | None) -> None:
        """Add one row's labels; ``spans`` and ``kinds`` attribute its trained tokens to kinds."""
        trained = labels != IGNORE_INDEX
        supervised = int(trained.sum())
        self.rows += 1
        self.tokens += len(labels)
        self.supervised += supervised
        self.fully_masked_rows += int(not supervised)
        for kind, (start, end) in zip(spans.kinds, spans.ranges, strict=True):
            if kind in kinds:
                self.by_kind[kind] += int(trained[start:end].sum())
        if cap is not None and supervised >= cap and int(span_mask(len(labels), spans, kinds).sum()) > cap:
            self.capped_rows += 1


def relabel(dataset: datasets.Dataset, **policy: Any) -> datasets.Dataset:
    """The dataset with ``labels`` for this policy, derived from the token positions of its ``spans``
    without rendering or tokenizing; every other column is kept and the policy is recorded in the
    result's ``info``.

    ``dataset``: a dataset made by :func:`~teich.prepare_data` (with ``input_ids`` and ``spans``).
    ``policy``: :class:`~teich.Policy` fields (``train_on_reasoning=False``, ...); unset ones keep
    their defaults.
    """
    chosen = Policy.of(policy)
    table = arrow_table(dataset)
    labels, report = label_column(row_arrays(table.column("input_ids")), stored_spans(table), chosen)
    require_training(report, "the dataset")
    return with_columns(dataset, table, {"labels": labels}, chosen)


def audit(dataset: datasets.Dataset, **policy: Any) -> MaskAudit:
    """What the dataset's labels train (per kind where it has spans).

    ``dataset``: a dataset with ``labels`` (made by :func:`~teich.prepare_data` or :func:`relabel`).
    ``policy``: :class:`~teich.Policy` fields; when given, the audit says what :func:`relabel` with
    them would train instead.
    """
    table = arrow_table(dataset)
    if policy:
        return label_column(row_arrays(table.column("input_ids")), stored_spans(table), Policy.of(policy))[1]
    _require_labels(dataset)
    recorded = recorded_policy(dataset)
    kinds = recorded.kinds if recorded else frozenset(KINDS)
    cap = recorded.max_supervised_tokens if recorded else None
    spans = stored_spans(table) if has_token_positions(table) else [NO_SPANS] * len(table)
    lengths = table.column("seq_lengths").to_pylist() if "seq_lengths" in table.column_names else None
    report = MaskAudit()
    for index, labels in enumerate(row_arrays(table.column("labels"))):
        for piece in np.split(labels, np.cumsum(lengths[index])[:-1]) if lengths else [labels]:
            report.count(piece, spans[index], kinds, cap)
    return report


def preview(dataset: datasets.Dataset, index: int, tokenizer: Any, *, color: bool | None = None) -> str:
    """Row ``index`` of ``dataset`` (which has labels), its trained text marked (see :func:`preview_sft_example`).

    ``tokenizer`` decodes the row's ``input_ids``; ``color`` as in :func:`preview_sft_example`.
    """
    _require_labels(dataset)
    row = dataset[index]
    return preview_sft_example(tokenizer, row["input_ids"], row["labels"], color=color)


def preview_sft_example(tokenizer: Any, input_ids: list[int], labels: list[int], *, color: bool | None = None) -> str:
    """A row's text with trained and masked tokens told apart.

    ``tokenizer`` decodes ``input_ids``; a token trains where its entry in ``labels`` is not -100.
    ``color``: green trained text and dim masked text (ANSI colours) when true, ``[[`` trained ``]]``
    markers when false; by default colours when standard output is a terminal.
    """
    color = sys.stdout.isatty() if color is None else color
    trained = [label != IGNORE_INDEX for label in labels]
    pieces, start = [], 0
    for end in range(1, len(input_ids) + 1):
        if end == len(input_ids) or trained[end] != trained[start]:
            text = _decoded_after(tokenizer, input_ids, start, end)
            if color:
                pieces.append(f"\033[32m{text}\033[0m" if trained[start] else f"\033[2m{text}\033[0m")
            else:
                pieces.append(f"[[{text}]]" if trained[start] else text)
            start = end
    return "".join(pieces)


def _decoded_after(tokenizer: Any, input_ids: list[int], start: int, end: int) -> str:
    """``input_ids[start:end]`` decoded as it reads after the token before it: a SentencePiece decoder
    drops the leading space of every decode call (``▁is`` alone is ``is``), so each run is decoded
    after its previous token and that token's own text removed."""
    if start == 0:
        return str(tokenizer.decode(input_ids[start:end]))
    before = str(tokenizer.decode(input_ids[start - 1 : start]))
    both = str(tokenizer.decode(input_ids[start - 1 : end]))
    return both[len(before) :] if both.startswith(before) else str(tokenizer.decode(input_ids[start:end]))


def _require_labels(dataset: datasets.Dataset) -> None:
    if "labels" not in dataset.column_names:
        raise TeichError("the dataset has no labels column: prepare it with prepare_data(tokenize=True)")


def recorded_policy(dataset: datasets.Dataset) -> Policy | None:
    """The policy the dataset's labels were made with, from its ``info`` (``None`` when not recorded,
    or when concatenated datasets recorded different ones)."""
    notes = {line for line in (dataset.info.description or "").splitlines() if line.startswith(POLICY_NOTE)}
    return Policy.from_json(notes.pop().removeprefix(POLICY_NOTE)) if len(notes) == 1 else None


def policy_note(description: str | None, policy: Policy) -> str:
    """``description`` with its policy note replaced by this policy's."""
    lines = [line for line in (description or "").splitlines() if not line.startswith(POLICY_NOTE)]
    return "\n".join([*lines, POLICY_NOTE + policy.to_json()])


def arrow_table(dataset: datasets.Dataset) -> pa.Table:
    """The dataset's rows in its order (honouring select / shuffle), as one Arrow table."""
    if "input_ids" not in dataset.column_names:
        raise TeichError("the dataset has no input_ids: prepare it with prepare_data(tokenize=True)")
    return dataset.with_format("arrow")[:]


def row_arrays(column: pa.ChunkedArray | pa.Array) -> list[np.ndarray]:
    """The rows of a list column as numpy arrays."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if not len(array):
        return []
    lengths = array.value_lengths().to_numpy(zero_copy_only=False)
    return np.split(array.flatten().to_numpy(zero_copy_only=False), np.cumsum(lengths)[:-1])


def stored_spans(table: pa.Table) -> list[TokenSpans]:
    """Each row's token spans from its ``spans`` column."""
    if "spans" not in table.column_names:
        raise TeichError("the dataset has no spans column: prepare it with prepare_data(tokenize=True)")
    if not has_token_positions(table):
        raise TeichError("the spans have no token positions: prepare the dataset with prepare_data(tokenize=True)")
    return [stored_token_spans(records) for records in table.column("spans").to_pylist()]


def has_token_positions(table: pa.Table) -> bool:
    if "spans" not in table.column_names:
        return False
    first: list[dict[str, Any]] = next((records for records in table.column("spans").to_pylist() if records), [])
    return bool(first) and first[0].get("token_start") is not None


def label_column(
    token_rows: Sequence[np.ndarray], spans: Sequence[TokenSpans], policy: Policy
) -> tuple[pa.LargeListArray, MaskAudit]:
    """Labels of each row for the policy, as one Arrow column, with their audit."""
    report, kinds = MaskAudit(), policy.kinds
    labels = [label_array(ids, row_spans, policy) for ids, row_spans in zip(token_rows, spans, strict=True)]
    for row_labels, row_spans in zip(labels, spans, strict=True):
        report.count(row_labels, row_spans, kinds, policy.max_supervised_tokens)
    offsets = np.cumsum([0] + [len(row) for row in labels], dtype=np.int64)
    flat = np.concatenate(labels) if labels else np.zeros(0, np.int64)
    return pa.LargeListArray.from_arrays(offsets, flat), report


def require_training(report: MaskAudit, name: str) -> None:
    if report.rows and report.fully_masked_rows == report.rows:
        raise TeichError(f"every row of {name} is fully masked under this policy: nothing would be trained")


def with_columns(
    dataset: datasets.Dataset, table: pa.Table, columns: dict[str, pa.Array], policy: Policy
) -> datasets.Dataset:
    """The dataset's ``table`` with these columns set (``labels`` made for ``policy``, which is recorded);
    the other columns and their features are kept."""
    features = dict(dataset.features)
    for name, column in columns.items():
        if name in table.column_names:
            table = table.set_column(table.column_names.index(name), name, column)
        else:
            table = table.append_column(name, column)
        features[name] = datasets.Features.from_arrow_schema(pa.schema([(name, column.type)]))[name]
    info = dataset.info.copy()
    info.features = datasets.Features(features)
    info.description = policy_note(info.description, policy)
    return arrow_dataset(table, info)


def arrow_dataset(table: pa.Table, info: datasets.DatasetInfo) -> datasets.Dataset:
    """A dataset over ``table``, fingerprinted by its buffers and description: the same data gets the
    same fingerprint (so ``map`` caches stay valid) without ``datasets`` pickling every row to hash it."""
    digest = hashlib.blake2b(f"{info.description}{table.schema}".encode(), digest_size=16)
    for column in table.columns:
        for chunk in column.chunks:
            digest.update(f"{chunk.offset}:{len(chunk)}".encode())
            for buffer in chunk.buffers():
                if buffer is not None:
                    digest.update(buffer)
    return datasets.Dataset(table, info=info, fingerprint=digest.hexdigest())
