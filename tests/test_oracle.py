"""Oracle agreement: Teich's default-policy labels against the generation-tagged training templates
that ``trl`` ships, evaluated by transformers' ``return_assistant_tokens_mask``, on real tokenizers.

The tokenizer carries the *training* template, so both sides see byte-identical text. Labels must
agree on every token except the documented policy differences below: each is a token the oracle
trains that Teich deliberately does not, and each must sit right before a supervised region (the
generation prompt, which the model never writes) or right after one (text after the stop token).

Every family runs on two vocabularies: its own (see ``model_families``) and Mistral's SentencePiece
model laid out as the released Llama 2 / Mistral / Phi-3 tokenizers (a ``▁`` dummy prefix on every text
segment between control tokens, byte fallback), with the same documented differences. The default run
takes the SentencePiece pairing on every source but ``../shared/traces`` (the synthetic chat, tool and
agent rows and the recorded sessions: ``test_labels_agree_with_the_oracle_on_sentencepiece``); the
``slow`` run takes the whole oracle on SentencePiece and on Mistral's Tekken BPE too.
"""

from __future__ import annotations

import datasets
import numpy as np
import pytest
from agent_rows import AGENT_ROWS, agent_sources
from model_families import FAMILIES, VOCABULARIES, family_tokenizer

from teich import TrainingExample, load_traces, prepare_data
from teich.training.render import template_messages
from teich.training.spans import ASSISTANT_KINDS
from teich.training.templates import profile_template

# Oracle-only tokens per family, by decoded text, and why Teich leaves them out. A run of oracle-only
# tokens must spell a sequence of these texts (another vocabulary may split one: Tekken's "ass" "istant").
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
    # the "<|start|>assistant" generation prompt after a user or tool message (the one the model
    # writes itself after its analysis message is trained: see the GPT-OSS test below)
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


# Each family on its own vocabulary in the default run, and on the other vocabularies under ``slow``.
FAMILY_VOCABULARIES = [pytest.param(family, None, id=family) for family in FAMILIES] + [
    pytest.param(family, vocabulary, id=f"{family}-{vocabulary}", marks=pytest.mark.slow)
    for vocabulary in VOCABULARIES
    for family in FAMILIES
]


