"""From typed character spans to token labels (``-100`` = not trained).

A token is trained when it overlaps a span of a trained kind, the rule transformers applies to
``{% generation %}`` blocks in ``return_assistant_tokens_mask``: a token that straddles a boundary
(a BPE merge of template text with content) is trained if any of its characters is.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from teich.spans import ASSISTANT_KINDS, Span

IGNORE_INDEX = -100
DEFAULT_KINDS = frozenset(ASSISTANT_KINDS)


@dataclass(frozen=True)
class TokenSpans:
    """Spans as half-open token ranges, parallel to their kinds."""

    kinds: tuple[str, ...]
    ranges: tuple[tuple[int, int], ...]


def token_spans(spans: Sequence[Span], encoding: Any) -> TokenSpans:
    """Map character spans onto the tokens that overlap them (``encoding`` from a fast tokenizer)."""
    ranges = []
    for span in spans:
        first, last = encoding.char_to_token(span.start), encoding.char_to_token(span.end - 1)
        if first is None or last is None:  # a character no token covers: fall back to the offsets
            first, last = _overlapping(encoding.offsets, span)
        ranges.append(_widened(encoding, first, last, span))
    return TokenSpans(tuple(s.kind for s in spans), tuple(ranges))


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


def labels_for(
    input_ids: Sequence[int], spans: TokenSpans, kinds: Iterable[str], max_supervised_tokens: int | None = None
) -> list[int]:
    """Labels that train the tokens of ``kinds`` spans, at most ``max_supervised_tokens`` (the first ones)."""
    return label_array(input_ids, spans, kinds, max_supervised_tokens).tolist()


def label_array(
    input_ids: Sequence[int], spans: TokenSpans, kinds: Iterable[str], max_supervised_tokens: int | None = None
) -> np.ndarray:
    """:func:`labels_for` as an int64 array."""
    kinds = frozenset(kinds)
    trained = np.zeros(len(input_ids), dtype=bool)
    for kind, (start, end) in zip(spans.kinds, spans.ranges, strict=True):
        if kind in kinds:
            trained[start : min(end, len(input_ids))] = True
    if max_supervised_tokens is not None:
        trained[np.flatnonzero(trained)[max_supervised_tokens:]] = False
    return np.where(trained, np.asarray(input_ids, dtype=np.int64), IGNORE_INDEX)


# Token spans of every tokenized row prepared in this process, by a digest of its input ids, so that
# mask_data can relabel rows after the trainer has packed or truncated them.
_PREPARED: dict[bytes, TokenSpans] = {}


def ids_digest(input_ids: Sequence[int]) -> bytes:
    return hashlib.blake2b(np.asarray(input_ids, dtype=np.int64).tobytes(), digest_size=16).digest()


def register_token_spans(input_ids: Sequence[int], spans: TokenSpans) -> None:
    _PREPARED[ids_digest(input_ids)] = spans


def registered_token_spans(input_ids: Sequence[int]) -> TokenSpans | None:
    return _PREPARED.get(ids_digest(input_ids))
