"""``mask_data`` on real TRL ``SFTTrainer`` objects: labels for a policy, packing, truncation, preview, audit.

Every expected label here is computed from the ``spans`` column's ``token_start``/``token_end``
(a token is trained when it lies in a span of a trained kind), independently of ``teich.training.labels``.
The model is a tiny randomly initialised Qwen2 on CPU with real offline tokenizers, so a training
step is cheap as long as the rows are short (the logits are ``seq_len x vocab``).
"""

from __future__ import annotations

import copy
import json
import math
import re
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from model_families import family_tokenizer
from sft_batches import collated_rows, make_trainer, tiny_model

import teich.training.mask
import teich.training.prepare
import teich.training.render
import teich.training.templates
from teich import (
    MaskAudit,
    TeichError,
    TrainingExample,
    audit,
    load_traces,
    mask_data,
    prepare_data,
    preview,
    preview_sft_example,
    relabel,
)
from teich.traces.conversation import complete_tool_schemas

IGNORE = -100
FLAG_KINDS = {
    "train_on_reasoning": "reasoning",
    "train_on_final_answers": "final_answer",
    "train_on_tools": "tool_call",
    "train_on_user": "user",
    "train_on_system": "system",
    "train_on_developer": "developer",
    "train_on_tool_responses": "tool_response",
}
DEFAULT_FLAGS = {flag: kind in ("reasoning", "final_answer", "tool_call") for flag, kind in FLAG_KINDS.items()}
NON_DEFAULT = {"train_on_reasoning": False, "train_on_tool_responses": True, "train_on_user": True}
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "read_file",
            "description": "Read a file",
            "parameters": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
        },
    }
]


def agent_row(i: int) -> dict[str, Any]:
    """System prompt, task, reasoning + tool call, tool result, reasoning + final answer."""
    call = {"id": f"c{i}", "type": "function", "function": {"name": "read_file", "arguments": {"path": "app.py"}}}
    return {
        "messages": [
            {"role": "system", "content": "You are a coding agent."},
            {"role": "user", "content": f"Fix bug {i} in app.py"},
            {
                "role": "assistant",
                "reasoning_content": f"Read app.py first ({i}).",
                "content": "",
                "tool_calls": [call],
            },
            {"role": "tool", "tool_call_id": f"c{i}", "content": f"def f():\n    return {i}"},
            {"role": "assistant", "reasoning_content": "It returns the wrong value.", "content": f"f returns {i + 1}."},
        ],
        "tools": TOOLS,
    }


