"""Property tests: the Arrow storage form round-trips exactly, and converting OpenAI-style rows keeps
every turn and call, merges assistant fragments, pairs tool results, and is idempotent."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import datasets
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from teich import FEATURES, TrainingExample, load_traces
from teich.cli import app
from teich.schema import FunctionCall, Message, ToolCall

SETTINGS = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
ROLES = ("system", "developer", "user", "assistant", "tool")

# Text without "<" and "#", so that no user turn looks like harness-injected context by chance.
TEXT = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="<#"), max_size=12)
WORD = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="<#"), min_size=1, max_size=12)
NONBLANK = WORD.filter(str.strip)
KEYS = st.text(max_size=6)
URL = st.builds(lambda t: f"https://example.com/{t}.png", st.text("abc\u00e9", max_size=5))
SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT
JSON = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3), max_leaves=8
)
ARGUMENTS = st.dictionaries(KEYS, JSON, max_size=4)


@st.composite
def argument_lists(draw: st.DrawFn, max_size: int = 3) -> list[dict[str, Any]]:
    """Argument objects, each with a key of its own (``None``-valued) so that no two share their keys."""
    drawn = draw(st.lists(ARGUMENTS, max_size=max_size))
    return [{f"only_{index}": None, **arguments} for index, arguments in enumerate(drawn)]


def text_part(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


# ---------------------------------------------------------------------------------------------
# (a) TrainingExample -> Arrow storage form -> JSON / disk -> TrainingExample
# ---------------------------------------------------------------------------------------------

CONTENT_PARTS = st.lists(
    st.one_of(
        st.builds(text_part, TEXT),
        st.builds(lambda url, extra: {"type": "image", "image": url, **extra}, URL, st.dictionaries(KEYS, JSON)),
    ),
    max_size=4,
)


@st.composite
def tool_calls(draw: st.DrawFn) -> list[ToolCall] | None:
    arguments = draw(st.none() | argument_lists())
    if arguments is None:
        return None
    return [ToolCall(id=draw(TEXT), function=FunctionCall(name=draw(TEXT), arguments=a)) for a in arguments]


@st.composite
def messages(draw: st.DrawFn) -> Message:
    role = draw(st.sampled_from(ROLES))
    content = st.none() | TEXT | CONTENT_PARTS if role in ("user", "tool") else st.none() | TEXT
    fields: dict[str, Any] = {"role": role, "content": draw(content), "name": draw(st.none() | TEXT)}
    if role == "assistant":
        fields.update(reasoning_content=draw(st.none() | TEXT), tool_calls=draw(tool_calls()))
    if role == "tool":
        fields["tool_call_id"] = draw(st.none() | TEXT)
    return Message(**fields)


TOOL_SCHEMAS = st.builds(
    lambda name, description, properties, extra: {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {"type": "object", "properties": properties, "required": list(properties)[:1]},
        },
        **extra,
    },
    TEXT,
    TEXT,
    st.dictionaries(KEYS, st.fixed_dictionaries({"type": st.sampled_from(["string", "integer", "object"])})),
    st.dictionaries(st.sampled_from(["strict", "x-extra"]), JSON),
)
EXAMPLES = st.builds(
    TrainingExample,
    prompt=TEXT,
    messages=st.lists(messages(), min_size=1, max_size=6),
    tools=st.lists(TOOL_SCHEMAS, max_size=3),
    metadata=st.dictionaries(KEYS, JSON, max_size=5),
    system=st.none() | TEXT,
    follow_up_prompts=st.lists(TEXT, max_size=3),
    category=st.none() | TEXT,
)


def assert_identical(back: list[TrainingExample], original: list[TrainingExample]) -> None:
    """Equal, and equal in repr too (so ``1`` vs ``True`` vs ``1.0`` and key order count)."""
    assert back == original
    assert [repr(e.model_dump()) for e in back] == [repr(e.model_dump()) for e in original]


@settings(SETTINGS, max_examples=60)
@given(st.lists(EXAMPLES, min_size=1, max_size=4))
@example([TrainingExample(prompt="", messages=[Message(role="user", content="hi")])])
def test_storage_form_round_trips_through_json_parquet_and_disk(examples: list[TrainingExample]) -> None:
    dataset = datasets.Dataset.from_list([e.to_record() for e in examples], features=FEATURES)
    assert_identical([TrainingExample.from_record(row) for row in dataset], examples)
    with tempfile.TemporaryDirectory() as folder:
        dataset.to_json(f"{folder}/rows.jsonl")
        from_json = datasets.Dataset.from_json(f"{folder}/rows.jsonl", features=FEATURES, cache_dir=f"{folder}/c")
        assert_identical([TrainingExample.from_record(row) for row in from_json], examples)
        dataset.save_to_disk(f"{folder}/saved")
        from_disk = datasets.load_from_disk(f"{folder}/saved")
        assert from_disk.features == FEATURES
        assert_identical([TrainingExample.from_record(row) for row in from_disk], examples)
        # push_to_hub uploads parquet shards and the Hub serves them back the same way
        dataset.to_parquet(f"{folder}/rows.parquet")
        from_parquet = datasets.Dataset.from_parquet(f"{folder}/rows.parquet", cache_dir=f"{folder}/p")
        assert_identical([TrainingExample.from_record(row) for row in from_parquet], examples)


# ---------------------------------------------------------------------------------------------
# (b) OpenAI-style rows -> load_traces: invariants and idempotence
# ---------------------------------------------------------------------------------------------


def normalized_parts(parts: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """What the conversion makes of the content parts generated below (independent oracle)."""
    out = [
        text_part(p["text"]) if p["type"] == "text" else {"type": "image", "image": p["image_url"]["url"]}
        for p in parts
    ]
    if all(p["type"] == "text" for p in out):
        return "\n".join(p["text"] for p in out)
    return out


USER_PARTS = st.lists(
    st.one_of(st.builds(text_part, TEXT), st.builds(lambda url: {"type": "image_url", "image_url": {"url": url}}, URL)),
    min_size=1,
    max_size=3,
).filter(normalized_parts)
USER_CONTENT = WORD | USER_PARTS


@st.composite
def openai_calls(draw: st.DrawFn, ids: Iterator[int]) -> list[dict[str, Any]]:
    calls = []
    for arguments in draw(argument_lists(max_size=2)):
        name = draw(st.sampled_from(["read", "write", "sh\u00e9ll", "search"]))
        encoded = json.dumps(arguments, ensure_ascii=False) if draw(st.booleans()) else arguments
        call_id = f"id_{next(ids)}"
        if draw(st.booleans()):
            calls.append({"id": call_id, "type": "function", "function": {"name": name, "arguments": encoded}})
        else:
            calls.append({"id": call_id, "name": name, "arguments": encoded})
    return calls


@st.composite
def assistant_fragment(draw: st.DrawFn, ids: Iterator[int]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant"}
    text = draw(st.none() | TEXT | st.lists(TEXT, min_size=1, max_size=2))
    message["content"] = [text_part(t) for t in text] if isinstance(text, list) else text
    reasoning = draw(st.none() | TEXT)
    if reasoning is not None:
        message[draw(st.sampled_from(["reasoning_content", "reasoning", "thinking"]))] = reasoning
    calls = draw(openai_calls(ids))
    if calls or draw(st.booleans()):
        message["tool_calls"] = calls
    return message


@st.composite
def openai_rows(draw: st.DrawFn) -> dict[str, Any]:
    """A conversation: optional system/developer, then exchanges of a user turn, runs of assistant
    fragments and the tool results of their calls, optionally ending on extra user turns."""
    ids = iter(range(10_000))
    messages: list[dict[str, Any]] = []
    for role in ("system", "developer"):
        if draw(st.booleans()):
            messages.append({"role": role, "content": draw(WORD)})
    for _ in range(draw(st.integers(1, 3))):
        messages.append({"role": "user", "content": draw(USER_CONTENT), **draw(st.just({}) | st.just({"name": "u"}))})
        for _ in range(draw(st.integers(1, 2))):
            fragments = draw(st.lists(assistant_fragment(ids), min_size=1, max_size=3))
            messages += fragments
            for call in [c for f in fragments for c in f.get("tool_calls", [])]:
                result = draw(st.none() | TEXT | USER_PARTS)
                tool = {"role": "tool", "tool_call_id": call["id"], "content": result}
                if draw(st.booleans()):
                    tool["name"] = draw(WORD)
                messages.append(tool)
    messages.append({"role": "assistant", "content": draw(NONBLANK)})  # at least one assistant turn
    if draw(st.booleans()):
        messages.append({"role": "assistant", "content": "tail", "tool_calls": draw(openai_calls(ids))})
        messages += [{"role": "tool", "tool_call_id": c["id"], "content": "r"} for c in messages[-1]["tool_calls"]]
    messages += [{"role": "user", "content": draw(WORD)} for _ in range(draw(st.integers(0, 2)))]
    row: dict[str, Any] = {"messages": messages}
    if draw(st.booleans()):
        row["tools"] = draw(st.lists(TOOL_SCHEMAS, max_size=2))
    if draw(st.booleans()):
        row["metadata"] = draw(st.dictionaries(KEYS.map(lambda k: f"m_{k}"), JSON, max_size=3))
    return row


def input_text(content: Any) -> str:
    if isinstance(content, list):
        return "\n".join(p["text"] for p in content if p["type"] == "text")
    return content or ""


def input_reasoning(message: dict[str, Any]) -> str | None:
    return next((message[k] for k in ("reasoning_content", "reasoning", "thinking") if k in message), None)


def input_call(call: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    function = call.get("function") or call
    arguments = function["arguments"]
    return call["id"], function["name"], json.loads(arguments) if isinstance(arguments, str) else arguments


def expected_assistant_turns(messages: list[dict[str, Any]]) -> list[Message]:
    """One assistant message per run of consecutive assistant fragments that have anything in them."""
    runs: list[list[dict[str, Any]]] = []
    for previous, message in zip([None, *messages], messages, strict=False):
        if message["role"] == "assistant":
            if previous is None or previous["role"] != "assistant":
                runs.append([])
            runs[-1].append(message)
    turns = []
    for run in runs:
        reasoning = [r for r in map(input_reasoning, run) if r and r.strip()]
        text = [t for t in (input_text(m.get("content")) for m in run) if t.strip()]
        calls = [
            ToolCall(id=i, function=FunctionCall(name=n, arguments=a))
            for m in run
            for i, n, a in map(input_call, m.get("tool_calls") or [])
        ]
        if reasoning or text or calls:
            turns.append(
                Message(
                    role="assistant",
                    content="\n\n".join(text) or None,
                    reasoning_content="\n\n".join(reasoning) or None,
                    tool_calls=calls or None,
                )
            )
    return turns


def trimmed(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The input messages up to the last assistant turn when user turns trail it (they are trimmed)."""
    last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
    if any(m["role"] == "user" for m in messages[last + 1 :]):
        return messages[: last + 1]
    return messages


