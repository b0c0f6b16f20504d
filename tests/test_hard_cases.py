"""Hard cases for ``prepare_data`` on real tokenizers.

Every prepared row is checked against the template itself: its text is exactly
``tokenizer.apply_chat_template`` of the adapted messages and its ``input_ids`` exactly the
template's own tokenization. On top of that each test asserts concrete text and token facts:
which tokens each kind of span trains, what the report says, which rows are dropped and why.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import datasets
import numpy as np
import pytest
from model_families import family_tokenizer

import teich
import teich.training.prepare
from teich import (
    TeichError,
    TrainingExample,
    audit,
    mask_data,
    prepare_data,
    relabel,
    row_fits_context,
    validate_tool_calls,
)
from teich.schema import text_of
from teich.traces.sources import LoadReport, iter_examples
from teich.training.labels import DEFAULT_KINDS, IGNORE_INDEX, TokenSpans, span_mask
from teich.training.render import template_messages
from teich.training.spans import CONTEXT_KINDS, KINDS
from teich.training.templates import profile_template

# ---------------------------------------------------------------------------------------------
# helpers


def _write(tmp_path: Path, rows: list[dict[str, Any]], name: str = "rows.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return path


def _template_ids(tok: Any, messages: list[dict[str, Any]], tools: Any, kwargs: dict[str, Any]) -> list[int]:
    ids = tok.apply_chat_template(messages, tools=tools, tokenize=True, **kwargs)
    return list(ids if isinstance(ids, list) else ids["input_ids"])


def _adapted(source: Any, tok: Any, kwargs: dict[str, Any] | None = None) -> list[tuple[Any, list[dict[str, Any]]]]:
    """Each row of ``source`` (loaded, or a list of examples) with its messages as ``prepare_data``
    hands them to the template."""
    profile = profile_template(tok, kwargs or {})
    examples = source if isinstance(source, list) and isinstance(source[0], TrainingExample) else None
    examples = examples or iter_examples(source, LoadReport())
    return [(example, template_messages(example, profile)[0]) for example in examples]


def _prepare(source: Any, tok: Any, expected: Any = None, **kwargs: Any) -> tuple[datasets.Dataset, Any]:
    """``prepare_data(tokenize=True)`` whose every kept row is checked against the template itself:
    the template's rendering of the adapted messages of the rows of ``expected`` (default: ``source``)."""
    dataset, report = prepare_data(source, tok, tokenize=True, return_report=True, **kwargs)
    template_kwargs = kwargs.get("chat_template_kwargs") or {}
    if not report.trimmed:
        adapted = _adapted(source if expected is None else expected, tok, template_kwargs)
        assert report.rows_in == len(adapted)
        for row, row_id in zip(dataset, report.kept_row_ids, strict=True):
            example, messages = adapted[row_id]
            tools = example.tools or None
            assert row["text"] == tok.apply_chat_template(messages, tools=tools, tokenize=False, **template_kwargs)
            assert row["input_ids"] == _template_ids(tok, messages, tools, template_kwargs)
    return dataset, report


def _token_spans(row: dict[str, Any]) -> TokenSpans:
    records = row["spans"]
    return TokenSpans(tuple(r["kind"] for r in records), tuple((r["token_start"], r["token_end"]) for r in records))


def labels_for(input_ids: list[int], spans: TokenSpans, kinds: frozenset[str] | set[str]) -> list[int]:
    return np.where(span_mask(len(input_ids), spans, kinds), input_ids, IGNORE_INDEX).tolist()


def _trained(row: dict[str, Any], kinds: frozenset[str] | set[str]) -> set[int]:
    labels = labels_for(row["input_ids"], _token_spans(row), kinds)
    return {i for i, label in enumerate(labels) if label != IGNORE_INDEX}


def _positions(row: dict[str, Any], kinds: set[str] | frozenset[str]) -> set[int]:
    return {i for r in row["spans"] if r["kind"] in kinds for i in range(r["token_start"], r["token_end"])}


def _spans(row: dict[str, Any], kind: str, message: int | None = None) -> list[str]:
    """The text of each span of ``kind`` (of one message)."""
    return [
        row["text"][r["start"] : r["end"]]
        for r in row["spans"]
        if r["kind"] == kind and (message is None or r["message"] == message)
    ]


def _decoded(tok: Any, row: dict[str, Any], kind: str, message: int | None = None) -> list[str]:
    """The decoded tokens of each span of ``kind`` (of one message)."""
    return [
        tok.decode(row["input_ids"][r["token_start"] : r["token_end"]])
        for r in row["spans"]
        if r["kind"] == kind and (message is None or r["message"] == message)
    ]


def _tool(name: str, properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    parameters = {"type": "object", "properties": properties, "required": required}
    return {"type": "function", "function": {"name": name, "description": f"{name} tool", "parameters": parameters}}


def _call(name: str, arguments: Any, call_id: str = "call_1") -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def _calling(*calls: dict[str, Any], content: str = "", **fields: Any) -> dict[str, Any]:
    return {"role": "assistant", "content": content, "tool_calls": list(calls), **fields}


def _user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def _answer(text: str, reasoning: str | None = None) -> dict[str, Any]:
    message = {"role": "assistant", "content": text}
    return message | {"reasoning_content": reasoning} if reasoning else message


def _result(text: str, call_id: str = "call_1") -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call_id, "content": text}


READ = _tool("read_file", {"path": {"type": "string"}}, ["path"])
RUN = _tool("run", {"cmd": {"type": "string"}}, ["cmd"])
IM_END = "<|im_end|>"

# ---------------------------------------------------------------------------------------------
# 1. fidelity and span sanity on the real traces


