"""The scripted Anthropic double speaks the Messages API well enough for the real ``anthropic`` SDK."""

from __future__ import annotations

import anthropic
import pytest
from anthropic_server import AnthropicServer, Error, Reply

MESSAGES = [{"role": "user", "content": "Say hello."}]
BASH = {"name": "Bash", "description": "Run a command", "input_schema": {"type": "object"}}


@pytest.fixture
def make():
    servers: list[AnthropicServer] = []
    clients: list[anthropic.Anthropic] = []

    def start(script) -> tuple[AnthropicServer, anthropic.Anthropic]:
        servers.append(AnthropicServer(script).start())
        clients.append(anthropic.Anthropic(base_url=servers[-1].base_url, api_key="test-key", max_retries=0))
        return servers[-1], clients[-1]

    yield start
    for client in clients:
        client.close()
    for server in servers:
        server.close()


def test_non_streaming_text(make):
    server, client = make(["Hello there."])
    message = client.messages.create(model="claude-test", max_tokens=100, messages=MESSAGES)

    assert message.type == "message" and message.role == "assistant" and message.model == "claude-test"
    assert [block.text for block in message.content] == ["Hello there."]
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    assert server.bodies == [{"model": "claude-test", "max_tokens": 100, "messages": MESSAGES}]
    headers = server.requests[0].headers
    assert "test-key" in (headers.get("x-api-key"), headers.get("authorization", "").removeprefix("Bearer "))


def test_streaming_text(make):
    text = "A longer reply, streamed in several text deltas."
    server, client = make([Reply(text, chunk_size=5)])
    with client.messages.stream(model="claude-test", max_tokens=100, messages=MESSAGES) as stream:
        events = [event.type for event in stream]
        message = stream.get_final_message()

    assert events[0] == "message_start" and events[-1] == "message_stop"
    assert events.count("text") == -(-len(text) // 5)  # one SDK "text" event per text_delta
    assert {"content_block_start", "content_block_stop", "message_delta"} <= set(events)
    assert message.content[0].text == text and message.stop_reason == "end_turn"
    assert server.bodies[0]["stream"] is True


def test_tool_use_round_trip(make):
    call = {"type": "tool_use", "name": "Bash", "input": {"command": "echo hi", "flags": [1, 2]}}
    server, client = make([[{"type": "text", "text": "Running it."}, call], "It printed hi."])

    with client.messages.stream(model="m", max_tokens=100, messages=MESSAGES, tools=[BASH]) as stream:
        first = stream.get_final_message()
    text, tool_use = first.content
    assert text.text == "Running it."
    assert tool_use.type == "tool_use" and tool_use.name == "Bash" and tool_use.id.startswith("toolu_")
    assert tool_use.input == call["input"]
    assert first.stop_reason == "tool_use"

    follow_up = [
        *MESSAGES,
        {"role": "assistant", "content": [block.model_dump() for block in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_use.id, "content": "hi"}]},
    ]
    final = client.messages.create(model="m", max_tokens=100, messages=follow_up, tools=[BASH])
    assert final.content[0].text == "It printed hi." and final.stop_reason == "end_turn"
    assert server.bodies[1]["messages"][2]["content"][0]["tool_use_id"] == tool_use.id


@pytest.mark.parametrize("stream", [False, True])
def test_thinking_blocks(make, stream):
    reply = [
        {"type": "thinking", "thinking": "The user wants a command run."},
        {"type": "redacted_thinking", "data": "opaque"},
        {"type": "tool_use", "id": "toolu_fixed", "name": "Bash", "input": {"command": "ls"}},
    ]
    server, client = make([reply])
    options = {
        "model": "m",
        "max_tokens": 2048,
        "messages": MESSAGES,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
    }
    if stream:
        with client.messages.stream(**options) as events:
            kinds = [event.type for event in events]
            message = events.get_final_message()
        assert "thinking" in kinds and "signature" in kinds and "input_json" in kinds
    else:
        message = client.messages.create(**options)

    thought, redacted, tool_use = message.content
    assert thought.type == "thinking" and thought.thinking == "The user wants a command run."
    assert thought.signature.startswith("sig_")
    assert redacted.type == "redacted_thinking" and redacted.data == "opaque"
    assert tool_use.id == "toolu_fixed" and tool_use.input == {"command": "ls"}


@pytest.mark.parametrize(
    ("entry", "error_class", "kind"),
    [
        (500, anthropic.InternalServerError, "api_error"),
        (Error(529, "Overloaded"), anthropic.InternalServerError, "overloaded_error"),
        (Error(429), anthropic.RateLimitError, "rate_limit_error"),
        (Error(400, "bad"), anthropic.BadRequestError, "invalid_request_error"),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_error_status_raises_the_sdk_error(make, entry, error_class, kind, stream):
    server, client = make([entry])
    with pytest.raises(error_class) as caught:
        if stream:
            with client.messages.stream(model="m", max_tokens=10, messages=MESSAGES) as events:
                events.get_final_message()
        else:
            client.messages.create(model="m", max_tokens=10, messages=MESSAGES)

    status = entry if isinstance(entry, int) else entry.status
    assert caught.value.status_code == status
    assert caught.value.body == {
        "type": "error",
        "error": {"type": kind, "message": caught.value.body["error"]["message"]},
    }


def test_function_script_count_tokens_and_exhaustion(make):
    server, client = make(lambda body: "short" if body.get("tools") else Error(503))
    assert client.messages.create(model="m", max_tokens=10, messages=MESSAGES, tools=[BASH]).content[0].text == "short"
    with pytest.raises(anthropic.APIStatusError):
        client.messages.create(model="m", max_tokens=10, messages=MESSAGES)
    assert client.messages.count_tokens(model="m", messages=MESSAGES).input_tokens > 0
    assert [request.path for request in server.requests][-1] == "/v1/messages/count_tokens"

    server, client = make([])
    with pytest.raises(anthropic.InternalServerError, match="script exhausted"):
        client.messages.create(model="m", max_tokens=10, messages=MESSAGES)
    assert server.errors and server.requests[0].path == "/v1/messages"
