"""What the pages show, as JSON-ready data, from the public Python API.

:class:`ViewData` loads a source with :func:`~teich.load_traces` and prepares it with
:func:`~teich.prepare_data` (when a tokenizer is given), or opens a dataset that ``prepare_data``
saved; every page's data is computed from those rows on demand: one summary per row for the
dataset page, one row's messages for the conversation page, one row's tokens and labels for the
token page. Labels for another policy come from the labelling code itself
(:func:`~teich.training.labels.label_array`), never re-implemented in the page.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import datasets
import numpy as np

from teich.errors import TeichError
from teich.schema import TrainingExample
from teich.traces.sources import LoadReport, load_traces
from teich.training.dataset_labels import arrow_table, audit, recorded_policy, row_arrays
from teich.training.labels import IGNORE_INDEX, KIND_OF_FLAG, Policy, TokenSpans, label_array, stored_token_spans
from teich.training.prepare import PrepareReport, prepare_data
from teich.training.spans import KINDS

#: Kind of the tokens no span covers (the template's own text: role headers, tool schemas...).
TEMPLATE_KIND = "template"
#: Per-token kind codes in the token payload: index into this tuple.
TOKEN_KINDS = (TEMPLATE_KIND, *KINDS)


@dataclass
class ViewData:
    """A dataset as the viewer sees it: source rows (when loaded from traces), the prepared rows
    (when tokenized) and what preparing kept, trimmed and dropped."""

    name: str
    sources: list[TrainingExample] | None
    prepared: datasets.Dataset | None = None
    report: PrepareReport | None = None
    load: LoadReport | None = None
    tokenizer: Any = None
    #: Source row id -> index of its prepared row.
    prepared_index: dict[int, int] = field(default_factory=dict)
    _index: dict[str, Any] | None = field(default=None, init=False, repr=False)

    @classmethod
    def open(cls, path: str | Path, tokenizer: Any = None, **options: Any) -> ViewData:
        """The data of ``path``: anything :func:`~teich.load_traces` reads (prepared with ``tokenizer``
        when one is given), or a folder a prepared dataset was saved to (``save_to_disk``).

        ``path``: the source or the saved dataset's folder.
        ``tokenizer``: a ``transformers`` fast tokenizer with a chat template, or ``None`` (no token page).
        ``options``: :func:`~teich.prepare_data` options (``max_length``, ``oversized_policy``, the policy...).
        """
        folder = Path(path)
        if (folder / "dataset_info.json").is_file() or (folder / "dataset_dict.json").is_file():
            return cls.of_prepared(str(path), datasets.load_from_disk(str(folder)), tokenizer)
        rows, load = load_traces(path, return_report=True)
        return cls.of_rows(str(path), rows, tokenizer, load, **options)

    @classmethod
    def of_rows(
        cls, name: str, rows: datasets.Dataset, tokenizer: Any, load: LoadReport | None = None, **options: Any
    ) -> ViewData:
        """Loaded rows, prepared with ``tokenizer`` when one is given.

        ``name``: what the page calls the dataset.
        ``rows``: rows as :func:`~teich.load_traces` returns them.
        ``tokenizer``: as in :meth:`open`.
        ``load``: the :class:`~teich.LoadReport` of loading them, if known.
        ``options``: :func:`~teich.prepare_data` options.
        """
        sources = [TrainingExample.from_record(record) for record in rows]
        view = cls(name, sources, load=load, tokenizer=tokenizer)
        if tokenizer is not None:
            options.setdefault("strict", False)
            view.prepared, view.report = prepare_data(rows, tokenizer, return_report=True, **options)
            view.prepared_index = {row: index for index, row in enumerate(view.report.kept_row_ids)}
        return view

    @classmethod
    def of_prepared(cls, name: str, dataset: Any, tokenizer: Any) -> ViewData:
        """A dataset made by :func:`~teich.prepare_data` (every row kept; no messages unless preserved).

        ``name``: what the page calls the dataset.
        ``dataset``: the prepared ``datasets.Dataset`` (a ``DatasetDict`` shows its ``train`` split).
        ``tokenizer``: the tokenizer it was prepared with, which the token page needs to show tokens.
        """
        if isinstance(dataset, datasets.DatasetDict):
            dataset = dataset["train"] if "train" in dataset else next(iter(dataset.values()))
        if "input_ids" not in dataset.column_names or "spans" not in dataset.column_names:
            raise TeichError(f"{name} is not a dataset made by prepare_data(tokenize=True): it has no input_ids/spans")
        sources = None
        if "messages" in dataset.column_names:
            sources = [TrainingExample.from_record(record) for record in dataset]
        view = cls(name, sources, prepared=dataset, tokenizer=tokenizer)
        view.prepared_index = {row: row for row in range(len(dataset))}
        return view

    @property
    def row_count(self) -> int:
        """Rows in the dataset page: the source rows, or the prepared ones when there are no sources."""
        if self.sources is not None:
            return len(self.sources)
        return len(self.prepared) if self.prepared is not None else 0

    @property
    def policy(self) -> Policy:
        """The policy of the prepared labels (the default where none is recorded)."""
        recorded = recorded_policy(self.prepared) if self.prepared is not None else None
        return recorded or Policy()

    def index(self, *, live: bool) -> dict[str, Any]:
        """The dataset page: one summary per row, the reports, the policy and the page's vocabulary.

        ``live``: whether a server answers label requests (else the token page uses exported label bits).
        """
        if self._index is None:
            self._index = self._build_index()
        return {**self._index, "live": live}

    def _build_index(self) -> dict[str, Any]:
        table = arrow_table(self.prepared) if self.prepared is not None else None
        lengths = table.column("num_tokens").to_pylist() if table is not None else []
        trained = [int((row != IGNORE_INDEX).sum()) for row in row_arrays(table.column("labels"))] if table else []
        rows = [self._summary(row, lengths, trained) for row in range(self.row_count)]
        reports = {}
        if self.report is not None:
            reports["prepare"] = self.report.to_dict()
        elif self.load is not None:
            reports["load"] = self.load.to_dict()
        if self.prepared is not None:
            reports["audit"] = audit(self.prepared).to_dict()
        return {
            "name": self.name,
            "tokens": self.prepared is not None and self.tokenizer is not None,
            "rows": rows,
            "reports": reports,
            "policy": asdict(self.policy),
            "flags": dict(KIND_OF_FLAG),
            "kinds": list(TOKEN_KINDS),
        }

    def conversation(self, row: int) -> dict[str, Any]:
        """The conversation page of source row ``row``: messages, tools, metadata and status.

        ``row``: the row's number on the dataset page.
        """
        self._check(row)
        example = self.sources[row] if self.sources is not None else None
        return {
            "row": row,
            "status": self._status(row),
            "messages": [m.model_dump(exclude_none=True) for m in example.messages] if example else [],
            "tools": example.tools if example else [],
            "metadata": _jsonable(example.metadata) if example else {},
            "has_tokens": self._prepared_row(row) is not None and self.tokenizer is not None,
        }

    def tokens(self, row: int, *, bits: bool) -> dict[str, Any]:
        """The token page of row ``row``: each token's text (together exactly the rendered text), id,
        kind and whether the dataset's labels train it.

        ``row``: the row's number on the dataset page.
        ``bits``: also give, per token, which single ``train_on_*`` flag would train it (bit ``i`` for the
        ``i``-th flag of ``KIND_OF_FLAG``, the top bit for tokens trained with every flag off), so a static
        page can show any combination of flags without a server.
        """
        index = self._prepared_row(row)
        if index is None or self.tokenizer is None or self.prepared is None:
            raise TeichError(f"row {row} has no tokens: it was dropped, or the viewer has no tokenizer")
        record = self.prepared[index]
        ids, spans = np.asarray(record["input_ids"]), stored_token_spans(record["spans"])
        special = set(getattr(self.tokenizer, "all_special_ids", []))
        payload: dict[str, Any] = {
            "row": row,
            "pieces": token_pieces(self.tokenizer, record["text"], ids),
            "ids": ids.tolist(),
            "kinds": _token_kinds(len(ids), spans).tolist(),
            "special": [i for i, token in enumerate(ids.tolist()) if token in special],
            "trained": _bits(np.asarray(record["labels"]) != IGNORE_INDEX),
        }
        if bits:
            payload["bits"] = _flag_bits(ids, spans, self.policy).tolist()
        return payload

    def labels(self, row: int, flags: dict[str, bool]) -> dict[str, Any]:
        """Which tokens of row ``row`` the dataset's policy with these ``train_on_*`` flags trains.

        ``row``: the row's number on the dataset page.
        ``flags``: ``train_on_*`` flag -> value; the others keep the dataset's policy.
        """
        index = self._prepared_row(row)
        if index is None or self.prepared is None:
            raise TeichError(f"row {row} has no labels: it was dropped, or the viewer has no tokenizer")
        unknown = sorted(set(flags) - set(KIND_OF_FLAG))
        if unknown:
            raise TeichError(f"unknown flag {', '.join(unknown)}; the flags are {', '.join(KIND_OF_FLAG)}")
        record = self.prepared[index]
        spans = stored_token_spans(record["spans"])
        labels = label_array(record["input_ids"], spans, _with_flags(self.policy, flags))
        return {"row": row, "flags": flags, "trained": _bits(labels != IGNORE_INDEX)}

    def _check(self, row: int) -> None:
        if not 0 <= row < self.row_count:
            raise TeichError(f"no row {row}: the dataset has {self.row_count} rows")

    def _prepared_row(self, row: int) -> int | None:
        self._check(row)
        return self.prepared_index.get(row)

    def _status(self, row: int) -> dict[str, str]:
        if self.report is not None and row in self.report.dropped:
            return {"status": "dropped", "reason": self.report.dropped[row]}
        if self.report is not None and row in self.report.trimmed:
            kept, total = self.report.trimmed[row]
            return {"status": "trimmed", "reason": f"kept {kept} of {total} user turns to fit {self.report.max_length}"}
        return {"status": "kept" if self.prepared is not None else "loaded", "reason": ""}

    def _summary(self, row: int, lengths: Sequence[int], trained: Sequence[int]) -> dict[str, Any]:
        index = self.prepared_index.get(row)
        summary: dict[str, Any] = {
            "row": row,
            "tokens": lengths[index] if index is not None else None,
            "trained": trained[index] if index is not None else None,
            **self._status(row),
        }
        if self.sources is not None:
            summary.update(_example_summary(self.sources[row]))
        return summary


def _example_summary(example: TrainingExample) -> dict[str, Any]:
    """A source row's columns on the dataset page."""
    messages = example.messages
    return {
        "format": str(example.metadata.get("trace_type") or "rows"),
        "model": str(example.metadata.get("model") or ""),
        "title": example.prompt[:160],
        "turns": sum(m.role == "user" for m in messages),
        "messages": len(messages),
        "tool_calls": sum(len(m.tool_calls or ()) for m in messages),
        "errors": sum(bool(m.is_error) for m in messages),
    }


