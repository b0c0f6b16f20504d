"""Row formats: Teich chat rows, OpenAI-style messages, ShareGPT."""

from __future__ import annotations

import json

from teich import TrainingExample, detect_trace_type, load_traces


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _load(path, **kwargs):
    return [TrainingExample.from_record(r) for r in load_traces(path, **kwargs)]


CHAT_ROW = {
    "messages": [
        {"role": "system", "content": "You are a helpful assistant", "thinking": None},
        {"role": "user", "content": "Hello", "thinking": None},
        {"role": "assistant", "content": "Hi!", "thinking": "I should greet the user."},
    ],
    "system": "You are a helpful assistant",
    "prompt": "Hello",
    "thinking": "I should greet the user.",
    "response": "Hi!",
    "model": "gpt-4.1-mini",
}


def test_teich_chat_row(tmp_path):
    assert detect_trace_type([CHAT_ROW]) == "teich_chat"
    (ex,) = _load(_write(tmp_path / "chat.jsonl", [CHAT_ROW]))
    assert [m.role for m in ex.messages] == ["system", "user", "assistant"]
    assert ex.messages[2].reasoning_content == "I should greet the user."
    assert ex.messages[2].content == "Hi!"
    assert ex.system == "You are a helpful assistant" and ex.prompt == "Hello"
    assert ex.metadata["model"] == "gpt-4.1-mini" and ex.metadata["trace_type"] == "teich_chat"
    assert ex.tools == []


def test_teich_chat_row_without_messages(tmp_path):
    row = {k: v for k, v in CHAT_ROW.items() if k != "messages"}
    (ex,) = _load(_write(tmp_path / "chat.jsonl", [row]))
    assert [m.role for m in ex.messages] == ["system", "user", "assistant"]
    assert ex.messages[2].reasoning_content == "I should greet the user."


def test_openai_rows_with_tools(tmp_path):
    tools = [
        {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}}},
        {"type": "function", "function": {"name": "never_called", "parameters": {"type": "object"}}},
    ]
    row = {
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]},
            {
                "role": "assistant",
                "reasoning_content": "Use the tool.",
                "content": None,
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    },
                    {"id": "c2", "type": "function", "function": {"name": "lookup", "arguments": {"q": "é<&\"'"}}},
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "18C"},
            {"role": "tool", "tool_call_id": "c2", "content": "ok"},
            {"role": "assistant", "content": "It is 18C."},
        ],
        "tools": tools,
    }
    assert detect_trace_type([row]) == "openai"
    (ex,) = _load(_write(tmp_path / "rows.jsonl", [row]))
    assert ex.prompt == "Weather in Paris?"
    calls = ex.messages[1].tool_calls
    assert [c.function.arguments for c in calls] == [{"city": "Paris"}, {"q": "é<&\"'"}]
    assert [m.name for m in ex.messages if m.role == "tool"] == ["get_weather", "lookup"]
    # declared schemas kept (also the never-called one); the undeclared called tool is inferred
    assert [t["function"]["name"] for t in ex.tools] == ["get_weather", "never_called", "lookup"]
    assert ex.tools[2]["function"]["parameters"]["properties"] == {"q": {"type": "string"}}


def test_consecutive_assistant_fragments_merge_in_semantic_order(tmp_path):
    row = {
        "messages": [
            {"role": "user", "content": "Go"},
            {"role": "assistant", "tool_calls": [{"id": "a", "function": {"name": "ls", "arguments": "{}"}}]},
            {"role": "assistant", "content": "Listing.", "reasoning_content": "Need files."},
            {"role": "tool", "tool_call_id": "a", "content": "x"},
            {"role": "assistant", "content": "Done."},
        ]
    }
    (ex,) = _load(_write(tmp_path / "rows.jsonl", [row]))
    merged = ex.messages[1]
    assert (merged.reasoning_content, merged.content, merged.tool_calls[0].id) == ("Need files.", "Listing.", "a")
    assert [m.role for m in ex.messages] == ["user", "assistant", "tool", "assistant"]


def test_incomplete_rows_are_dropped_and_counted(tmp_path):
    ends_on_tool = {
        "messages": [
            {"role": "user", "content": "Go"},
            {"role": "assistant", "tool_calls": [{"id": "a", "function": {"name": "ls", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "a", "content": "x"},
        ]
    }
    no_assistant = {"messages": [{"role": "user", "content": "Anyone?"}]}
    path = _write(tmp_path / "rows.jsonl", [ends_on_tool, no_assistant, CHAT_ROW])
    dataset, report = load_traces(path, return_report=True)
    assert len(dataset) == 1
    assert report.dropped == {"ends on a tool result": 1, "no assistant turn": 1}
    assert "dropped 1 (ends on a tool result)" in report.summary()
    kept = load_traces(path, drop_incomplete_traces=False)
    assert len(kept) == 2


def test_sharegpt(tmp_path):
    row = {
        "conversations": [
            {"from": "system", "value": "Be brief."},
            {"from": "human", "value": "2+2?"},
            {"from": "function_call", "value": json.dumps({"name": "calc", "arguments": {"expr": "2+2"}})},
            {"from": "observation", "value": "4"},
            {"from": "gpt", "value": "4"},
        ]
    }
    assert detect_trace_type([row]) == "sharegpt"
    (ex,) = _load(_write(tmp_path / "sharegpt.jsonl", [row]))
    assert [m.role for m in ex.messages] == ["system", "user", "assistant", "tool", "assistant"]
    call = ex.messages[2].tool_calls[0]
    assert call.function.arguments == {"expr": "2+2"} and ex.messages[3].tool_call_id == call.id
    assert ex.messages[3].name == "calc"


def test_max_examples(tmp_path):
    path = _write(tmp_path / "chat.jsonl", [CHAT_ROW] * 5)
    assert len(load_traces(path, max_examples=2)) == 2
