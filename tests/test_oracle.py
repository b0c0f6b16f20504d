"""Oracle agreement: Teich's default-policy labels against the generation-tagged training templates
that ``trl`` ships, evaluated by transformers' ``return_assistant_tokens_mask``, on real tokenizers.

The tokenizer carries the *training* template, so both sides see byte-identical text. Labels must
agree on every token except the documented policy differences below: each is a token the oracle
trains that Teich deliberately does not, and each must sit right before a supervised region (the
generation prompt, which the model never writes) or right after one (text after the stop token).
"""

from __future__ import annotations

import datasets
import numpy as np
import pytest
from model_families import FAMILIES, family_tokenizer

from teich import TrainingExample, load_traces, prepare_data
from teich.render import template_messages
from teich.templates import profile_template

# Oracle-only tokens per family, by decoded text, and why Teich leaves them out.
DOCUMENTED_DIFFERENCES = {
    # "<think>\n" ends the generation prompt (Teich starts after it); "\n" follows <|im_end|>.
    "qwen3_5_think": {"<think>", "\n"},
    "qwen3_6": {"<think>", "\n"},
    # the newline after <|im_end|>
    "qwen3": {"\n"},
    # the "\n" closing the role header (part of the generation prompt) and the one after <|im_end|>
    "qwen2_5": {"\n"},
    # the newline after <end_of_turn>
    "gemma3": {"\n"},
    # the document-final end-of-text token after the last <|end|>
    "phi3": {"<|endoftext|>", "\n"},
    # the "<|start|>assistant" generation prompt of every turn
    "gptoss": {"<|start|>", "assistant"},
    # the "<｜Assistant｜>" prompt, and "<｜tool▁outputs▁end｜>", the prompt after tool results
    "deepseekv3": {"<｜Assistant｜>", "<｜tool▁outputs▁end｜>"},
    "llama3": set(),
    "glm4moe": set(),
}

CHAT_ROWS = [
    {
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Name a prime."},
            {"role": "assistant", "reasoning_content": "Two is the smallest.", "content": "2"},
            {"role": "user", "content": "Another, please."},
            {"role": "assistant", "content": "\nSeven, starting on a new line."},
            {"role": "user", "content": "And in Japanese?"},
            {"role": "assistant", "reasoning_content": "七 is seven.", "content": "七 🎉 (nana)"},
        ]
    },
    {
        "messages": [
            {"role": "user", "content": 'Quote <b> & "this"'},
            {"role": "assistant", "content": '<b> & "this" — done.'},
        ]
    },
]
TOOL_ROWS = [
    {
        "messages": [
            {"role": "user", "content": "Weather in Paris and Zürich?"},
            {
                "role": "assistant",
                "reasoning_content": "Call the tool twice.",
                "content": "Checking both cities.",
                "tool_calls": [
                    {"id": "a", "type": "function", "function": {"name": "weather", "arguments": {"city": "Paris"}}},
                    {"id": "b", "type": "function", "function": {"name": "weather", "arguments": {"city": "Zürich"}}},
                ],
            },
            {"role": "tool", "tool_call_id": "a", "content": "18C, log says <|im_end|> here"},
            {"role": "tool", "tool_call_id": "b", "content": "12C"},
            {"role": "assistant", "content": "Paris 18C, Zürich 12C."},
        ],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "weather",
                    "description": "Current weather",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
                },
            }
        ],
    },
    {
        "messages": [
            {"role": "user", "content": "List the files."},
            {
                "role": "assistant",
                "tool_calls": [{"id": "c", "type": "function", "function": {"name": "ls", "arguments": {}}}],
            },
            {"role": "tool", "tool_call_id": "c", "content": "a.txt"},
            {"role": "assistant", "reasoning_content": "One file.", "content": "Just a.txt."},
        ]
    },
]


def _sources(shared_traces):
    return [datasets.Dataset.from_list(CHAT_ROWS), datasets.Dataset.from_list(TOOL_ROWS), shared_traces]