# A row without tool calls (fully masked when only tools are trained) and a two-turn row.
PLAIN_ROWS = [
    {"messages": [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4."}]},
    {
        "messages": [
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "reasoning_content": "Greet.", "content": "Hello."},
            {"role": "user", "content": "Bye"},
            {"role": "assistant", "content": "Bye."},
        ]
    },
]


def write_rows(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


# ---------------------------------------------------------------------------------------------
# Fixtures and independent expectations
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tok():
    """A private Qwen3 tokenizer (SFTTrainer sets its pad token)."""
    return copy.deepcopy(family_tokenizer("qwen3"))


@pytest.fixture(scope="module")
def rows_file(tmp_path_factory) -> Path:
    return write_rows(tmp_path_factory.mktemp("rows") / "rows.jsonl", [agent_row(i) for i in range(3)] + PLAIN_ROWS)


@pytest.fixture(scope="module")
def prepared(rows_file, tok):
    return prepare_data(rows_file, tok, tokenize=True)


@pytest.fixture(scope="module")
def model(tok):
    return tiny_model(tok)


def kinds_of(policy: dict[str, bool]) -> set[str]:
    flags = {**DEFAULT_FLAGS, **policy}
    return {kind for flag, kind in FLAG_KINDS.items() if flags[flag]}


def trained_mask(length: int, spans: list[dict[str, Any]], kinds: set[str]) -> list[bool]:
    trained = [False] * length
    for span in spans:
        if span["kind"] in kinds:
            for i in range(span["token_start"], min(span["token_end"], length)):
                trained[i] = True
    return trained


def expected_labels(ids: list[int], spans: list[dict[str, Any]], kinds: set[str], cap: int | None = None) -> list[int]:
    """Labels that train the tokens of ``kinds`` spans, the first ``cap`` of them."""
    trained, seen = trained_mask(len(ids), spans, kinds), 0
    for i, on in enumerate(trained):
        if on:
            seen += 1
            trained[i] = cap is None or seen <= cap
    return [token if on else IGNORE for token, on in zip(ids, trained, strict=True)]


def expected_by_ids(prepared, kinds: set[str], cap: int | None = None) -> dict[tuple[int, ...], list[int]]:
    return {tuple(row["input_ids"]): expected_labels(row["input_ids"], row["spans"], kinds, cap) for row in prepared}


def rows_of(dataset) -> list[tuple[list[int], list[int]]]:
    return [(row["input_ids"], row["labels"]) for row in dataset]


def unpacked(dataset) -> list[tuple[list[int], list[int]]]:
    """A packed dataset's sequences, split by ``seq_lengths``."""
    sequences = []
    for row in dataset:
        start = 0
        for length in row["seq_lengths"]:
            sequences.append((row["input_ids"][start : start + length], row["labels"][start : start + length]))
            start += length
        assert start == len(row["input_ids"])
    return sequences


def as_counter(sequences) -> Counter:
    return Counter((tuple(ids), tuple(labels)) for ids, labels in sequences)


def assert_rows_match(sequences, expected: dict[tuple[int, ...], list[int]], *, prefix: bool = False) -> None:
    """Each (ids, labels) is an expected row (or, with ``prefix``, the start of one) with its labels."""
    for ids, labels in sequences:
        matches = [full for full in expected if full[: len(ids)] == tuple(ids)] if prefix else [tuple(ids)]
        assert len(matches) == 1 and matches[0] in expected
        assert labels == expected[matches[0]][: len(ids)]


def audit_of(prepared, kinds: set[str], cap: int | None = None) -> MaskAudit:
    """The audit mask_data should report, from the spans alone."""
    report = MaskAudit()
    for row in prepared:
        labels = expected_labels(row["input_ids"], row["spans"], kinds, cap)
        trained = [label != IGNORE for label in labels]
        report.rows += 1
        report.tokens += len(labels)
        report.supervised += sum(trained)
        report.fully_masked_rows += not any(trained)
        report.capped_rows += cap is not None and sum(trained_mask(len(labels), row["spans"], kinds)) > cap
        for span in row["spans"]:
            if span["kind"] in kinds:
                report.by_kind[span["kind"]] += sum(trained[span["token_start"] : span["token_end"]])
    return report


def assert_audit(actual: MaskAudit, expected: MaskAudit) -> None:
    assert (actual.rows, actual.tokens, actual.supervised) == (expected.rows, expected.tokens, expected.supervised)
    assert (actual.fully_masked_rows, actual.capped_rows) == (expected.fully_masked_rows, expected.capped_rows)
    assert +actual.by_kind == +expected.by_kind


# ---------------------------------------------------------------------------------------------
# 1. End to end: prepare_data -> SFTTrainer -> mask_data -> collated batch -> one training step
# ---------------------------------------------------------------------------------------------


def test_prepared_rows_cover_every_kind(prepared):
    kinds = {span["kind"] for row in prepared for span in row["spans"]}
    assert kinds == {"system", "user", "reasoning", "tool_call", "tool_response", "final_answer"}


@pytest.mark.parametrize("policy", [{}, NON_DEFAULT], ids=["default", "non_default"])
def test_collated_labels_and_train_step(prepared, tok, model, tmp_path, policy):
    trainer = make_trainer(model, tok, prepared, tmp_path)
    assert mask_data(trainer, audit=False, **policy) is trainer
    expected = expected_by_ids(prepared, kinds_of(policy))
    if not policy:  # prepare_data's labels are the default policy's
        assert expected == {tuple(row["input_ids"]): row["labels"] for row in prepared}
    assert_rows_match(rows_of(trainer.train_dataset), expected)
    sequences = collated_rows(trainer)
    assert len(sequences) == len(prepared)
    assert_rows_match(sequences, expected)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(trainer.train_dataset))])
    for i, row in enumerate(trainer.train_dataset):
        n = len(row["input_ids"])
        assert batch["labels"][i, :n].tolist() == expected[tuple(row["input_ids"])]
        assert (batch["labels"][i, n:] == IGNORE).all()
    output = trainer.train()
    assert trainer.state.global_step == 1 and math.isfinite(output.training_loss)
    assert_audit(audit(trainer.train_dataset), audit_of(prepared, kinds_of(policy), cap=512))
    row = trainer.train_dataset[0]  # the preview survives training
    shown = preview_sft_example(tok, row["input_ids"], row["labels"], color=False)
    assert preview(trainer.train_dataset, 0, tok, color=False) == shown and "[[" in shown