@pytest.mark.parametrize("family", ["qwen3_6", "qwen2_5", "gptoss", "glm4moe"])
def test_shared_traces_render_and_tokenize_exactly_as_the_template(shared_traces: Path, family: str) -> None:
    tok = family_tokenizer(family)
    files = sorted(shared_traces.glob("*.jsonl"))
    dataset, report = _prepare(files, tok, strict=False)
    assert len(dataset) >= 5 and report.rows_in == len(files)
    profile = profile_template(tok, {})
    adapted = _adapted(files, tok)
    for row, row_id in zip(dataset, report.kept_row_ids, strict=True):
        messages = adapted[row_id][1]
        assert row["labels"] == labels_for(row["input_ids"], _token_spans(row), DEFAULT_KINDS)
        previous_end = 0
        for record in row["spans"]:
            assert previous_end <= record["start"] < record["end"] <= len(row["text"])
            previous_end = record["end"]
            _assert_span_holds_its_message(row["text"][record["start"] : record["end"]], record, messages, profile)
        assistant_turns = {
            r["message"] for r in row["spans"] if r["kind"] in ("reasoning", "final_answer", "tool_call")
        }
        assert assistant_turns == {i for i, m in enumerate(messages) if m["role"] == "assistant"}


def _assert_span_holds_its_message(text: str, record: dict[str, Any], messages: list[dict[str, Any]], profile) -> None:
    message, kind = messages[record["message"]], record["kind"]
    content = text_of(message.get("content"))
    if kind in CONTEXT_KINDS:
        escaped = {json.dumps(c, ensure_ascii=a)[1:-1] for c in (content, content.strip()) for a in (True, False)}
        assert text.strip() == content.strip() or text in escaped, (kind, text[:80], content[:80])
    elif kind == "reasoning":
        assert message[profile.reasoning_key].strip() in text
    elif kind == "final_answer":
        assert content.strip() in text
    else:
        names = [call["function"]["name"] for call in message["tool_calls"]]
        assert all(name in text for name in names), (names, text[:80])


# ---------------------------------------------------------------------------------------------
# 2. typed spans: each kind's flag removes exactly its own tokens

TYPED_ROW = {
    "tools": [RUN],
    "messages": [
        {"role": "system", "content": "You are a careful agent."},
        _user("List the files."),
        _calling(_call("run", {"cmd": "ls -la"}), content="Listing now.", reasoning_content="I should call ls first."),
        _result("a.py\nb.py"),
        _answer("There are two files: a.py and b.py.", reasoning="The output shows two Python files."),
    ],
}


@pytest.mark.parametrize("family", ["qwen3_6", "glm4moe", "qwen3"])
def test_each_assistant_kind_removes_exactly_its_tokens(tmp_path: Path, family: str) -> None:
    tok = family_tokenizer(family)
    dataset, _ = _prepare(_write(tmp_path, [TYPED_ROW]), tok)
    row = dataset[0]
    everything = _trained(row, DEFAULT_KINDS)
    assert {i for i, label in enumerate(row["labels"]) if label != IGNORE_INDEX} == everything
    for kind in ("reasoning", "final_answer", "tool_call"):
        others = DEFAULT_KINDS - {kind}
        removed = everything - _trained(row, others)
        assert removed, kind
        assert removed == _positions(row, {kind}) - _positions(row, others), kind
        assert _trained(row, others) <= everything
    reasoning = _decoded(tok, row, "reasoning")
    assert len(reasoning) == 2
    assert "I should call ls first." in reasoning[0] and "The output shows two Python files." in reasoning[1]
    answers = _decoded(tok, row, "final_answer")
    assert "Listing now." in answers[0] and "There are two files: a.py and b.py." in answers[1]
    (call,) = _decoded(tok, row, "tool_call")
    assert "run" in call and "ls -la" in call
    assert _spans(row, "tool_response") == ["a.py\nb.py"]
    assert _spans(row, "user") == ["List the files."]
    # context is never trained by default
    assert not everything & _positions(row, set(CONTEXT_KINDS))


def test_qwen3_6_kind_texts_and_mask_data_policy(tmp_path: Path) -> None:
    tok = family_tokenizer("qwen3_6")
    dataset, _ = _prepare(_write(tmp_path, [TYPED_ROW]), tok)
    row = dataset[0]
    assert _decoded(tok, row, "reasoning") == [
        "I should call ls first.\n</think>\n\n",
        "The output shows two Python files.\n</think>\n\n",
    ]
    assert _decoded(tok, row, "final_answer") == ["Listing now.", "There are two files: a.py and b.py.<|im_end|>"]
    assert _decoded(tok, row, "tool_call") == [
        "\n\n<tool_call>\n<function=run>\n<parameter=cmd>\nls -la\n</parameter>\n</function>\n</tool_call><|im_end|>"
    ]
    trainer = SimpleNamespace(
        train_dataset=dataset, eval_dataset=None, args=SimpleNamespace(max_length=100_000), processing_class=tok
    )
    mask_data(trainer, train_on_reasoning=False, audit=False)
    labels = trainer.train_dataset[0]["labels"]
    expected = labels_for(row["input_ids"], _token_spans(row), DEFAULT_KINDS - {"reasoning"})
    assert labels == expected
    trained_text = tok.decode([t for t, label in zip(row["input_ids"], labels, strict=True) if label != IGNORE_INDEX])
    assert "I should call ls first." not in trained_text and "Python files" not in trained_text
    assert "There are two files" in trained_text and "ls -la" in trained_text
    report = audit(trainer.train_dataset)
    assert report.by_kind["reasoning"] == 0 and report.by_kind["tool_call"] > 0