def _oracle_mask(tokenizer, example: TrainingExample):
    messages, _ = template_messages(example, profile_template(tokenizer))
    out = tokenizer.apply_chat_template(
        messages, tools=example.tools or None, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    return out["input_ids"], np.asarray(out["assistant_masks"], dtype=bool)


def _message_of_token(spans: list[dict]) -> dict[int, int]:
    """The message each token of an assistant span belongs to."""
    return {
        token: span["message"]
        for span in spans
        if span["kind"] in ASSISTANT_KINDS
        for token in range(span["token_start"], span["token_end"])
    }


def _runs(positions: np.ndarray) -> list[tuple[int, int]]:
    """Maximal runs of consecutive positions, as half-open ranges."""
    runs: list[tuple[int, int]] = []
    for position in positions.tolist():
        if runs and runs[-1][1] == position:
            runs[-1] = (runs[-1][0], position + 1)
        else:
            runs.append((position, position + 1))
    return runs


@pytest.mark.parametrize(("family", "vocabulary"), FAMILY_VOCABULARIES)
def test_default_labels_agree_with_the_training_template_oracle(family, vocabulary, shared_traces):
    tokenizer = family_tokenizer(family, training=True, vocabulary=vocabulary)
    sources = _sources(shared_traces)
    dataset, report = prepare_data(sources, tokenizer, tokenize=True, strict=False, return_report=True)
    assert len(dataset) >= 2, report.summary()
    assert _agreement(family, tokenizer, sources, dataset, report) > 0


# Why a family's template cannot render some agent conversations (it drops their tool calls, or
# the text of tool-call turns after the first, or rejects tool messages); the others keep them all.
UNRENDERABLE_AGENT_ROWS = {
    "llama3": "the chat template does not render tool calls",
    "phi3": "the chat template does not render tool calls",
    "gemma3": "Conversation roles must alternate user/assistant",
    "deepseekv3": "the chat template leaves out the text before its tool calls",
}


@pytest.mark.parametrize(("family", "vocabulary"), FAMILY_VOCABULARIES)
def test_agent_conversations_agree_with_the_training_template_oracle(family, vocabulary, shared_traces, tmp_path):
    """The agent conversations (real traces, recorded sessions, synthetic stress rows) are all kept
    where the template can render tool use, and their labels agree with the oracle."""
    tokenizer = family_tokenizer(family, training=True, vocabulary=vocabulary)
    sources = agent_sources(shared_traces, tmp_path)
    dataset, report = prepare_data(sources, tokenizer, tokenize=True, strict=False, return_report=True)
    assert report.rows_in == AGENT_ROWS
    reason = UNRENDERABLE_AGENT_ROWS.get(family)
    unexpected = {row: why for row, why in report.dropped.items() if reason is None or reason not in why}
    assert not unexpected, f"{family}: {unexpected}"
    assert _agreement(family, tokenizer, sources, dataset, report) > 0


@pytest.mark.parametrize("family", FAMILIES)
def test_labels_agree_with_the_oracle_on_sentencepiece(family, tmp_path):
    """Every family's template on Mistral's SentencePiece vocabulary, in the default run: the chat and
    tool rows, the synthetic agent rows and the recorded sessions (all but ``../shared/traces``, which
    the ``slow`` run adds), kept where the template can render them, agree with the oracle."""
    tokenizer = family_tokenizer(family, training=True, vocabulary="sentencepiece")
    agents = agent_sources(tmp_path / "no-shared-traces", tmp_path)  # the recorded sessions and synthetic rows
    sources = [datasets.Dataset.from_list(CHAT_ROWS), datasets.Dataset.from_list(TOOL_ROWS), *agents]
    dataset, report = prepare_data(sources, tokenizer, tokenize=True, strict=False, return_report=True)
    reason = UNRENDERABLE_AGENT_ROWS.get(family)
    unexpected = {row: why for row, why in report.dropped.items() if reason is None or reason not in why}
    assert not unexpected, f"{family}: {unexpected}"
    assert len(dataset) >= 2, report.summary()
    assert _agreement(family, tokenizer, sources, dataset, report) > 0


def _agreement(family, tokenizer, sources, dataset, report) -> int:
    """Check every kept row against the oracle; return how many tokens the oracle trains in them.

    Teich trains nothing the oracle does not. What only the oracle trains is a documented token
    sitting at the edge of a supervised region, and never between two tokens of the same assistant
    message that both train: a token between two the model writes in one turn is one it writes too
    (GPT-OSS's ``<|start|>assistant`` after its own analysis message).

    On a SentencePiece vocabulary a text segment after a control token starts with a dummy-prefix
    ``▁`` token aligned with the segment's first character (same offsets as the token after it):
    it is read as part of that character (the ``\n`` after ``<|im_end|>`` is ``▁`` + ``<0x0A>``).
    """
    examples = [TrainingExample.from_record(r) for r in load_traces(sources)]
    allowed = DOCUMENTED_DIFFERENCES[family]
    added = tokenizer.added_tokens_decoder
    compared = 0
    for row_id, row in zip(report.kept_row_ids, dataset, strict=True):
        oracle_ids, oracle = _oracle_mask(tokenizer, examples[row_id])
        assert row["input_ids"] == oracle_ids, f"{family} row {row_id}: token ids differ from apply_chat_template"
        ours = np.asarray(row["labels"]) != -100
        assert not (ours & ~oracle).any(), f"{family} row {row_id}: Teich trains tokens the oracle does not"
        offsets = None
        for start, end in _runs(np.flatnonzero(oracle & ~ours)):
            prefixes: set[int] = set()
            if "▁" in tokenizer.convert_ids_to_tokens(oracle_ids[start:end]):
                offsets = offsets or tokenizer(row["text"], add_special_tokens=False, return_offsets_mapping=True)
                prefixes = _dummy_prefixes(tokenizer, oracle_ids, offsets["offset_mapping"], start, end)
            text = [_token_text(tokenizer, added, oracle_ids[at]) for at in range(start, end) if at not in prefixes]
            assert _made_of("".join(text), allowed), f"{family} row {row_id}: undocumented oracle-only tokens {text}"
            touches = (end < len(ours) and ours[end]) or (start > 0 and ours[start - 1])
            assert touches, f"{family} row {row_id}: oracle-only tokens {text} are not at a turn's edge"
            owners = _message_of_token(row["spans"])
            inside = start > 0 and owners.get(start - 1, -1) == owners.get(end, -2)
            assert not inside, f"{family} row {row_id}: oracle-only tokens {text} inside one trained turn"
        compared += int(oracle.sum())
    return compared


def _made_of(text: str, pieces: set[str]) -> bool:
    """Whether ``text`` is a non-empty concatenation of ``pieces``."""
    reached = [True] + [False] * len(text)
    for at in range(len(text)):
        if reached[at]:
            for piece in pieces:
                if piece and text.startswith(piece, at):
                    reached[at + len(piece)] = True
    return bool(text) and reached[-1]


def _token_text(tokenizer, added: dict, token: int) -> str:
    """A token's text: an added token's own content (a SentencePiece decoder would turn the ``▁`` in
    ``<｜tool▁outputs▁end｜>`` into a space), otherwise the token decoded alone."""
    return added[token].content if token in added else tokenizer.decode([token])


def _dummy_prefixes(tokenizer, ids, offsets, start: int, end: int) -> set[int]:
    """The SentencePiece dummy-prefix tokens of the run ``start..end``: a bare ``▁`` with the same
    offsets as the next token of the run (a space in the text is a ``▁`` with offsets of its own)."""
    return {
        at
        for at in range(start, end - 1)
        if tokenizer.convert_ids_to_tokens(ids[at]) == "▁" and tuple(offsets[at]) == tuple(offsets[at + 1])
    }


@pytest.mark.parametrize("vocabulary", [None, "sentencepiece"])
@pytest.mark.parametrize("family", ["qwen3_6", "qwen3", "gptoss", "glm4moe", "deepseekv3", "llama3"])
def test_supervision_starts_where_the_generation_prompt_ends(family, vocabulary):
    """For each assistant turn k: the first supervised token is the first token after
    ``render(messages[:k], add_generation_prompt=True)`` when that rendering is a prefix of the whole
    (on SentencePiece, the dummy-prefix ``▁`` opening the answer's segment, where there is one)."""
    tokenizer = family_tokenizer(family, vocabulary=vocabulary)
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
@pytest.mark.parametrize("vocabulary", [None, "sentencepiece"])
def test_each_turn_ends_on_its_stop_token(family, stops, vocabulary):
    """The last supervised token of every assistant turn is the template's stop token.

    GLM's original template has no end-of-turn token: a turn ends on the next message's role marker,
    so the final turn of a conversation has none in the rendering and ends with the text.
    """
    tokenizer = family_tokenizer(family, vocabulary=vocabulary)
    rows = CHAT_ROWS if family in ("llama3", "gemma3", "phi3") else CHAT_ROWS + TOOL_ROWS[1:]
    dataset = prepare_data(datasets.Dataset.from_list(rows), tokenizer, tokenize=True, strict=False)
    ends = set()
    for row in dataset:
        runs = _runs(np.flatnonzero(np.asarray(row["labels"]) != -100))
        if family == "glm4moe":
            assert runs[-1][1] == len(row["input_ids"])
            runs = runs[:-1]
        ends.update(tokenizer.convert_ids_to_tokens(row["input_ids"][end - 1]) for _, end in runs)
    assert ends and ends <= stops, ends


def test_gptoss_trains_what_the_model_writes_after_its_own_analysis(shared_traces, tmp_path):
    """GPT-OSS does not stop at the ``<|end|>`` of its analysis message: it goes on to write
    ``<|start|>assistant`` and its next message (a call, or the final answer), all trained. The
    ``<|start|>assistant`` left untrained is the generation prompt after a user or tool message,
    which the serving stack writes (``test_supervision_starts_where_the_generation_prompt_ends``)."""
    tokenizer = family_tokenizer("gptoss", training=True)
    dataset = prepare_data(agent_sources(shared_traces, tmp_path), tokenizer, tokenize=True)
    end, start, assistant = tokenizer.convert_tokens_to_ids(["<|end|>", "<|start|>", "assistant"])
    written = 0
    for row in dataset:
        ids, trained = np.asarray(row["input_ids"]), np.asarray(row["labels"]) != -100
        after_own_end = (ids[:-2] == end) & trained[:-2] & (ids[1:-1] == start) & (ids[2:] == assistant)
        for at in np.flatnonzero(after_own_end) + 1:
            assert trained[at] and trained[at + 1], tokenizer.decode(ids[at - 20 : at + 5])
            written += 1
    assert written > 0


def test_deepseekv3_tool_call_turns_after_the_first(shared_traces, tmp_path):
    """DeepSeek-V3 opens only the first tool-call turn of a conversation with ``<｜Assistant｜>``
    and its text; every later one is a bare ``\n<｜tool▁call▁begin｜>...``, trained from there.
    Exactly the rows with text before a later turn's calls are dropped: the template leaves it out."""
    tokenizer = family_tokenizer("deepseekv3", training=True)
    sources = agent_sources(shared_traces, tmp_path)
    dataset, report = prepare_data(sources, tokenizer, tokenize=True, strict=False, return_report=True)
    profile = profile_template(tokenizer)
    left_out = set()
    for row_id, record in enumerate(load_traces(sources)):
        turns = [m for m in template_messages(TrainingExample.from_record(record), profile)[0] if m.get("tool_calls")]
        if any(m["content"].strip() for m in turns[1:]):
            left_out.add(row_id)
    assert set(report.dropped) == left_out and 0 < len(left_out) < AGENT_ROWS / 2
    assert all("leaves out the text before its tool calls" in why for why in report.dropped.values())
    bare = 0
    for row in dataset:
        for span in row["spans"]:
            if span["kind"] == "tool_call" and row["text"].startswith("\n<｜tool▁call▁begin｜>", span["start"]):
                bare += 1
                assert row["labels"][span["token_start"]] != -100
    assert bare > 0