def _oracle_mask(tokenizer, example: TrainingExample):
    messages, _ = template_messages(example, profile_template(tokenizer))
    out = tokenizer.apply_chat_template(
        messages, tools=example.tools or None, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    return out["input_ids"], np.asarray(out["assistant_masks"], dtype=bool)


def _runs(positions: np.ndarray) -> list[tuple[int, int]]:
    """Maximal runs of consecutive positions, as half-open ranges."""
    runs: list[tuple[int, int]] = []
    for position in positions.tolist():
        if runs and runs[-1][1] == position:
            runs[-1] = (runs[-1][0], position + 1)
        else:
            runs.append((position, position + 1))
    return runs


@pytest.mark.parametrize("family", FAMILIES)
def test_default_labels_agree_with_the_training_template_oracle(family, shared_traces):
    tokenizer = family_tokenizer(family, training=True)
    sources = _sources(shared_traces)
    dataset, report = prepare_data(sources, tokenizer, tokenize=True, strict=False, return_report=True)
    examples = [TrainingExample.from_record(r) for r in load_traces(sources)]
    assert len(dataset) >= 2, report.summary()
    allowed = DOCUMENTED_DIFFERENCES[family]
    compared = 0
    for row_id, row in zip(report.kept_row_ids, dataset, strict=True):
        oracle_ids, oracle = _oracle_mask(tokenizer, examples[row_id])
        assert row["input_ids"] == oracle_ids, f"{family} row {row_id}: token ids differ from apply_chat_template"
        ours = np.asarray(row["labels"]) != -100
        assert not (ours & ~oracle).any(), f"{family} row {row_id}: Teich trains tokens the oracle does not"
        for start, end in _runs(np.flatnonzero(oracle & ~ours)):
            text = [tokenizer.decode([token]) for token in oracle_ids[start:end]]
            assert set(text) <= allowed, f"{family} row {row_id}: undocumented oracle-only tokens {text}"
            touches = (end < len(ours) and ours[end]) or (start > 0 and ours[start - 1])
            assert touches, f"{family} row {row_id}: oracle-only tokens {text} are not at a turn's edge"
        compared += int(oracle.sum())
    assert compared > 0


@pytest.mark.parametrize("family", ["qwen3_6", "qwen3", "gptoss", "glm4moe", "deepseekv3", "llama3"])
def test_supervision_starts_where_the_generation_prompt_ends(family):
    """For each assistant turn k: the first supervised token is the first token after
    ``render(messages[:k], add_generation_prompt=True)`` when that rendering is a prefix of the whole."""
    tokenizer = family_tokenizer(family)
    rows = CHAT_ROWS[:1] if family == "llama3" else CHAT_ROWS[:1] + TOOL_ROWS[1:]
    dataset = prepare_data(datasets.Dataset.from_list(rows), tokenizer, tokenize=True)
    examples = [TrainingExample.from_record(r) for r in load_traces(datasets.Dataset.from_list(rows))]
    checked = 0
    for example, row in zip(examples, dataset, strict=True):
        messages, _ = template_messages(example, profile_template(tokenizer))
        encoding = tokenizer(row["text"], add_special_tokens=False, return_offsets_mapping=True)
        trained = np.asarray(row["labels"]) != -100
        for k, message in enumerate(messages):
            if message["role"] != "assistant":
                continue
            prompt = tokenizer.apply_chat_template(
                messages[:k], tools=example.tools or None, tokenize=False, add_generation_prompt=True
            )
            if not row["text"].startswith(prompt):
                continue  # not prefix-stable at this turn (e.g. reasoning dropped from history)
            first = next(i for i, (s, e) in enumerate(encoding["offset_mapping"]) if e > len(prompt))
            assert trained[first], f"{family} turn {k}: first generated token not trained"
            assert not trained[first - 1], f"{family} turn {k}: a generation-prompt token is trained"
            checked += 1
    assert checked > 0


@pytest.mark.parametrize(
    ("family", "stops"),
    [
        ("qwen3_6", {"<|im_end|>"}),
        ("llama3", {"<|eot_id|>"}),
        ("gemma3", {"<end_of_turn>"}),
        ("gptoss", {"<|return|>", "<|end|>", "<|call|>"}),
        ("glm4moe", {"<|user|>", "<|observation|>"}),
        ("deepseekv3", {"<｜end▁of▁sentence｜>"}),
        ("phi3", {"<|end|>"}),
    ],
)
def test_each_turn_ends_on_its_stop_token(family, stops):
    """The last supervised token of every assistant turn is the template's stop token.

    GLM's original template has no end-of-turn token: a turn ends on the next message's role marker,
    so the final turn of a conversation has none in the rendering and ends with the text.
    """
    tokenizer = family_tokenizer(family)
    rows = CHAT_ROWS if family in ("llama3", "gemma3", "phi3") else CHAT_ROWS + TOOL_ROWS[1:]
    dataset = prepare_data(datasets.Dataset.from_list(rows), tokenizer, tokenize=True, strict=False)
    ends = set()
    for row in dataset:
        runs = _runs(np.flatnonzero(np.asarray(row["labels"]) != -100))
        if family == "glm4moe":
            assert runs[-1][1] == len(row["input_ids"])
            runs = runs[:-1]
        ends.update(tokenizer.decode([row["input_ids"][end - 1]]) for _, end in runs)
    assert ends and ends <= stops, ends