def token_pieces(tokenizer: Any, text: str, ids: np.ndarray) -> list[str]:
    """Each token's share of ``text``, so that the pieces joined are ``text`` exactly: each token decoded
    on its own where those join to the text, else the text's character offsets from tokenizing it again
    (a character split over byte tokens goes to the first of them).

    ``tokenizer``: the fast tokenizer that made ``ids``.
    ``text``: the rendered row.
    ``ids``: its token ids.
    """
    singles = [[token] for token in ids.tolist()]
    pieces: list[str] = tokenizer._tokenizer.decode_batch(singles, skip_special_tokens=False)
    if "".join(pieces) == text:
        return pieces
    encoding = tokenizer._tokenizer.encode(text, add_special_tokens=False)
    if list(encoding.ids) != ids.tolist():
        return pieces
    pieces, cursor = [], 0
    for _, end in encoding.offsets:
        end = max(end, cursor)
        pieces.append(text[cursor:end])
        cursor = end
    if pieces:
        pieces[-1] += text[cursor:]
    return pieces


def _token_kinds(length: int, spans: TokenSpans) -> np.ndarray:
    """Each token's kind code (an index into :data:`TOKEN_KINDS`); a token two spans share gets the later one."""
    kinds = np.zeros(length, dtype=np.int8)
    for kind, (start, end) in zip(spans.kinds, spans.ranges, strict=True):
        kinds[start:end] = TOKEN_KINDS.index(kind)
    return kinds


