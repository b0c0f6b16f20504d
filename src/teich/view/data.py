"""What the pages show, as JSON-ready data, from the public Python API.

:class:`ViewData` loads a source with :func:`~teich.load_traces` and prepares it with
:func:`~teich.prepare_data` (when a tokenizer is given), or opens a dataset that ``prepare_data``
saved; every page's data is computed from those rows on demand: one summary per row for the
dataset page, one row's messages for the conversation page, one row's tokens and labels for the
token page. Loaded rows are prepared lazily: the token page prepares its one row (a few recent rows
are kept), and :meth:`ViewData.start` prepares every row in batches in the background, filling the
dataset page's token counts, statuses, report and plots as they come (:meth:`ViewData.progress`).
Labels for another policy come from the labelling code itself
(:func:`~teich.training.labels.label_array`), never re-implemented in the page.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import datasets
import numpy as np

from teich.errors import TeichError, first_line
from teich.privacy.anonymize import PLACEHOLDER, placeholder_kind
from teich.schema import TrainingExample
from teich.traces.sources import LoadReport, load_traces
from teich.training.dataset_labels import MaskAudit, arrow_table, audit, recorded_policy, relabel, row_arrays
from teich.training.labels import IGNORE_INDEX, KIND_OF_FLAG, Policy, TokenSpans, label_array, stored_token_spans
from teich.training.prepare import PrepareReport, prepare_data
from teich.training.spans import KINDS

#: Kind of the tokens no span covers (the template's own text: role headers, tool schemas...).
TEMPLATE_KIND = "template"
#: Per-token kind codes in the token payload: index into this tuple.
TOKEN_KINDS = (TEMPLATE_KIND, *KINDS)
#: The names of :class:`~teich.Policy`'s fields: the options ``--policy`` sets.
POLICY_FIELDS = frozenset(f.name for f in fields(Policy))
#: Rows the background preparation passes to one ``prepare_data`` call.
BATCH_ROWS = 32
#: Rows whose preparation the token page keeps, most recent first.
CACHED_ROWS = 8


@dataclass
class ViewData:
    """A dataset as the viewer sees it: source rows (when loaded from traces), the prepared rows
    (when tokenized; while preparing lazily, the counts of those prepared so far) and what preparing
    kept, trimmed and dropped."""

    name: str
    sources: list[TrainingExample] | None
    prepared: datasets.Dataset | None = None
    report: PrepareReport | None = None
    load: LoadReport | None = None
    tokenizer: Any = None
    #: Source row id -> index of its prepared row.
    prepared_index: dict[int, int] = field(default_factory=dict)
    #: The policy the labels train, where the token page's toggles start.
    policy: Policy = field(default_factory=Policy)
    #: The loaded rows, kept to prepare them lazily (``None`` once prepared, or for a saved dataset).
    rows: datasets.Dataset | None = None
    #: The :func:`~teich.prepare_data` options the rows are prepared with.
    options: dict[str, Any] = field(default_factory=dict)
    #: Why the background preparation stopped early (``""`` while it goes on or once it finished).
    failure: str = ""
    _counts: dict[int, tuple[int, int]] = field(default_factory=dict, init=False, repr=False)
    _done: int = field(default=0, init=False, repr=False)
    _audit: MaskAudit = field(default_factory=MaskAudit, init=False, repr=False)
    _finished: threading.Event = field(default_factory=threading.Event, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _recent: OrderedDict[int, dict[str, Any] | str] = field(default_factory=OrderedDict, init=False, repr=False)
    _summaries: list[dict[str, Any]] | None = field(default=None, init=False, repr=False)
    _stats: dict[str, Any] | None = field(default=None, init=False, repr=False)
    _stats_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _links: dict[int, dict[str, Any]] | None = field(default=None, init=False, repr=False)

    @classmethod
    def open(cls, path: str | Path, tokenizer: Any = None, **options: Any) -> ViewData:
        """The data of ``path``: anything :func:`~teich.load_traces` reads (prepared with ``tokenizer``
        when one is given), or a folder a prepared dataset was saved to (``save_to_disk``).

        ``path``: the source or the saved dataset's folder.
        ``tokenizer``: a ``transformers`` fast tokenizer with a chat template, or ``None`` (no token page).
        ``options``: :func:`~teich.prepare_data` options (``max_length``, ``oversized_policy``, the policy...);
        a saved dataset takes only the policy's, and is relabelled with them.
        """
        folder = Path(path)
        if (folder / "dataset_info.json").is_file() or (folder / "dataset_dict.json").is_file():
            policy = {key: value for key, value in options.items() if key in POLICY_FIELDS}
            return cls.of_prepared(str(path), datasets.load_from_disk(str(folder)), tokenizer, **policy)
        rows, load = load_traces(path, return_report=True)
        return cls.of_rows(str(path), rows, tokenizer, load, **options)

    @classmethod
    def of_rows(
        cls, name: str, rows: datasets.Dataset, tokenizer: Any, load: LoadReport | None = None, **options: Any
    ) -> ViewData:
        """Loaded rows, to prepare with ``tokenizer`` when one is given: lazily, a row when its token page
        asks for it and every row by :meth:`start` in the background, or all at once by :meth:`prepare`.

        ``name``: what the page calls the dataset.
        ``rows``: rows as :func:`~teich.load_traces` returns them.
        ``tokenizer``: as in :meth:`open`.
        ``load``: the :class:`~teich.LoadReport` of loading them, if known.
        ``options``: :func:`~teich.prepare_data` options.
        """
        sources = [TrainingExample.from_record(record) for record in rows]
        policy = Policy.of({key: value for key, value in options.items() if key in POLICY_FIELDS})
        view = cls(name, sources, load=load, tokenizer=tokenizer, policy=policy, options={"strict": False, **options})
        if tokenizer is not None:
            view.rows = rows
        else:
            view._finished.set()
        return view

    @classmethod
    def of_prepared(cls, name: str, dataset: Any, tokenizer: Any, **policy: Any) -> ViewData:
        """A dataset made by :func:`~teich.prepare_data` (every row kept; no messages unless preserved).

        ``name``: what the page calls the dataset.
        ``dataset``: the prepared ``datasets.Dataset`` (a ``DatasetDict`` shows its ``train`` split).
        ``tokenizer``: the tokenizer it was prepared with, which the token page needs to show tokens.
        ``policy``: :class:`~teich.Policy` fields to relabel it with, over its recorded policy.
        """
        if isinstance(dataset, datasets.DatasetDict):
            dataset = dataset["train"] if "train" in dataset else next(iter(dataset.values()))
        if "input_ids" not in dataset.column_names or "spans" not in dataset.column_names:
            raise TeichError(f"{name} is not a dataset made by prepare_data(tokenize=True): it has no input_ids/spans")
        chosen = recorded_policy(dataset) or Policy()
        if policy:
            chosen = _with_flags(chosen, policy)
            dataset = relabel(dataset, **asdict(chosen))
        sources = None
        if "messages" in dataset.column_names:
            sources = [TrainingExample.from_record(record) for record in dataset]
        view = cls(name, sources, tokenizer=tokenizer, policy=chosen)
        view._use(dataset, list(range(len(dataset))))
        return view

    def _use(self, dataset: datasets.Dataset, kept: list[int]) -> None:
        """Show ``dataset``, the prepared rows of source rows ``kept``, and count their tokens."""
        table = arrow_table(dataset)
        lengths = table.column("num_tokens").to_pylist()
        trained = [int((row != IGNORE_INDEX).sum()) for row in row_arrays(table.column("labels"))]
        with self._lock:
            self.prepared, self.rows = dataset, None
            self.prepared_index = {row: index for index, row in enumerate(kept)}
            self._counts = dict(zip(kept, zip(lengths, trained, strict=True), strict=True))
        self._finished.set()

    def prepare(self) -> None:
        """Prepare every loaded row now, in one :func:`~teich.prepare_data` call (what the static export
        needs); nothing to do once prepared, or without a tokenizer."""
        if self.rows is None:
            return
        dataset, report = prepare_data(self.rows, self.tokenizer, return_report=True, **self.options)
        self.report = report
        self._use(dataset, report.kept_row_ids)

    def start(self, turns: threading.Lock | None = None) -> threading.Thread:
        """Start the background work in a daemon thread and return it: prepare the loaded rows in batches
        of :data:`BATCH_ROWS` (one :func:`~teich.prepare_data` call each), counting each row's tokens, its
        status and the report as they come and keeping no row's tokens; then the dataset page's :meth:`stats`.

        ``turns``: a lock each batch holds, the one the server's token requests hold: a request waits for
        at most one batch, then has the tokenizer (and the cores) to itself.
        """
        thread = threading.Thread(target=self._background, args=(turns or threading.Lock(),), daemon=True)
        thread.start()
        return thread

    def _background(self, turns: threading.Lock) -> None:
        rows = self.rows
        if rows is not None and not self._finished.is_set():
            try:
                for start in range(0, len(rows), BATCH_ROWS):
                    self._prepare_batch(rows, start, turns)
                    time.sleep(0.01)  # a request waiting for the lock gets it before the next batch
            except Exception as error:  # the thread's only way to tell the page; the rows before stay counted
                end = min(start + BATCH_ROWS, len(rows)) - 1
                self.failure = f"preparing rows {start}-{end} failed: {first_line(error)}"
            self._finished.set()
        self.stats()

    def _prepare_batch(self, rows: datasets.Dataset, start: int, turns: threading.Lock) -> None:
        """Prepare the batch of ``rows`` from ``start`` (holding ``turns``) and count it."""
        batch = rows.select(range(start, min(start + BATCH_ROWS, len(rows))))
        with turns:
            dataset, report = prepare_data(batch, self.tokenizer, return_report=True, **self.options)
        self._add_batch(start, dataset, report)

    def _add_batch(self, start: int, dataset: datasets.Dataset, report: PrepareReport) -> None:
        """Count a batch of rows prepared as ``dataset``, the first of them source row ``start``."""
        table = arrow_table(dataset)
        kept = [start + row for row in report.kept_row_ids]
        trained = [int((labels != IGNORE_INDEX).sum()) for labels in row_arrays(table.column("labels"))]
        counts = zip(table.column("num_tokens").to_pylist(), trained, strict=True)
        part = audit(dataset)
        with self._lock:
            self._counts.update(zip(kept, counts, strict=True))
            self.report = _merged(self.report, report, start)
            _add_audit(self._audit, part)
            self._done = start + report.rows_in

    def progress(self, start: int = 0) -> dict[str, Any]:
        """How far preparing has come: ``done`` of ``total`` rows, the dataset page's prepared columns
        (tokens, trained, status) of rows ``start`` to ``done``, and the reports once every row is prepared.

        ``start``: the first row whose columns to give (the page has those before it).
        """
        with self._lock:
            done = self._done if self.rows is not None else self.row_count
            rows = [self._prepared_summary(row) for row in range(max(start, 0), done)]
            reports = self._reports() if self._finished.is_set() else None
            return {"done": done, "total": self.row_count, "rows": rows, "reports": reports, "failure": self.failure}

    @property
    def row_count(self) -> int:
        """Rows in the dataset page: the source rows, or the prepared ones when there are no sources."""
        if self.sources is not None:
            return len(self.sources)
        return len(self.prepared) if self.prepared is not None else 0

    def index(self, *, live: bool) -> dict[str, Any]:
        """The dataset page: one summary per row, the reports, the policy and the page's vocabulary.

        ``live``: whether a server answers label requests (else the token page uses exported label bits).
        """
        if self._summaries is None:
            self._summaries = [self._source_summary(row) for row in range(self.row_count)]
        progress = self.progress(self.row_count)
        with self._lock:
            rows = [{**summary, **self._prepared_summary(row)} for row, summary in enumerate(self._summaries)]
        return {
            "name": self.name,
            "tokens": self.tokenizer is not None and (self.prepared is not None or self.rows is not None),
            "rows": rows,
            "done": progress["done"],
            "failure": progress["failure"],
            "reports": progress["reports"] or {},
            "live": live,
            "policy": asdict(self.policy),
            "flags": dict(KIND_OF_FLAG),
            "kinds": list(TOKEN_KINDS),
            "placeholder": PLACEHOLDER.pattern.replace("(?P<", "(?<"),  # the same pattern, in JavaScript's syntax
        }

    def _reports(self) -> dict[str, Any]:
        if self.report is not None:
            return {"prepare": self.report.to_dict()}
        return {"load": self.load.to_dict()} if self.load is not None else {}

    def stats(self) -> dict[str, Any]:
        """The dataset page's trained tokens by kind: :func:`~teich.audit` of the labels (no tokenizing), or
        ``None`` without them. Computed once, on first call, when every row is prepared (it waits for the
        background preparation); the server starts it in the background so that the first page does not wait.
        """
        self._finished.wait()
        with self._stats_lock:
            if self._stats is None:
                self._stats = {"audit": self._all_audit()}
            return self._stats

    def _all_audit(self) -> dict[str, Any] | None:
        if self.prepared is not None:
            return audit(self.prepared).to_dict()
        return self._audit.to_dict() if self.report is not None else None

    def conversation(self, row: int) -> dict[str, Any]:
        """The conversation page of source row ``row``: messages, tools, metadata and status.

        ``row``: the row's number on the dataset page.
        """
        self._check(row)
        example = self.sources[row] if self.sources is not None else None
        return {
            "row": row,
            "status": self._status(row),
            "redactions": _redactions(example) if example else {},
            **self._family(row),
            "messages": [m.model_dump(exclude_none=True) for m in example.messages] if example else [],
            "tools": example.tools if example else [],
            "metadata": _jsonable(example.metadata) if example else {},
            "has_tokens": self._may_have_tokens(row),
        }

    def tokens(self, row: int, *, bits: bool) -> dict[str, Any]:
        """The token page of row ``row``: each token's text (together exactly the rendered text), id,
        kind and whether the dataset's labels train it; kinds and labels as one digit a token (a code of
        :data:`TOKEN_KINDS`; ``1`` trained), compact for a 30k-token row.

        ``row``: the row's number on the dataset page.
        ``bits``: also give, per token, which single ``train_on_*`` flag would train it (bit ``i`` for the
        ``i``-th flag of ``KIND_OF_FLAG``, the top bit for tokens trained with every flag off), so a static
        page can show any combination of flags without a server.
        """
        record = self._record(row)
        if self.tokenizer is None:
            raise TeichError(f"row {row} has no tokens: the viewer has no tokenizer")
        ids, spans = np.asarray(record["input_ids"]), stored_token_spans(record["spans"])
        special = set(getattr(self.tokenizer, "all_special_ids", []))
        payload: dict[str, Any] = {
            "row": row,
            "pieces": token_pieces(self.tokenizer, record["text"], ids),
            "ids": ids.tolist(),
            "kinds": _digits(_token_kinds(len(ids), spans)),
            "special": [i for i, token in enumerate(ids.tolist()) if token in special],
            "trained": _digits(np.asarray(record["labels"]) != IGNORE_INDEX),
        }
        if bits:
            payload["bits"] = _flag_bits(ids, spans, self.policy).tolist()
        return payload

    def labels(self, row: int, flags: dict[str, bool]) -> dict[str, Any]:
        """Which tokens of row ``row`` the dataset's policy with these ``train_on_*`` flags trains.

        ``row``: the row's number on the dataset page.
        ``flags``: ``train_on_*`` flag -> value; the others keep the dataset's policy.
        """
        unknown = sorted(set(flags) - set(KIND_OF_FLAG))
        if unknown:
            raise TeichError(f"unknown flag {', '.join(unknown)}; the flags are {', '.join(KIND_OF_FLAG)}")
        record = self._record(row)
        spans = stored_token_spans(record["spans"])
        labels = label_array(record["input_ids"], spans, _with_flags(self.policy, flags))
        return {"row": row, "flags": flags, "trained": _digits(labels != IGNORE_INDEX)}

    def _family(self, row: int) -> dict[str, Any]:
        """Row ``row``'s sub-agent links: ``parent`` (the row and call that started it) and ``children``."""
        if self._links is None:
            self._links = _sub_agent_links(self.sources or [])
        return self._links.get(row, {"parent": None, "children": []})

    def _check(self, row: int) -> None:
        if not 0 <= row < self.row_count:
            raise TeichError(f"no row {row}: the dataset has {self.row_count} rows")

    def _record(self, row: int) -> dict[str, Any]:
        """Row ``row``'s prepared record (``text``, ``input_ids``, ``spans``, ``labels``): its row of the
        prepared dataset, or, while the rows are prepared lazily, that row prepared alone with the same
        options (the last :data:`CACHED_ROWS` kept). Raises when the row was dropped or there is none."""
        self._check(row)
        if self.rows is not None:
            record = self._recent.pop(row, None) or self._prepare_one(self.rows, row)
            self._recent[row] = record
            while len(self._recent) > CACHED_ROWS:
                self._recent.popitem(last=False)
        else:
            index = self.prepared_index.get(row)
            record = "no prepared rows" if index is None or self.prepared is None else self.prepared[index]
        if isinstance(record, str):
            raise TeichError(f"row {row} has no tokens: {record}")
        return record

    def _prepare_one(self, rows: datasets.Dataset, row: int) -> dict[str, Any] | str:
        """Row ``row`` of ``rows`` prepared alone, or why it was dropped."""
        dataset, report = prepare_data(rows.select([row]), self.tokenizer, return_report=True, **self.options)
        return dataset[0] if len(dataset) else f"dropped ({', '.join(report.dropped.values())})"

    def _may_have_tokens(self, row: int) -> bool:
        """Whether row ``row`` has a token page (kept, or not yet prepared)."""
        if self.tokenizer is None or self._status(row)["status"] == "dropped":
            return False
        return self.rows is not None or row in self.prepared_index

    def _status(self, row: int) -> dict[str, str]:
        if self.report is not None and row in self.report.dropped:
            return {"status": "dropped", "reason": self.report.dropped[row]}
        if self.report is not None and row in self.report.trimmed:
            kept, total = self.report.trimmed[row]
            return {"status": "trimmed", "reason": f"kept {kept} of {total} user turns to fit {self.report.max_length}"}
        if self.rows is not None:
            if row < self._done:
                return {"status": "kept", "reason": ""}
            if self.failure:
                return {"status": "not prepared", "reason": self.failure}
            return {"status": "preparing", "reason": ""}
        return {"status": "kept" if self.prepared is not None else "loaded", "reason": ""}

    def _prepared_summary(self, row: int) -> dict[str, Any]:
        """Row ``row``'s columns that preparing fills: tokens, trained tokens and status."""
        tokens, trained = self._counts.get(row, (None, None))
        return {"tokens": tokens, "trained": trained, **self._status(row)}

    def _source_summary(self, row: int) -> dict[str, Any]:
        """Row ``row``'s columns from its source row."""
        summary: dict[str, Any] = {"row": row}
        if self.sources is not None:
            summary.update(_example_summary(self.sources[row]))
            summary["redactions"] = _redactions(self.sources[row])
        return summary