# ---------------------------------------------------------------------------------------------
# 3. hard cases


def test_leading_newline_merges_with_the_header_and_is_supervised(tmp_path: Path) -> None:
    # Qwen2.5 keeps content verbatim: "assistant\n" + "\nhello" tokenizes "\n\n" as one token.
    tok = family_tokenizer("qwen2_5")
    rows = [{"messages": [_user("\nhi"), _answer("\nhello there")]}]
    dataset, _ = _prepare(_write(tmp_path, rows), tok)
    row = dataset[0]
    assert "<|im_start|>assistant\n\nhello there<|im_end|>" in row["text"]
    (answer,) = [r for r in row["spans"] if r["kind"] == "final_answer"]
    merged = answer["token_start"]
    assert tok.decode([row["input_ids"][merged]]) == "\n\n"  # header "\n" + content "\n" in one token
    assert row["labels"][merged] == row["input_ids"][merged]
    assert tok.decode(row["input_ids"][merged - 1 : merged]) == "assistant"
    assert row["labels"][merged - 1] == IGNORE_INDEX
    # the same merge at the start of a user turn belongs to the user span
    (user,) = [r for r in row["spans"] if r["kind"] == "user"]
    assert tok.decode(row["input_ids"][user["token_start"] : user["token_end"]]) == "\n\nhi"
    assert user["token_start"] in _trained(row, {"user"})


ARGUMENTS = {"path": "/tmp/ünï cödé/日本語.txt", "text": "say \"hi\" <b>bold</b> & 'x' — 😀 a<b && c>d"}


@pytest.mark.parametrize("family", ["qwen3_6", "qwen2_5", "glm4moe"])
def test_tool_arguments_with_non_ascii_quotes_and_markup(tmp_path: Path, family: str) -> None:
    tok = family_tokenizer(family)
    tool = _tool("write_file", {"path": {"type": "string"}, "text": {"type": "string"}}, ["path", "text"])
    rows = [
        {
            "tools": [tool],
            "messages": [_user("w"), _calling(_call("write_file", ARGUMENTS)), _result("ok"), _answer("done")],
        }
    ]
    dataset, _ = _prepare(_write(tmp_path, rows), tok)
    row = dataset[0]
    (call,) = _spans(row, "tool_call")
    (decoded,) = _decoded(tok, row, "tool_call")
    for value in ARGUMENTS.values():
        rendered = json.dumps(value, ensure_ascii=False)[1:-1] if family == "qwen2_5" else value
        assert rendered in call and rendered in decoded
    assert "&amp;" not in row["text"] and "&lt;" not in row["text"] and "\\u" not in call
    assert call.endswith(tok.eos_token if family != "glm4moe" else "<|observation|>")


@pytest.mark.parametrize("family", ["qwen3_6", "qwen2_5", "glm4moe"])
def test_parallel_calls_and_consecutive_tool_messages(tmp_path: Path, family: str) -> None:
    tok = family_tokenizer(family)
    turn = _calling(_call("read_file", {"path": "a.py"}, "c1"), _call("run", {"cmd": "pytest -q"}, "c2"))
    messages = [_user("check"), turn, _result("print(1)", "c1"), _result("1 passed", "c2"), _answer("All good.")]
    dataset, _ = _prepare(_write(tmp_path, [{"tools": [READ, RUN], "messages": messages}]), tok)
    row = dataset[0]
    (call,) = _spans(row, "tool_call", message=1)
    assert call.index("read_file") < call.index("a.py") < call.index("run") < call.index("pytest -q")
    assert _spans(row, "tool_response") == ["print(1)", "1 passed"]
    assert [r["message"] for r in row["spans"] if r["kind"] == "tool_response"] == [2, 3]
    (answer,) = _spans(row, "final_answer", message=4)
    assert answer.endswith("All good." if family == "glm4moe" else f"All good.{IM_END}")  # GLM stops on the next role
    assert not _trained(row, DEFAULT_KINDS) & _positions(row, {"tool_response"})


def test_parallel_calls_on_a_template_that_renders_one_are_split_in_result_order(tmp_path: Path) -> None:
    turn = _calling(_call("read_file", {"path": "a.py"}, "c1"), _call("run", {"cmd": "ls"}, "c2"))
    messages = [_user("go"), turn, _result("y", "c2"), _result("x", "c1"), _answer("ok")]
    rows = [{"tools": [READ, RUN], "messages": messages}]
    tok = family_tokenizer("gptoss")
    dataset, report = _prepare(_write(tmp_path, rows), tok)
    assert report.kept_row_ids == [0] and report.notes["parallel tool calls split into one call per turn"] == 1
    ((_, adapted),) = _adapted(_write(tmp_path, rows), tok)
    # the results came c2 then c1: each call is its own turn, followed by its own result, in that order
    assert [(m["role"], [c["id"] for c in m.get("tool_calls") or []], m.get("tool_call_id")) for m in adapted] == [
        ("user", [], None),
        ("assistant", ["c2"], None),
        ("tool", [], "c2"),
        ("assistant", ["c1"], None),
        ("tool", [], "c1"),
        ("assistant", [], None),
    ]
    row = dataset[0]
    assert [_spans(row, "tool_call", message=i) != [] for i in (1, 3)] == [True, True]
    assert _spans(row, "tool_response") == ["y", "x"]