def test_real_traces_end_to_end(shared_traces, tok, model, tmp_path):
    """Short real traces plus a long one the trainer truncates (keep_start) inside its first tool call."""
    files = [shared_traces / name for name in ("cursor.jsonl", "openclaw.jsonl", "claude_code.jsonl")]
    rows = [TrainingExample.from_record(r) for r in load_traces(files)]
    for row in rows:  # small schemas inferred from the calls: Claude Code's own tool schemas are ~16k tokens
        row.tools = complete_tool_schemas([], row.messages)
    real = prepare_data([r.to_openai() for r in rows], tok, tokenize=True)
    assert max(len(ids) for ids in real["input_ids"]) > 400 > min(len(ids) for ids in real["input_ids"])
    trainer = make_trainer(model, tok, real, tmp_path, max_length=400)
    mask_data(trainer, audit=False, train_on_reasoning=False)
    expected = expected_by_ids(real, kinds_of({"train_on_reasoning": False}))
    sequences = collated_rows(trainer)
    assert sorted(len(ids) for ids, _ in sequences) == sorted(min(len(ids), 400) for ids in real["input_ids"])
    assert_rows_match(sequences, expected, prefix=True)
    assert math.isfinite(trainer.train().training_loss)


# ---------------------------------------------------------------------------------------------
# 2. Packing trains on exactly the tokens it would train on unpacked
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("policy", [{}, NON_DEFAULT], ids=["default", "non_default"])
def test_packing_trains_the_same_tokens(prepared, tok, model, tmp_path, policy):
    """The policy is applied before the trainer packs (TRL keeps ``labels``, drops ``spans``);
    ``mask_data`` with that same policy keeps the packed labels."""
    plain = mask_data(make_trainer(model, tok, prepared, tmp_path / "plain"), audit=False, **policy)
    labelled = relabel(prepared, **policy)
    packed = mask_data(make_trainer(model, tok, labelled, tmp_path / "packed", packing=True), audit=False, **policy)
    assert "seq_lengths" in packed.train_dataset.column_names
    assert len(packed.train_dataset) < len(prepared)  # rows were really packed together
    sequences = unpacked(packed.train_dataset)
    assert as_counter(sequences) == as_counter(rows_of(plain.train_dataset))
    expected = expected_by_ids(prepared, kinds_of(policy))
    assert_rows_match(sequences, expected)
    packed_report, plain_report = audit(packed.train_dataset), audit(plain.train_dataset)
    # Packed rows carry no spans, so their audit counts sequences and tokens but no kinds.
    assert_audit(packed_report, MaskAudit(**{**vars(plain_report), "by_kind": Counter()}))
    assert_audit(audit(labelled), plain_report)
    # The collator flattens packed rows (padding-free) and masks each sequence's first token, which no
    # sequence trains on anyway (a label at position 0 has no preceding token to predict it).
    for row in packed.train_dataset:
        batch = packed.data_collator([row])
        flat = [label for ids, _ in unpacked([row]) for label in [IGNORE, *expected[tuple(ids)][1:]]]
        assert batch["input_ids"][0].tolist() == row["input_ids"]
        assert batch["labels"][0].tolist() == flat == row["labels"]
    collated = collated_rows(packed)
    assert as_counter(collated) == as_counter(sequences)
    if not policy:
        assert math.isfinite(packed.train().training_loss)
        row = packed.train_dataset[0]
        shown = preview(packed.train_dataset, 0, tok, color=False)
        assert shown == preview_sft_example(tok, row["input_ids"], row["labels"], color=False)
        assert shown.count("[[") == len(trained_runs(tok, row["input_ids"], row["labels"])) > 0