def _merged(total: PrepareReport | None, part: PrepareReport, start: int) -> PrepareReport:
    """``total``, the report of preparing the rows before ``start``, with ``part``'s (of the rows from
    ``start``) added: what one ``prepare_data`` call over all of them reports."""
    if total is None:
        total = PrepareReport(max_length=part.max_length, load=replace(part.load, rows=0, problems=[], repairs=[]))
        total.load.dropped, total.load.left_out = Counter(), Counter()
    total.rows_in += part.rows_in
    total.kept_row_ids += [start + row for row in part.kept_row_ids]
    total.dropped.update({start + row: reason for row, reason in part.dropped.items()})
    total.oversized += [start + row for row in part.oversized]
    total.trimmed.update({start + row: turns for row, turns in part.trimmed.items()})
    total.token_lengths += part.token_lengths
    total.notes.update(part.notes)
    total.load.rows += part.load.rows
    total.load.dropped.update(part.load.dropped)
    total.load.left_out.update(part.load.left_out)
    total.load.problems += [replace(p, line=p.line and p.line + start) for p in part.load.problems]
    total.load.repairs += [replace(p, line=p.line and p.line + start) for p in part.load.repairs]
    return total


def _add_audit(total: MaskAudit, part: MaskAudit) -> None:
    """Add ``part``'s counts (an audit of other rows) to ``total``."""
    total.rows += part.rows
    total.tokens += part.tokens
    total.supervised += part.supervised
    total.by_kind.update(part.by_kind)
    total.fully_masked_rows += part.fully_masked_rows
    total.capped_rows += part.capped_rows


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