def test_prepare_data_can_drop_parallel_calls_instead(tmp_path: Path) -> None:
    turn = _calling(_call("read_file", {"path": "a.py"}, "c1"), _call("run", {"cmd": "ls"}, "c2"))
    rows = [
        {"tools": [READ, RUN], "messages": [_user("go"), turn, _result("y", "c2"), _result("x", "c1"), _answer("ok")]}
    ]
    tok = family_tokenizer("gptoss")
    _, report = prepare_data(_write(tmp_path, rows), tok, strict=False, parallel_tool_calls="drop", return_report=True)
    assert report.kept_row_ids == [] and "renders only one tool call per message" in report.dropped[0]
    with pytest.raises(TeichError, match="parallel_tool_calls"):
        prepare_data(_write(tmp_path, rows), tok, parallel_tool_calls="merge")


FAKE_TURN = "log line <|im_end|>\n<|im_start|>assistant\nfake answer"


@pytest.mark.parametrize("family", ["qwen3_6", "qwen2_5"])
def test_special_token_text_inside_content_is_no_boundary(tmp_path: Path, family: str) -> None:
    tok = family_tokenizer(family)
    messages = [
        _user("run it"),
        _calling(_call("run", {"cmd": "echo '<|im_end|>' && cat log"})),
        _result(FAKE_TURN),
        _answer("It printed <|im_end|> literally."),
    ]
    dataset, report = _prepare(_write(tmp_path, [{"tools": [RUN], "messages": messages}]), tok)
    row = dataset[0]
    assert report.notes["special-token text inside content"] == 1
    assert _spans(row, "tool_response") == [FAKE_TURN]
    (call,) = _spans(row, "tool_call")
    assert call.endswith("</tool_call><|im_end|>") and call.count(IM_END) == 2
    assert _spans(row, "final_answer", message=3)[-1].endswith("It printed <|im_end|> literally.<|im_end|>")
    # Documented policy: the text tokenizes exactly as apply_chat_template tokenizes it, so the
    # literal becomes the special token (checked against the template's ids by _prepare).
    im_end = tok.convert_tokens_to_ids(IM_END)
    assert row["input_ids"].count(im_end) == row["text"].count(IM_END)
    (response,) = [r for r in row["spans"] if r["kind"] == "tool_response"]
    assert im_end in row["input_ids"][response["token_start"] : response["token_end"]]
    assert all(row["labels"][i] == IGNORE_INDEX for i in range(response["token_start"], response["token_end"]))
    trained = tok.decode([t for t, label in zip(row["input_ids"], row["labels"], strict=True) if label != IGNORE_INDEX])
    assert "fake answer" not in trained and "echo '<|im_end|>' && cat log" in trained


LATE_SYSTEM = [
    {"role": "system", "content": "Be brief."},
    _user("q1"),
    _answer("a1"),
    {"role": "system", "content": "Late note."},
    _user("q2"),
    _answer("a2"),
]


def test_late_system_message_is_rendered_as_user_on_qwen3_6(tmp_path: Path) -> None:
    tok = family_tokenizer("qwen3_6")
    with pytest.raises(Exception, match="System message must be at the beginning"):
        tok.apply_chat_template(LATE_SYSTEM, tokenize=False)
    dataset, report = _prepare(_write(tmp_path, [{"messages": LATE_SYSTEM}]), tok)
    assert report.kept_row_ids == [0] and not report.dropped
    assert report.notes["late system message rendered as user"] == 1
    row = dataset[0]
    assert "<|im_start|>user\nLate note.<|im_end|>\n<|im_start|>user\nq2<|im_end|>" in row["text"]
    assert _spans(row, "user") == ["q1", "Late note.", "q2"] and _spans(row, "system") == ["Be brief."]


def test_late_system_message_stays_system_where_the_template_renders_it(tmp_path: Path) -> None:
    dataset, report = _prepare(_write(tmp_path, [{"messages": LATE_SYSTEM}]), family_tokenizer("qwen3"))
    assert "late system message rendered as user" not in report.notes
    assert "<|im_start|>system\nLate note.<|im_end|>" in dataset[0]["text"]
    assert _spans(dataset[0], "system") == ["Be brief.", "Late note."]


DEVELOPER = [{"role": "developer", "content": "Use tabs."}, _user("indent?"), _answer("Tabs.")]


@pytest.mark.parametrize(
    ("family", "kind", "note"),
    [
        ("qwen3_6", "system", 1),  # raises "Unexpected message role." on developer
        ("qwen2_5", "system", 1),  # silently drops developer messages
        ("llama3", "developer", 0),  # renders a developer header
    ],
)
def test_developer_role(tmp_path: Path, family: str, kind: str, note: int) -> None:
    tok = family_tokenizer(family)
    dataset, report = _prepare(_write(tmp_path, [{"messages": DEVELOPER}]), tok)
    assert report.notes["developer message rendered as system"] == note
    assert _spans(dataset[0], kind) == ["Use tabs."]
    assert "Use tabs." in dataset[0]["text"]


REASONING_TURNS = [_user("q1"), _answer("a1", reasoning="first thought"), _user("q2"), _answer("a2", "second thought")]


def test_reasoning_before_the_last_user_turn(tmp_path: Path) -> None:
    tok = family_tokenizer("qwen3_6")
    path = _write(tmp_path, [{"messages": REASONING_TURNS}])
    dataset, report = _prepare(path, tok)
    assert report.notes["reasoning not rendered by the template"] == 1
    assert "first thought" not in dataset[0]["text"]
    assert _spans(dataset[0], "reasoning") == ["second thought\n</think>\n\n"]
    assert _spans(dataset[0], "final_answer", message=1) == [f"a1{IM_END}"]

    kept, report = _prepare(path, tok, chat_template_kwargs={"preserve_thinking": True})
    assert report.notes["reasoning not rendered by the template"] == 0
    row = kept[0]
    assert [r["message"] for r in row["spans"] if r["kind"] == "reasoning"] == [1, 3]
    assert _spans(row, "reasoning", message=1) == ["first thought\n</think>\n\n"]
    assert "first thought" in tok.decode(
        [t for t, label in zip(row["input_ids"], row["labels"], strict=True) if label != IGNORE_INDEX]
    )


