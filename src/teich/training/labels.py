"""From typed character spans to token labels (``-100`` = not trained).

A token is trained when it overlaps a span of a trained kind, the rule transformers applies to
``{% generation %}`` blocks in ``return_assistant_tokens_mask``: a token that straddles a boundary
(a BPE merge of template text with content) is trained if any of its characters is.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from types import MappingProxyType
from typing import Any, Literal

import numpy as np

from teich.errors import TeichError
from teich.training.spans import ASSISTANT_KINDS, Span

IGNORE_INDEX = -100
KIND_OF_FLAG = MappingProxyType(
    {
        "train_on_reasoning": "reasoning",
        "train_on_final_answers": "final_answer",
        "train_on_tools": "tool_call",
        "train_on_user": "user",
        "train_on_system": "system",
        "train_on_developer": "developer",
        "train_on_tool_responses": "tool_response",
    }
)


@dataclass(frozen=True)
class Policy:
    """What is trained: one flag per span kind, and at most ``max_supervised_tokens`` supervised
    tokens a row (the first ones; ``None``: no cap)."""

    train_on_reasoning: bool = True
    train_on_final_answers: bool = True
    train_on_tools: bool = True
    train_on_user: bool = False
    train_on_system: bool = False
    train_on_developer: bool = False
    train_on_tool_responses: bool = False
    max_supervised_tokens: int | None = None
    #: ``"all"`` assistant turns, or only the ``"last"`` one (the session's final answer).
    train_turns: Literal["all", "last"] = "all"

    def __post_init__(self) -> None:
        if self.train_turns not in ("all", "last"):
            raise TeichError(f"train_turns must be 'all' or 'last', not {self.train_turns!r}")
        cap = self.max_supervised_tokens
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 0):
            raise TeichError(f"max_supervised_tokens must be a non-negative int or None, not {cap!r}")

    @classmethod
    def of(cls, options: dict[str, Any]) -> Policy:
        """The policy of keyword options, refusing names that are not policy fields."""
        unknown = sorted(set(options) - {f.name for f in fields(cls)})
        if unknown:
            raise TeichError(f"unknown option {', '.join(unknown)}; the policy options are {', '.join(asdict(cls()))}")
        return cls(**options)

    def selects(self, spans: TokenSpans) -> list[bool]:
        """Which spans this policy trains: a message's own ``train`` flag decides for its spans;
        otherwise the span's kind, and with ``train_turns="last"`` only the last assistant message."""
        trains = spans.trains or (None,) * len(spans.kinds)
        messages = spans.messages or (0,) * len(spans.kinds)
        last = None
        if self.train_turns == "last":
            answers = [m for kind, m in zip(spans.kinds, messages, strict=True) if kind in ASSISTANT_KINDS]
            last = max(answers, default=None)
        kinds = self.kinds
        return [
            train if train is not None else kind in kinds and (last is None or message == last)
            for kind, message, train in zip(spans.kinds, messages, trains, strict=True)
        ]

    @property
    def kinds(self) -> frozenset[str]:
        return frozenset(kind for flag, kind in KIND_OF_FLAG.items() if getattr(self, flag))

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Policy:
        return cls.of(json.loads(text))

    def describe(self) -> str:
        kinds = ", ".join(sorted(self.kinds)) or "nothing"
        cap = "" if self.max_supervised_tokens is None else f", at most {self.max_supervised_tokens} tokens a row"
        turns = ", the last turn only" if self.train_turns == "last" else ""
        return f"training {kinds}{turns}{cap}"


DEFAULT_KINDS = Policy().kinds


@dataclass(frozen=True)
class TokenSpans:
    """Spans as half-open token ranges, parallel to their kinds, messages and the messages' own
    train flags (empty where unknown)."""

    kinds: tuple[str, ...]
    ranges: tuple[tuple[int, int], ...]
    messages: tuple[int, ...] = ()
    trains: tuple[bool | None, ...] = ()