def _redactions(example: TrainingExample) -> dict[str, int]:
    """How many anonymizer placeholders (:data:`~teich.privacy.anonymize.PLACEHOLDER`) the row's messages
    and tools hold, by kind (``email``, ``secret:github_token``...)."""
    texts = [message.model_dump_json(exclude_none=True) for message in example.messages]
    texts += [json.dumps(tool, ensure_ascii=False) for tool in example.tools or ()]
    return dict(Counter(placeholder_kind(match) for text in texts for match in PLACEHOLDER.finditer(text)))


def _sub_agent_links(sources: Sequence[TrainingExample]) -> dict[int, dict[str, Any]]:
    """Sub-agent rows (metadata ``parent_session_id``, as the Claude Code loader records them) linked both
    ways to their parent's row: the row of that session holding the call that started the sub-agent
    (``parent_tool_call_id``), else the session's first row."""
    rows_of: dict[str, list[int]] = {}
    for row, example in enumerate(sources):
        rows_of.setdefault(str(example.metadata.get("session_id")), []).append(row)
    links: dict[int, dict[str, Any]] = {}
    for row, example in enumerate(sources):
        session, call = example.metadata.get("parent_session_id"), example.metadata.get("parent_tool_call_id")
        candidates = rows_of.get(str(session), []) if session else []
        if not candidates:
            continue
        parent = next((r for r in candidates if call and _has_call(sources[r], call)), candidates[0])
        kind = example.metadata.get("sub_agent_type")
        links.setdefault(row, {"parent": None, "children": []})["parent"] = {"row": parent, "call": call}
        child = {"row": row, "call": call, "agent_type": kind}
        links.setdefault(parent, {"parent": None, "children": []})["children"].append(child)
    return links


def _has_call(example: TrainingExample, call_id: str) -> bool:
    return any(call.id == call_id for message in example.messages for call in message.tool_calls or ())


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


def _digits(codes: np.ndarray) -> str:
    """Codes from 0 to 9 (or a boolean mask) as a string of digits, compact in JSON."""
    return (codes.astype(np.uint8) + ord("0")).tobytes().decode()


def _jsonable(value: Any) -> Any:
    """``value`` with anything JSON cannot hold written as text."""
    return json.loads(json.dumps(value, default=str))