@pytest.mark.parametrize("family", ["qwen3_6", "qwen2_5", "glm4moe"])
def test_tool_call_turn_without_content(tmp_path: Path, family: str) -> None:
    tok = family_tokenizer(family)
    messages = [_user("read it"), _calling(_call("read_file", {"path": "a.py"})), _result("x = 1"), _answer("x is 1")]
    dataset, _ = _prepare(_write(tmp_path, [{"tools": [READ], "messages": messages}]), tok)
    row = dataset[0]
    assert [r["kind"] for r in row["spans"] if r["message"] == 1] == ["tool_call"]
    (decoded,) = _decoded(tok, row, "tool_call")
    assert "read_file" in decoded and "a.py" in decoded
    if family == "qwen2_5":
        assert decoded == '<tool_call>\n{"name": "read_file", "arguments": {"path": "a.py"}}\n</tool_call><|im_end|>'
    if family == "qwen3_6":  # the model writes the end of the empty think block the prompt opened
        (call,) = _spans(row, "tool_call")
        assert call.startswith("\n</think>\n\n<tool_call>\n<function=read_file>")


MULTIBYTE = {
    "tools": [_tool("look", {"q": {"type": "string"}}, ["q"])],
    "messages": [
        {"role": "system", "content": "🫠システム😀"},
        _user("😀問題🫠"),
        _calling(_call("look", {"q": "値🫠"}), content="見る🫠", reasoning_content="🤔考え𝔘"),
        _result("🫠結果😀"),
        _answer("😀答え🫠", reasoning="𝔘考え🤔"),
    ],
}


@pytest.mark.parametrize("family", ["qwen3_6", "qwen2_5", "glm4moe"])
def test_multibyte_characters_at_span_edges_are_never_split(tmp_path: Path, family: str) -> None:
    tok = family_tokenizer(family)
    dataset, _ = _prepare(_write(tmp_path, [MULTIBYTE]), tok)
    row = dataset[0]
    offsets = tok._tokenizer.encode(row["text"], add_special_tokens=False).offsets
    tokens_of = {}
    for position, char in enumerate(row["text"]):
        if len(char.encode()) > 1:
            tokens_of[position] = [i for i, (start, end) in enumerate(offsets) if start <= position < end]
    # 🫠 is three byte-level tokens on these vocabularies: the case is really exercised
    assert any(len(tokens) >= 3 for tokens in tokens_of.values())
    for kinds in [DEFAULT_KINDS, *({kind} for kind in KINDS)]:
        trained = _trained(row, kinds)
        for position, tokens in tokens_of.items():
            assert len({i in trained for i in tokens}) == 1, (kinds, row["text"][position], tokens)
        for record in row["spans"]:
            if record["kind"] in kinds:
                for position in range(record["start"], record["end"]):
                    assert set(tokens_of.get(position, [])) <= trained
    assert "😀答え🫠" in _decoded(tok, row, "final_answer", message=4)[0]
    assert _decoded(tok, row, "tool_response") == ["🫠結果😀"]


def test_dataset_rows_gain_no_phantom_keys(tmp_path: Path) -> None:
    bash = _tool("bash", {"cmd": {"type": "string", "description": "command"}, "timeout": {"type": "integer"}}, ["cmd"])
    rows = [
        {
            "tools": [READ],
            "messages": [_user("r"), _calling(_call("read_file", {"path": "x.py"})), _result("1"), _answer("ok")],
        },
        {
            "tools": [bash],
            "messages": [
                _user("b"),
                _calling(_call("bash", {"cmd": "ls", "timeout": 5})),
                _result("x.py"),
                _answer("done"),
            ],
        },
    ]
    merged = datasets.Dataset.from_list(rows)
    assert merged[0]["messages"][1]["tool_calls"][0]["function"]["arguments"]["timeout"] is None  # Arrow's fill
    for family in ("qwen3_6", "qwen2_5"):
        tok = family_tokenizer(family)
        dataset, _ = _prepare(merged, tok)
        first, second = dataset["text"]
        assert [word for word in ("cmd", "timeout", "bash", "null", "None") if word in first] == []
        assert "path" not in second and "null" not in second and "None" not in second
        assert "timeout" in second and "command" in second
        assert dataset["text"] == prepare_data(_write(tmp_path, rows), tok)["text"]


# ---------------------------------------------------------------------------------------------
# 4. oversized rows


def _sized_rows() -> list[dict[str, Any]]:
    return [
        {"messages": [_user("short"), _answer("ok")]},
        {"messages": [_user("long " * 200), _answer("long answer " * 100)]},
        {"messages": [_user("mid"), _answer("fine")]},
    ]