def test_packing_keeps_the_prepared_labels_of_sequences_it_cuts(shared_traces, tok, model, tmp_path):
    """bfd packing cuts a long sequence at max_length: its labels are the prepared ones, cut; mask_data
    keeps them for the prepared policy and says why it cannot apply another."""
    real = prepare_data(shared_traces / "claude_code.jsonl", tok, tokenize=True)
    assert len(real[0]["input_ids"]) > 256
    trainer = mask_data(make_trainer(model, tok, real, tmp_path, packing=True, max_length=256), audit=False)
    ((ids, labels),) = unpacked(trainer.train_dataset)
    assert (ids, labels) == (real[0]["input_ids"][:256], real[0]["labels"][:256])
    message = (
        r"the trainer packed the train rows and dropped their spans, so mask_data cannot relabel them: "
        r"their labels were prepared training final_answer, reasoning, tool_call, not training final_answer, "
        r"tool_call as asked; pass the policy to prepare_data\(\.\.\., tokenize=True\) or call "
        r"teich\.relabel\(dataset, \.\.\.\) before building the trainer"
    )
    with pytest.raises(TeichError, match=f"^{message}$"):
        mask_data(trainer, audit=False, train_on_reasoning=False)
    with pytest.raises(TeichError, match="not training final_answer, reasoning, tool_call, at most 5 tokens a row"):
        mask_data(trainer, audit=False, max_supervised_tokens=5)


# ---------------------------------------------------------------------------------------------
# 3. Policy flags, the supervised-token cap, fully masked rows, the audit
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("flag", sorted(FLAG_KINDS))
def test_each_flag_changes_exactly_its_kind(prepared, tok, model, tmp_path, flag):
    policy = {flag: not DEFAULT_FLAGS[flag]}
    kinds, kind = kinds_of(policy), FLAG_KINDS[flag]
    trainer = make_trainer(model, tok, prepared, tmp_path)
    mask_data(trainer, audit=False, **policy)
    expected = expected_by_ids(prepared, kinds)
    assert_rows_match(rows_of(trainer.train_dataset), expected)
    for row in prepared:
        ids, spans = row["input_ids"], row["spans"]
        labels = expected[tuple(ids)]
        changed = {i for i, (a, b) in enumerate(zip(row["labels"], labels, strict=True)) if a != b}
        # Exactly the tokens of this kind's spans that no other trained kind also covers.
        own = {i for i, on in enumerate(trained_mask(len(ids), spans, {kind})) if on}
        others = {i for i, on in enumerate(trained_mask(len(ids), spans, kinds - {kind})) if on}
        assert changed == own - others
        assert all((labels[i] != IGNORE) is not DEFAULT_FLAGS[flag] for i in changed)
    assert_audit(audit(trainer.train_dataset), audit_of(prepared, kinds, cap=512))