def encode(texts: list[str], tokenizer: Any) -> list[Any]:
    """The texts' encodings (ids and character offsets) in one batched fast-tokenizer call, tokenized
    exactly as ``apply_chat_template`` does (a single text is encoded alone, which keeps the
    tokenizer's thread pool out of forked workers)."""
    if not getattr(tokenizer, "is_fast", False):
        raise TeichError("a fast tokenizer (PreTrainedTokenizerFast) is needed for character offsets")
    if len(texts) == 1:
        return [tokenizer._tokenizer.encode(texts[0], add_special_tokens=False)]
    return tokenizer._tokenizer.encode_batch(texts, add_special_tokens=False) if texts else []


def token_spans(spans: Sequence[Span], encoding: Any) -> TokenSpans:
    """Map character spans onto the tokens that overlap them (``encoding`` from a fast tokenizer)."""
    ranges = []
    for span in spans:
        first, last = encoding.char_to_token(span.start), encoding.char_to_token(span.end - 1)
        if first is None or last is None:  # a character no token covers: fall back to the offsets
            first, last = _overlapping(encoding.offsets, span)
        ranges.append(_widened(encoding, first, last, span))
    messages, trains = tuple(s.message for s in spans), tuple(s.train for s in spans)
    return TokenSpans(tuple(s.kind for s in spans), tuple(ranges), messages, trains)


def _widened(encoding: Any, first: int, last: int, span: Span) -> tuple[int, int]:
    """The half-open range ``first..last`` grown over neighbouring tokens that still overlap the span.

    ``char_to_token`` names one token per character, but byte-level BPE can split a character (an
    emoji, a rare CJK character) over several tokens that all carry its offsets: every one of them
    belongs to the span, so a character is never trained on only some of its bytes.
    """
    while first > 0 and _overlaps(encoding.token_to_chars(first - 1), span):
        first -= 1
    while last + 1 < len(encoding) and _overlaps(encoding.token_to_chars(last + 1), span):
        last += 1
    return first, last + 1


def _overlaps(chars: tuple[int, int] | None, span: Span) -> bool:
    return chars is not None and chars[0] < span.end and chars[1] > span.start


def _overlapping(offsets: Sequence[tuple[int, int]], span: Span) -> tuple[int, int]:
    """First and last token whose offsets overlap the span."""
    bounds = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
    first = int(np.searchsorted(bounds[:, 1], span.start, side="right"))
    last = int(np.searchsorted(bounds[:, 0], span.end, side="left")) - 1
    return first, max(first, last)


def label_array(input_ids: Sequence[int] | np.ndarray, spans: TokenSpans, policy: Policy) -> np.ndarray:
    """Labels (int64) that train the tokens of the spans the policy selects, at most its cap (the first ones)."""
    trained = _mask(len(input_ids), spans.ranges, policy.selects(spans))
    if policy.max_supervised_tokens is not None:
        trained[np.flatnonzero(trained)[policy.max_supervised_tokens :]] = False
    return np.where(trained, np.asarray(input_ids, dtype=np.int64), IGNORE_INDEX)


def span_mask(length: int, spans: TokenSpans, kinds: Iterable[str]) -> np.ndarray:
    """Which of ``length`` tokens lie in a span of ``kinds``."""
    kinds = frozenset(kinds)
    return _mask(length, spans.ranges, [kind in kinds for kind in spans.kinds])


def _mask(length: int, ranges: Sequence[tuple[int, int]], selected: Sequence[bool]) -> np.ndarray:
    mask = np.zeros(length, dtype=bool)
    for (start, end), chosen in zip(ranges, selected, strict=True):
        if chosen:
            mask[start:end] = True
    return mask


def stored_token_spans(records: Sequence[dict[str, Any]]) -> TokenSpans:
    """The token spans of a row's ``spans`` column records (``token_start`` / ``token_end``)."""
    return TokenSpans(
        tuple(r["kind"] for r in records),
        tuple((r["token_start"], r["token_end"]) for r in records),
        tuple(r["message"] for r in records),
        tuple(r.get("train") for r in records),
    )


def window(spans: TokenSpans, offset: int, length: int) -> TokenSpans:
    """The spans of the ``length`` tokens that start at ``offset``, counted from that token."""
    ranges = tuple((min(max(s - offset, 0), length), min(max(e - offset, 0), length)) for s, e in spans.ranges)
    return TokenSpans(spans.kinds, ranges, spans.messages, spans.trains)
