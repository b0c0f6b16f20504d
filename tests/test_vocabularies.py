"""Teich on another vocabulary than a family's own (``model_families``: Mistral's SentencePiece and
Tekken): what SentencePiece changes, with expectations stated by hand. A text segment that follows
a control token opens with a dummy-prefix ``▁`` (its own token before a ``\\n``, with the offsets of
that ``\\n``), characters outside the 32k pieces become ``<0x..>`` byte pieces that share the
character's offsets, and decoding drops the leading space of each decode call.
"""

from __future__ import annotations

import datasets
import pytest
from model_families import family_tokenizer

from teich import prepare_data, preview

# The answer opens with "\n" and holds a character (U+1D518) Mistral's 32k pieces lack.
ANSWER = "\nSeven 𝔘 on a new line, ok."
# SentencePiece's encoding of ANSWER as a segment of its own (sentencepiece.SentencePieceProcessor on
# mistral-common's tokenizer.model.v1): dummy prefix, "\n" as a byte piece, 𝔘 as its four UTF-8 bytes.
ANSWER_PIECES = ["▁", "<0x0A>", "S", "even", "▁", "<0xF0>", "<0x9D>", "<0x94>", "<0x98>"]
ANSWER_PIECES += ["▁on", "▁a", "▁new", "▁line", ",", "▁ok", "."]


def _trained_pieces(tokenizer, row) -> list[str]:
    pieces = tokenizer.convert_ids_to_tokens(row["input_ids"])
    return [piece for piece, label in zip(pieces, row["labels"], strict=True) if label != -100]


@pytest.mark.parametrize(
    ("family", "header", "stop"),
    [
        # <｜Assistant｜> is the generation prompt; the answer follows it directly.
        ("deepseekv3", [], ["<｜end▁of▁sentence｜>"]),
        # "<|start|>assistant" is the prompt; the model writes "<|channel|>final<|message|>" itself.
        ("gptoss", ["<|channel|>", "▁final", "<|message|>"], ["<|return|>"]),
    ],
)
def test_an_answer_after_a_control_token_trains_its_dummy_prefix_and_byte_pieces(family, header, stop):
    """Where the answer is a segment of its own, the trained tokens are exactly SentencePiece's
    encoding of it (the ``▁`` before ``\\n`` included, all four bytes of ``𝔘``) and the stop token."""
    tokenizer = family_tokenizer(family, vocabulary="sentencepiece")
    messages = [{"role": "user", "content": "Say it."}, {"role": "assistant", "content": ANSWER}]
    dataset = prepare_data(datasets.Dataset.from_list([{"messages": messages}]), tokenizer)
    assert _trained_pieces(tokenizer, dataset[0]) == header + ANSWER_PIECES + stop


@pytest.mark.parametrize("vocabulary", [None, "sentencepiece", pytest.param("tekken", marks=pytest.mark.slow)])
def test_preview_keeps_the_space_where_training_stops_mid_text(vocabulary):
    """Two supervised tokens ("It", " is") stop training inside the answer: the preview shows
    ``[[It is]] done`` with its space. A SentencePiece decoder drops the leading space of a decode
    call (``▁done`` alone decodes to ``done``), so a run decoded on its own would read ``[[It is]]done``."""
    tokenizer = family_tokenizer("qwen2_5", vocabulary=vocabulary)
    messages = [
        {"role": "user", "content": "Say it twice."},
        {"role": "assistant", "content": "It is done, it is done."},
    ]
    dataset = prepare_data(datasets.Dataset.from_list([{"messages": messages}]), tokenizer, max_supervised_tokens=2)
    shown = preview(dataset, 0, tokenizer, color=False)
    assert "assistant\n[[It is]] done, it is done.<|im_end|>" in shown
    assert shown.replace("[[", "").replace("]]", "") == tokenizer.decode(dataset[0]["input_ids"])