def without_source(example: TrainingExample) -> TrainingExample:
    metadata = {k: v for k, v in example.metadata.items() if k not in ("source_file", "source_line")}
    return example.model_copy(update={"metadata": metadata})


def check_conversion(row: dict[str, Any], example: TrainingExample) -> None:
    kept = trimmed(row["messages"])
    out = example.messages
    assert {m.role for m in out} <= set(ROLES)

    def of_role(role: str, messages: list[Any]) -> list[Any]:
        return [m for m in messages if (m["role"] if isinstance(m, dict) else m.role) == role]

    for role in ("system", "developer"):
        assert [m.content for m in of_role(role, out)] == [m["content"] for m in of_role(role, kept)]
    expected_users = [c if isinstance(c := m["content"], str) else normalized_parts(c) for m in of_role("user", kept)]
    assert [m.content for m in of_role("user", out)] == expected_users
    assert [m.name for m in of_role("user", out)] == [m.get("name") for m in of_role("user", kept)]
    assert example.prompt == input_text(expected_users[0])
    assert example.follow_up_prompts == [input_text(u) for u in expected_users[1:]]

    # assistant fragments merged per run: reasoning, then text, then every call in order
    assert of_role("assistant", out) == expected_assistant_turns(row["messages"])
    assert all(a.role != "assistant" or b.role != "assistant" for a, b in zip(out, out[1:], strict=False))
    calls = [c for m in row["messages"] for c in map(input_call, m.get("tool_calls") or [])]
    assert [(c.id, c.function.name, c.function.arguments) for m in out for c in m.tool_calls or []] == calls

    # every tool result pairs with an earlier call, keeps its content, and is named after it
    seen: dict[str, str] = {}
    for message in out:
        for call in message.tool_calls or []:
            seen[call.id] = call.function.name
        if message.role == "tool":
            assert message.tool_call_id in seen
    tools_in = of_role("tool", kept)
    tools_out = of_role("tool", out)
    assert [m.tool_call_id for m in tools_out] == [m["tool_call_id"] for m in tools_in]
    for got, sent in zip(tools_out, tools_in, strict=True):
        content = sent["content"]
        assert got.content == (normalized_parts(content) if isinstance(content, list) else content or "")
        assert got.name == sent.get("name", seen[sent["tool_call_id"]])

    # declared schemas kept first; every called tool has one; inferred ones list exactly the keys used
    declared = row.get("tools") or []
    assert example.tools[: len(declared)] == declared
    names = [(t.get("function") or t).get("name") for t in example.tools]
    assert {name for _, name, _ in calls} <= set(names)
    for schema in example.tools[len(declared) :]:
        name = schema["function"]["name"]
        used = [a for _, n, a in calls if n == name]
        assert list(schema["function"]["parameters"]["properties"]) == list(dict.fromkeys(k for a in used for k in a))
    assert example.metadata["trace_type"] == "openai"