def test_developer_flag(tmp_path, model):
    """Llama 3 renders a developer header, so developer spans exist there (Qwen3 renders them as system)."""
    llama = copy.deepcopy(family_tokenizer("llama3"))
    rows = prepare_data(write_rows(tmp_path / "dev.jsonl", PLAIN_ROWS), llama, tokenize=True)
    assert "developer" in {span["kind"] for row in rows for span in row["spans"]}
    for on in (False, True):
        trainer = mask_data(make_trainer(model, llama, rows, tmp_path), audit=False, train_on_developer=on)
        kinds = kinds_of({"train_on_developer": on})
        assert_rows_match(rows_of(trainer.train_dataset), expected_by_ids(rows, kinds))
        assert audit(trainer.train_dataset).by_kind["developer"] == (3 if on else 0)  # "Be brief." is three tokens


@pytest.mark.parametrize("policy", [{}, NON_DEFAULT], ids=["default", "non_default"])
def test_max_supervised_tokens_keeps_the_first(prepared, tok, model, tmp_path, policy):
    kinds = kinds_of(policy)
    supervisable = sorted(sum(trained_mask(len(r["input_ids"]), r["spans"], kinds)) for r in prepared)
    for cap in (1, 7, supervisable[len(supervisable) // 2], supervisable[-1]):
        trainer = make_trainer(model, tok, prepared, tmp_path)
        mask_data(trainer, audit=False, max_supervised_tokens=cap, **policy)
        assert_rows_match(rows_of(trainer.train_dataset), expected_by_ids(prepared, kinds, cap))
        assert_audit(audit(trainer.train_dataset), audit_of(prepared, kinds, cap))
        assert audit(trainer.train_dataset).capped_rows == sum(n > cap for n in supervisable)
        assert all(sum(label != IGNORE for label in row["labels"]) <= cap for row in trainer.train_dataset)
    assert audit(trainer.train_dataset).capped_rows == 0  # a cap equal to the largest count caps nothing


def test_default_cap_is_the_trainers_max_length(prepared, tok):
    """SFTTrainer truncates rows to max_length, so the default cap only bites on a trainer that does not."""
    for max_length in (7, None):
        trainer = SimpleNamespace(train_dataset=prepared, args=SimpleNamespace(max_length=max_length))
        mask_data(trainer, tokenizer=tok, audit=False)
        assert_rows_match(rows_of(trainer.train_dataset), expected_by_ids(prepared, kinds_of({}), max_length))
        assert_audit(audit(trainer.train_dataset), audit_of(prepared, kinds_of({}), max_length))


def test_fully_masked_rows(prepared, tok, model, tmp_path, capsys):
    off = dict.fromkeys(FLAG_KINDS, False)
    for policy in (off, {**off, "train_on_developer": True}):  # Qwen3 rows have no developer span
        with pytest.raises(TeichError, match="fully masked"):
            mask_data(make_trainer(model, tok, prepared, tmp_path), **policy)
    # Only tool calls: the rows without a tool call are fully masked, the others are trained.
    trainer = mask_data(make_trainer(model, tok, prepared, tmp_path), **{**off, "train_on_tools": True})
    report = audit(trainer.train_dataset)
    assert report.fully_masked_rows == len(PLAIN_ROWS) and report.rows == len(prepared)
    assert set(+report.by_kind) == {"tool_call"}
    assert_audit(report, audit_of(prepared, {"tool_call"}, cap=512))
    assert f"teich mask_data: {report.summary()}" in capsys.readouterr().err


def test_audit_numbers(prepared, tok, model, tmp_path):
    trainer = mask_data(make_trainer(model, tok, prepared, tmp_path), audit=False)
    report = audit(trainer.train_dataset)
    assert report.rows == len(prepared) == 5
    assert report.tokens == sum(len(ids) for ids in prepared["input_ids"])
    assert report.supervised == sum(label != IGNORE for labels in prepared["labels"] for label in labels)
    assert set(+report.by_kind) == {"reasoning", "tool_call", "final_answer"}
    assert report.fully_masked_rows == report.capped_rows == 0
    # A token shared by two spans (a BPE merge across a boundary) counts for both kinds.
    assert sum(report.by_kind.values()) >= report.supervised


# ---------------------------------------------------------------------------------------------
# 4. No rendering and no tokenizing again; the prepare_data(tokenize=False) path
# ---------------------------------------------------------------------------------------------


def _fail(*args: Any, **kwargs: Any) -> None:
    raise AssertionError("mask_data must not render or tokenize again here")


class _Failing:
    def __getattr__(self, name: str) -> Any:
        return _fail


class _Counting:
    """Delegates to a ``tokenizers.Tokenizer``, counting ``encode_batch`` calls."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.calls = inner, 0

    def encode_batch(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return self.inner.encode_batch(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def text_dataset(path: Path, tokenizer: Any):
    """``prepare_data(tokenize=False)``, which warns that it writes no labels."""
    with pytest.warns(UserWarning, match="writes no labels, so TRL's SFTTrainer would train on every token"):
        return prepare_data(path, tokenizer, tokenize=False)


def forbid_rendering(monkeypatch) -> None:
    for module in (teich.training.templates, teich.training.render, teich.training.prepare):
        monkeypatch.setattr(module, "render", _fail)
    monkeypatch.setattr(teich.training.prepare, "encode", _fail)


@pytest.mark.parametrize("packing", [False, True], ids=["unpacked", "packed"])
def test_no_tokenizing_or_rendering_again(prepared, tok, model, tmp_path, monkeypatch, packing):
    """Unpacked rows are relabelled from their spans; packed ones were relabelled before the trainer."""
    dataset = relabel(prepared, **NON_DEFAULT) if packing else prepared
    trainer = make_trainer(model, tok, dataset, tmp_path, packing=packing)
    forbid_rendering(monkeypatch)
    monkeypatch.setattr(tok, "_tokenizer", _Failing())
    for name in ("__call__", "encode", "apply_chat_template"):
        monkeypatch.setattr(type(tok), name, _fail)
    monkeypatch.setattr(teich.training.mask, "token_spans", _fail)  # token positions come from the spans column
    mask_data(trainer, audit=False, **NON_DEFAULT)
    if not packing:  # relabelling needs neither the tokenizer nor the trainer
        assert_rows_match(rows_of(relabel(prepared, **NON_DEFAULT)), expected_by_ids(prepared, kinds_of(NON_DEFAULT)))
    sequences = unpacked(trainer.train_dataset) if packing else rows_of(trainer.train_dataset)
    assert_rows_match(sequences, expected_by_ids(prepared, kinds_of(NON_DEFAULT)))


@pytest.mark.parametrize("policy", [{}, NON_DEFAULT], ids=["default", "non_default"])
def test_text_dataset_is_tokenized_once(rows_file, prepared, tok, model, tmp_path, monkeypatch, policy):
    """SFTTrainer tokenizes ``text`` itself and appends the EOS token (Qwen's text ends on "<|im_end|>\\n");
    mask_data places the spans with one batched tokenization and never trains the appended EOS."""
    texts = text_dataset(rows_file, tok)
    assert texts.column_names == ["text", "spans"]
    trainer = make_trainer(model, tok, texts, tmp_path)
    forbid_rendering(monkeypatch)
    counting = _Counting(tok._tokenizer)
    monkeypatch.setattr(tok, "_tokenizer", counting)
    mask_data(trainer, audit=False, **policy)
    assert counting.calls == 1
    monkeypatch.undo()
    expected = expected_by_ids(prepared, kinds_of(policy))
    for ids, labels in rows_of(trainer.train_dataset):
        assert ids[-1] == tok.eos_token_id and labels[-1] == IGNORE
        assert labels[:-1] == expected[tuple(ids[:-1])]
    assert_rows_match(collated_rows(trainer), {k + (tok.eos_token_id,): v + [IGNORE] for k, v in expected.items()})
    report, reference = audit(trainer.train_dataset), audit_of(prepared, kinds_of(policy), cap=512)
    assert report.tokens == reference.tokens + len(prepared)
    assert report.supervised == reference.supervised and +report.by_kind == +reference.by_kind


def test_text_dataset_cannot_be_packed(rows_file, tok, model, tmp_path):
    """TRL labels a packed text dataset itself (every token) and drops its spans: mask_data says so."""
    trainer = make_trainer(model, tok, text_dataset(rows_file, tok), tmp_path, packing=True)
    message = "packed the train rows and dropped their spans, so mask_data cannot relabel them, and their labels"
    with pytest.raises(TeichError, match=f"{message} record no teich policy to keep"):
        mask_data(trainer, audit=False)


def test_text_dataset_with_a_bos_adding_tokenizer(tmp_path, model):
    """Llama 3 adds a BOS token when called, and its template already writes one: SFTTrainer's ids start
    with two BOS tokens, which are not the prepared text's tokens, and mask_data says so."""
    llama = copy.deepcopy(family_tokenizer("llama3"))
    texts = text_dataset(write_rows(tmp_path / "rows.jsonl", PLAIN_ROWS), llama)
    trainer = make_trainer(model, llama, texts, tmp_path)
    assert trainer.train_dataset[0]["input_ids"][:2] == [llama.bos_token_id] * 2
    with pytest.raises(TeichError, match="not the tokens of the prepared text"):
        mask_data(trainer, audit=False)


# ---------------------------------------------------------------------------------------------
# 5. Preview
# ---------------------------------------------------------------------------------------------


def trained_runs(tok, ids: list[int], labels: list[int]) -> list[str]:
    runs, current = [], []
    for token, label in zip(ids, labels, strict=True):
        if label != IGNORE:
            current.append(token)
        elif current:
            runs.append(tok.decode(current))
            current = []
    return runs + ([tok.decode(current)] if current else [])


@pytest.mark.parametrize("policy", [{}, NON_DEFAULT], ids=["default", "non_default"])
def test_preview_marks_exactly_the_trained_text(prepared, tok, model, tmp_path, policy):
    trainer = mask_data(make_trainer(model, tok, prepared, tmp_path), audit=False, **policy)
    for index, row in enumerate(trainer.train_dataset):
        ids, labels = row["input_ids"], row["labels"]
        plain = preview_sft_example(tok, ids, labels, color=False)
        assert "[[" not in tok.decode(ids) and "\033" not in plain
        assert plain.replace("[[", "").replace("]]", "") == tok.decode(ids)
        assert re.findall(r"\[\[(.*?)\]\]", plain, flags=re.DOTALL) == trained_runs(tok, ids, labels)
        colored = preview_sft_example(tok, ids, labels, color=True)
        assert "\033[32m" in colored and "\033[2m" in colored
        assert re.sub(r"\033\[\d+m", "", colored) == tok.decode(ids)
        green = re.findall(r"\033\[32m(.*?)\033\[0m", colored, flags=re.DOTALL)
        assert green == trained_runs(tok, ids, labels)
        assert preview(trainer.train_dataset, index, tok, color=False) == plain


# ---------------------------------------------------------------------------------------------
# 6. Rows the trainer truncates
# ---------------------------------------------------------------------------------------------

CUT = 180  # inside the first tool call of the agent rows, past the plain rows' end


@pytest.mark.parametrize("policy", [{}, NON_DEFAULT], ids=["default", "non_default"])
def test_truncation_keep_start_clips_the_labels(prepared, tok, model, tmp_path, policy):
    lengths = sorted(len(ids) for ids in prepared["input_ids"])
    assert lengths[0] < CUT < lengths[-1]
    trainer = make_trainer(model, tok, prepared, tmp_path, max_length=CUT)
    mask_data(trainer, audit=False, **policy)
    expected = expected_by_ids(prepared, kinds_of(policy))
    assert len(trainer.train_dataset) == len(prepared)
    assert max(len(row["input_ids"]) for row in trainer.train_dataset) == CUT
    assert_rows_match(rows_of(trainer.train_dataset), expected, prefix=True)
    assert_rows_match(collated_rows(trainer), expected, prefix=True)
    # Labels are those of the whole row, cut: never shifted, never re-capped below the cut.
    report = audit(trainer.train_dataset)
    assert report.tokens == sum(min(n, CUT) for n in lengths) and report.capped_rows == 0


def test_truncation_keep_start_of_a_text_dataset(rows_file, prepared, tok, model, tmp_path):
    trainer = make_trainer(model, tok, text_dataset(rows_file, tok), tmp_path, max_length=CUT)
    mask_data(trainer, audit=False, **NON_DEFAULT)
    assert max(len(row["input_ids"]) for row in trainer.train_dataset) == CUT
    expected = expected_by_ids(prepared, kinds_of(NON_DEFAULT))
    expected = {ids + (tok.eos_token_id,): labels + [IGNORE] for ids, labels in expected.items()}
    assert_rows_match(rows_of(trainer.train_dataset), expected, prefix=True)


def test_truncation_keep_end_is_placed_back(rows_file, prepared, tok, model, tmp_path):
    """keep_end cuts the start of a row, where the prepared token positions count from: mask_data places
    the cut row back in the whole one (its num_tokens, or the tokenized text), and refuses without them."""
    expected = expected_by_ids(prepared, kinds_of(NON_DEFAULT))
    with_eos = {ids + (tok.eos_token_id,): labels + [IGNORE] for ids, labels in expected.items()}
    for dataset, whole in ((prepared, expected), (text_dataset(rows_file, tok), with_eos)):
        trainer = make_trainer(model, tok, dataset, tmp_path, max_length=CUT, truncation_mode="keep_end")
        assert max(len(row["input_ids"]) for row in trainer.train_dataset) == CUT
        mask_data(trainer, audit=False, **NON_DEFAULT)
        assert len(trainer.train_dataset) == len(prepared)
        for ids, labels in rows_of(trainer.train_dataset):
            (full,) = [full for full in whole if full[len(full) - len(ids) :] == tuple(ids)]
            assert labels == whole[full][len(full) - len(ids) :]
        report = audit(trainer.train_dataset)  # the spans now count from the cut rows' first token
        assert_audit(report, audit(trainer.train_dataset, **NON_DEFAULT, max_supervised_tokens=CUT))
        trained = [label != IGNORE for _, labels in rows_of(trainer.train_dataset) for label in labels]
        assert report.supervised == sum(trained) > 0
    trainer = make_trainer(
        model, tok, prepared.remove_columns("num_tokens"), tmp_path, max_length=CUT, truncation_mode="keep_end"
    )
    with pytest.raises(TeichError, match="may have cut the start of this row .* has no num_tokens column"):
        mask_data(trainer, audit=False)
    # Rows keep_end did not cut are labelled as usual.
    trainer = make_trainer(model, tok, prepared, tmp_path, truncation_mode="keep_end")
    mask_data(trainer, audit=False, **NON_DEFAULT)
    assert_rows_match(rows_of(trainer.train_dataset), expected)


def test_a_second_policy_can_be_applied(prepared, tok, model, tmp_path):
    """mask_data keeps the spans, so another policy can replace the first on the same trainer."""
    trainer = make_trainer(model, tok, prepared, tmp_path)
    mask_data(trainer, train_on_reasoning=False, audit=False)
    mask_data(trainer, **NON_DEFAULT, audit=False)
    assert_rows_match(rows_of(trainer.train_dataset), expected_by_ids(prepared, kinds_of(NON_DEFAULT)))