def test_oversized_rows_drop_keep_or_raise(tmp_path: Path) -> None:
    tok = family_tokenizer("qwen3_6")
    path = _write(tmp_path, _sized_rows())
    _, full = _prepare(path, tok)
    long = full.token_lengths[1]
    assert long > 300 > max(full.token_lengths[0], full.token_lengths[2])

    dataset, report = _prepare(path, tok, max_length=300)
    assert report.kept_row_ids == [0, 2] and report.oversized == [1] and len(dataset) == 2
    assert report.dropped == {1: f"oversized: {long} tokens > max_length 300"}
    assert "1 dropped (oversized)" in report.summary()

    dataset, report = _prepare(path, tok, max_length=300, drop_oversized_examples=False)
    assert report.kept_row_ids == [0, 1, 2] and report.oversized == [1] and not report.dropped
    assert len(dataset[1]["input_ids"]) == long == report.token_lengths[1]

    with pytest.raises(TeichError, match=rf"row 1 \(.*rows\.jsonl:2\): {long} tokens > max_length 300"):
        prepare_data(path, tok, max_length=300, oversized_policy="error")
    with pytest.raises(TeichError, match="oversized_policy"):
        prepare_data(path, tok, oversized_policy="truncate")


def test_trim_counts_user_turns_that_are_not_cut_points(tmp_path: Path) -> None:
    # users at 0, 2, 3 (3 follows a user: no place to cut), 5
    messages = [_user("u1"), _answer("a1"), _user("u2"), _user("u2b"), _answer("a2"), _user("u3"), _answer("x " * 300)]
    tok = family_tokenizer("qwen3_6")
    path = _write(tmp_path, [{"messages": messages}])
    dataset, report = _prepare(path, tok, max_length=200, oversized_policy="trim_followups")
    assert report.trimmed == {0: (3, 4)}
    ((_, adapted),) = _adapted(path, tok)
    assert dataset[0]["text"] == tok.apply_chat_template(adapted[:5], tokenize=False)
    assert _spans(dataset[0], "user") == ["u1", "u2", "u2b"]
    assert dataset[0]["text"].endswith(f"a2{IM_END}\n")