@settings(SETTINGS, max_examples=150)
@given(st.lists(openai_rows(), min_size=1, max_size=3))
def test_openai_rows_convert_faithfully_and_idempotently(rows: list[dict[str, Any]]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "rows.jsonl"
        source.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        dataset, report = load_traces(source, drop_incomplete_traces=False, return_report=True)
        assert len(dataset) == len(rows) == report.rows and not report.problems and not report.dropped
        first = [TrainingExample.from_record(r) for r in dataset]
        for row, example in zip(rows, first, strict=True):
            check_conversion(row, example)

        out = Path(folder) / "out.jsonl"
        result = CliRunner().invoke(app, ["convert", str(source), "--out", str(out), "--keep-incomplete"])
        assert result.exit_code == 0, result.output
        second = [TrainingExample.from_record(r) for r in load_traces(out, drop_incomplete_traces=False)]
        assert [without_source(e) for e in second] == [without_source(e) for e in first]


# ---------------------------------------------------------------------------------------------
# (c) a user-built Dataset whose rows have different argument keys (Arrow fills them with null)
# ---------------------------------------------------------------------------------------------

# Each key keeps one type across rows, as Arrow needs; "opts" is a nested object with varying keys.
TYPED_ARGUMENTS = st.fixed_dictionaries(
    {},
    optional={
        "path": WORD,
        "line": st.integers(-1000, 1000),
        "flags": st.lists(WORD, max_size=2),
        "opts": st.fixed_dictionaries({}, optional={"deep": st.booleans(), "depth": st.integers(0, 9)}).filter(bool),
        "\u540d\u524d": WORD,
    },
).filter(bool)
PROPERTIES = st.fixed_dictionaries(
    {}, optional={k: st.just({"type": "string"}) for k in ("path", "mode", "\u540d\u524d")}
).filter(bool)


@st.composite
def dataset_rows(draw: st.DrawFn) -> dict[str, Any]:
    calls = [
        {"id": f"c{i}", "type": "function", "function": {"name": draw(st.sampled_from(["a", "b"])), "arguments": a}}
        for i, a in enumerate(draw(st.lists(TYPED_ARGUMENTS, min_size=1, max_size=3)))
    ]
    assistant: dict[str, Any] = {"role": "assistant", "tool_calls": calls}
    if draw(st.booleans()):
        assistant["reasoning_content"] = draw(WORD)
    tools = [
        {"type": "function", "function": {"name": "a", "parameters": {"type": "object", "properties": properties}}}
        for properties in draw(st.lists(PROPERTIES, max_size=1))
    ]
    messages = [{"role": "user", "content": draw(WORD)}, assistant]
    messages += [{"role": "tool", "tool_call_id": c["id"], "content": "ok"} for c in calls]
    messages.append({"role": "assistant", "content": draw(NONBLANK)})
    return {"messages": messages, "tools": tools}


@settings(SETTINGS, max_examples=60)
@given(st.lists(dataset_rows(), min_size=2, max_size=5))
def test_dataset_rows_lose_the_null_keys_arrow_adds(rows: list[dict[str, Any]]) -> None:
    loaded = load_traces(datasets.Dataset.from_list(rows))
    assert len(loaded) == len(rows)
    for row, stored in zip(rows, loaded, strict=True):
        example = TrainingExample.from_record(stored)
        sent = [c["function"] for c in row["messages"][1]["tool_calls"]]
        got = [c.function for c in example.messages[1].tool_calls]
        assert [(f.name, f.arguments) for f in got] == [(f["name"], f["arguments"]) for f in sent]
        assert example.tools[: len(row["tools"])] == row["tools"]
        for schema in example.tools[len(row["tools"]) :]:
            used = [f["arguments"] for f in sent if f["name"] == schema["function"]["name"]]
            # Arrow orders struct keys by schema, so only the set of keys is comparable here
            assert set(schema["function"]["parameters"]["properties"]) == {k for a in used for k in a}