def _flag_bits(ids: np.ndarray, spans: TokenSpans, policy: Policy) -> np.ndarray:
    """Per token, which single ``train_on_*`` flag trains it under ``policy`` with every other flag off
    (bit per flag, in :data:`KIND_OF_FLAG` order), and bit 7 for what trains with all flags off (a message's
    own ``train``); a policy's labels are the union of its flags' bits (its token cap aside)."""
    off = _with_flags(replace(policy, max_supervised_tokens=None), dict.fromkeys(KIND_OF_FLAG, False))
    bits: np.ndarray = (label_array(ids, spans, off) != IGNORE_INDEX).astype(np.uint8) << 7
    for bit, flag in enumerate(KIND_OF_FLAG):
        bits |= (label_array(ids, spans, _with_flags(off, {flag: True})) != IGNORE_INDEX).astype(np.uint8) << bit
    return bits


def _with_flags(policy: Policy, flags: dict[str, bool]) -> Policy:
    """``policy`` with these ``train_on_*`` flags set."""
    return Policy.of({**asdict(policy), **flags})


def _bits(mask: np.ndarray) -> str:
    """A boolean mask as a string of ``0``/``1``, compact in JSON."""
    return mask.astype(np.uint8).tobytes().translate(bytes.maketrans(b"\x00\x01", b"01")).decode()


def _jsonable(value: Any) -> Any:
    """``value`` with anything JSON cannot hold written as text."""
    return json.loads(json.dumps(value, default=str))