def test_trim_followups_on_a_long_real_session(shared_traces: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tok = family_tokenizer("qwen3_6")
    pi = shared_traces / "pi.jsonl"
    ((example, adapted),) = _adapted(pi, tok)
    users = [i for i, m in enumerate(adapted) if m["role"] == "user"]
    renders = []
    real_render = teich.training.prepare.render_row

    def counting(*args: Any, **kwargs: Any):
        renders.append(1)
        return real_render(*args, **kwargs)

    monkeypatch.setattr(teich.training.prepare, "render_row", counting)
    bound = math.ceil(math.log2(len(users))) + 2
    first_turn_steps = sum(1 for m in adapted[: users[1]] if m["role"] == "assistant")
    step_bound = bound + math.ceil(math.log2(first_turn_steps)) + 1

    # Even the first user turn of this session (its reasoning rendered) is ~49k tokens, so at 32768
    # the first turn itself is cut after the longest run of assistant steps that fits.
    dataset, report = prepare_data(
        pi, tok, max_length=32768, oversized_policy="trim_followups", tokenize=True, return_report=True
    )
    assert report.oversized == [0] and report.kept_row_ids == [0] and report.trimmed == {0: (1, len(users))}
    assert len(renders) <= step_bound
    row = dataset[0]
    assert len(row["input_ids"]) <= 32768
    cut = next(
        end
        for end in range(users[1], 0, -1)
        if row["text"] == tok.apply_chat_template(adapted[:end], tools=example.tools, tokenize=False)
    )
    assert adapted[cut - 1]["role"] == "assistant" and cut < users[1]
    assert row["spans"][-1]["kind"] == "tool_call" and row["text"].endswith(f"{IM_END}\n")
    longer = _template_ids(tok, adapted[: cut + 2], example.tools, {})  # the next step, if it is one
    assert len(longer) > 32768 or adapted[cut + 1]["role"] != "assistant"

    renders.clear()
    full = tok.apply_chat_template(adapted, tools=example.tools, tokenize=False)
    dataset, report = prepare_data(
        pi, tok, max_length=80_000, oversized_policy="trim_followups", tokenize=True, return_report=True
    )
    assert len(renders) <= bound
    ((kept, total),) = report.trimmed.values()
    assert report.kept_row_ids == [0] and total == len(users) and 1 < kept < total
    row = dataset[0]
    assert len(row["input_ids"]) == report.token_lengths[0] <= 80_000
    cut = users[kept]
    prefix = adapted[:cut]
    assert adapted[cut - 1]["role"] == "assistant"
    assert row["text"] == tok.apply_chat_template(prefix, tools=example.tools, tokenize=False)
    assert row["input_ids"] == _template_ids(tok, prefix, example.tools, {})
    assert row["text"].endswith(f"{IM_END}\n") and row["spans"][-1]["kind"] in ("final_answer", "tool_call")
    assert row["spans"][-1]["end"] == len(row["text"]) - 1
    # prefix-compatible: identical to the full rendering up to the last kept user turn
    last_user = max(r["end"] for r in row["spans"] if r["kind"] == "user")
    assert full.startswith(row["text"][:last_user])
    # the notes describe the trimmed row: turns before its last user turn lose their reasoning
    dropped = sum(1 for m in prefix[: users[kept - 1]] if m["role"] == "assistant" and m.get("reasoning_content"))
    assert report.notes["reasoning not rendered by the template"] == dropped > 0


# ---------------------------------------------------------------------------------------------
# 5. bad rows

CHAT = {"messages": [_user("hello"), _answer("hi")]}
WITH_TOOL = {
    "tools": [READ],
    "messages": [_user("r"), _calling(_call("read_file", {"path": "a"})), _result("x"), _answer("ok")],
}


@pytest.mark.parametrize(
    ("family", "reason"),
    [
        ("gemma3", "the chat template cannot render it: Conversation roles must alternate"),
        ("llama3", "supervision spans cannot be established: message 1: the chat template does not render tool calls"),
    ],
)
def test_unusable_rows_raise_or_are_dropped(tmp_path: Path, family: str, reason: str) -> None:
    tok = family_tokenizer(family)
    path = _write(tmp_path, [CHAT, WITH_TOOL])
    with pytest.raises(TeichError) as raised:
        prepare_data(path, tok)
    message = str(raised.value)
    assert message.startswith(f"row 1 ({path}:2): {reason}") and "strict=False" in message
    dataset, report = _prepare(path, tok, strict=False)
    assert report.kept_row_ids == [0] and len(dataset) == 1 and report.rows_in == 2
    assert report.dropped[1].startswith(reason)


def _validation_rows() -> list[dict[str, Any]]:
    """A valid row, one missing a required argument, one whose tool result answers no call."""

    def row(arguments: dict[str, Any], result_id: str = "call_1") -> dict[str, Any]:
        messages = [_user("r"), _calling(_call("read_file", arguments)), _result("x", result_id), _answer("ok")]
        return {"tools": [READ], "messages": messages}

    return [row({"path": "a"}), row({"file": "a"}), row({"path": "a"}, "call_zz")]


def test_validate_tools_drops_invalid_calls(tmp_path: Path) -> None:
    tok = family_tokenizer("qwen3_6")
    path = _write(tmp_path, _validation_rows())
    _, unchecked = _prepare(path, tok, strict=False)  # a result answering no call is rejected even so
    assert unchecked.kept_row_ids == [0, 1]
    assert unchecked.dropped == {2: "message 2: tool result 'call_zz' answers no call before it"}
    dataset, report = _prepare(path, tok, validate_tools=True, strict=False)
    assert report.kept_row_ids == [0] and len(dataset) == 1
    assert report.dropped == {
        1: "invalid tool calls: message 1: 'read_file' misses required path",
        2: "invalid tool calls: message 2: tool result 'call_zz' answers no call",
    }
    with pytest.raises(TeichError, match=r"row 1 \(.*:2\): invalid tool calls: .* misses required path"):
        prepare_data(path, tok, validate_tools=True)


def test_validate_tools_drops_an_undeclared_tool(tmp_path: Path) -> None:
    row = {"tools": [READ], "messages": [_user("r"), _calling(_call("rm", {"path": "a"})), _result("x"), _answer("ok")]}
    _, report = prepare_data(
        _write(tmp_path, [row]), family_tokenizer("qwen3_6"), validate_tools=True, strict=False, return_report=True
    )
    assert report.dropped == {0: "invalid tool calls: message 1: tool 'rm' is not declared"}


def test_validate_tool_calls() -> None:
    good, missing, orphan = _validation_rows()
    assert validate_tool_calls(good) == []
    assert validate_tool_calls(missing) == ["message 1: 'read_file' misses required path"]
    assert validate_tool_calls(orphan) == ["message 2: tool result 'call_zz' answers no call"]
    undeclared = good | {"messages": [_user("r"), _calling(_call("rm", {})), _result("x"), _answer("ok")]}
    assert validate_tool_calls(undeclared) == ["message 1: tool 'rm' is not declared"]
    unnamed = good | {"messages": [_user("r"), _calling(_call("", {})), _answer("ok")]}
    assert validate_tool_calls(unnamed) == ["message 1: a tool call has no name"]
    no_schemas = undeclared | {"tools": []}
    assert validate_tool_calls(no_schemas) == []


@pytest.mark.parametrize("family", ["qwen3_6", "gptoss"])
def test_row_fits_context_counts_what_prepare_data_trains_on(tmp_path: Path, family: str) -> None:
    tok = family_tokenizer(family)
    row = {
        "messages": [{"role": "developer", "content": "Be exact."}, _user("q"), _answer("a", reasoning="think hard")]
    }
    _, report = _prepare(_write(tmp_path, [row]), tok)
    (length,) = report.token_lengths
    assert row_fits_context(row, tok, length)
    assert not row_fits_context(row, tok, length - 1)
    turns = {"messages": REASONING_TURNS}
    _, plain = _prepare(_write(tmp_path, [turns], "turns.jsonl"), tok)
    if family == "qwen3_6":
        kwargs = {"preserve_thinking": True}
        _, preserved = _prepare(_write(tmp_path, [turns], "turns.jsonl"), tok, chat_template_kwargs=kwargs)
        assert preserved.token_lengths[0] > plain.token_lengths[0]
        assert row_fits_context(turns, tok, preserved.token_lengths[0], kwargs)
        assert not row_fits_context(turns, tok, preserved.token_lengths[0] - 1, kwargs)
    assert row_fits_context(turns, tok, plain.token_lengths[0])
    assert not row_fits_context(turns, tok, plain.token_lengths[0] - 1)


# ---------------------------------------------------------------------------------------------
# 6. mixes


def _mix_sources(tmp_path: Path, chats: int, tools: int) -> tuple[Path, Path]:
    chat = [{"messages": [_user(f"question {i}"), _answer(f"answer {i}")]} for i in range(chats)]
    tool = [
        {
            "tools": [READ],
            "messages": [
                _user(f"read {i}"),
                _calling(_call("read_file", {"path": f"f{i}.py"})),
                _result("x"),
                _answer(f"done {i}"),
            ],
        }
        for i in range(tools)
    ]
    return _write(tmp_path, chat, "chat.jsonl"), _write(tmp_path, tool, "tool.jsonl")


@pytest.mark.parametrize(
    ("chats", "tools", "shares", "max_examples", "expected"),
    [
        (10, 1, (80, 20), None, (4, 1)),  # the tool source runs short: the total shrinks to 5
        (10, 3, (50, 50), None, (3, 3)),
        (2, 10, (20, 80), None, (2, 8)),  # the chat source runs short
        (10, 3, (80, 20), 5, (4, 1)),
        (10, 3, (80, 20), None, (8, 2)),  # neither runs short: whole 4:1 units keep 80/20 exact
        (9, 9, (33.3, 66.7), None, (4, 9)),  # no 333:667 unit fits: shares approximated, rounded down
    ],
)
def test_mix_realises_the_percentages(tmp_path: Path, chats, tools, shares, max_examples, expected) -> None:
    tok = family_tokenizer("qwen3_6")
    chat, tool = _mix_sources(tmp_path, chats, tools)
    mix = {"chat": {"source": chat, "percentage": shares[0]}, "tool": {"source": tool, "percentage": shares[1]}}
    picked = [*iter_examples(chat, LoadReport())][: expected[0]] + [*iter_examples(tool, LoadReport())][: expected[1]]
    dataset, report = _prepare(mix, tok, expected=picked, max_examples=max_examples)
    with_calls = sum("<tool_call>\n<function=read_file>" in text for text in dataset["text"])
    assert (len(dataset) - with_calls, with_calls) == expected
    assert report.rows_in == sum(expected)
    answers = [r["text"].rsplit("</think>\n\n", 1)[1] for r in dataset]
    assert answers[: expected[0]] == [f"answer {i}{IM_END}\n" for i in range(expected[0])]
    assert answers[expected[0] :] == [f"done {i}{IM_END}\n" for i in range(expected[1])]


def test_mix_rejects_a_non_positive_share(tmp_path: Path) -> None:
    chat, tool = _mix_sources(tmp_path, 2, 2)
    mix = {"chat": {"source": chat, "percentage": 100}, "tool": {"source": tool, "percentage": 0}}
    with pytest.raises(TeichError, match="positive percentage"):
        prepare_data(mix, family_tokenizer("qwen3_6"))


# ---------------------------------------------------------------------------------------------
# Which turns train: a message's own train flag, and train_turns


TURNS = [
    {"role": "user", "content": "first question"},
    {"role": "assistant", "content": "DISTRUSTED ANSWER", "train": False},
    {"role": "user", "content": "PINNED QUESTION", "train": True},
    {"role": "assistant", "content": "MIDDLE ANSWER"},
    {"role": "user", "content": "last question"},
    {"role": "assistant", "content": "FINAL ANSWER"},
]


def _trained_text(tok: Any, row: dict[str, Any]) -> str:
    return tok.decode([t for t, label in zip(row["input_ids"], row["labels"], strict=True) if label != IGNORE_INDEX])


@pytest.mark.parametrize("family", ["qwen3_6", "llama3", "gptoss"])
def test_message_train_flags_and_last_turn(tmp_path: Path, family: str) -> None:
    tok = family_tokenizer(family)
    path = _write(tmp_path, [{"messages": TURNS}])
    row = prepare_data(path, tok)[0]
    trained = _trained_text(tok, row)
    # train: false wins over the policy, train: true over it too (a user turn is not trained by default)
    assert "DISTRUSTED" not in trained and "PINNED QUESTION" in trained
    assert "MIDDLE ANSWER" in trained and "FINAL ANSWER" in trained and "first question" not in trained
    last = prepare_data(path, tok, train_turns="last")
    trained_last = _trained_text(tok, last[0])
    assert "FINAL ANSWER" in trained_last and "MIDDLE ANSWER" not in trained_last
    assert "PINNED QUESTION" in trained_last  # an explicit flag still decides its own message
    assert relabel(datasets.Dataset.from_list([row]), train_turns="last")[0]["labels"] == last[0]["labels"]


def test_train_flags_travel_with_rows(tmp_path: Path) -> None:
    path = _write(tmp_path, [{"messages": TURNS}])
    (loaded,) = [TrainingExample.from_record(r) for r in teich.load_traces(path)]
    assert [m.train for m in loaded.messages] == [None, False, True, None, None, None]
    assert TrainingExample.from_record(loaded.to_record()).messages == loaded.messages
    with pytest.raises(TeichError, match="train_turns must be"):
        prepare_data(path, family_tokenizer("qwen3_6"), train_turns="first")


REASONED = [
    {"role": "user", "content": "first"},
    {"role": "assistant", "content": "one", "reasoning_content": "EARLY THOUGHT"},
    {"role": "user", "content": "second"},
    {"role": "assistant", "content": "two", "reasoning_content": "LATE THOUGHT"},
]


@pytest.mark.parametrize(
    ("reasoning", "kwargs", "shown", "removed"),
    [
        ("keep", {"preserve_thinking": True}, {"EARLY THOUGHT", "LATE THOUGHT"}, 0),
        ("last", {"preserve_thinking": True}, {"LATE THOUGHT"}, 1),
        ("drop", {"preserve_thinking": True}, set(), 2),
        ("keep", {}, {"LATE THOUGHT"}, 0),  # Qwen3.6 itself leaves out reasoning before the last user turn
    ],
)
def test_reasoning_policy(tmp_path: Path, reasoning: str, kwargs: dict, shown: set, removed: int) -> None:
    tok = family_tokenizer("qwen3_6")
    dataset, report = prepare_data(
        _write(tmp_path, [{"messages": REASONED}]),
        tok,
        reasoning=reasoning,
        chat_template_kwargs=kwargs,
        return_report=True,
    )
    text = dataset[0]["text"]
    assert {t for t in ("EARLY THOUGHT", "LATE THOUGHT") if t in text} == shown
    assert report.notes["reasoning removed by the reasoning policy"] == removed
    assert {span.split("\n")[0] for span in _spans(dataset[0], "reasoning")} == shown
