"""The scripted OpenAI double speaks both wire protocols well enough for the real ``openai`` SDK."""

from __future__ import annotations

import asyncio
import json
import time

import openai
import pytest
from openai.types.responses import (
    ResponseCompletedEvent,
    ResponseCreatedEvent,
    ResponseReasoningSummaryTextDeltaEvent,
    ResponseTextDeltaEvent,
)
from openai_server import FAST_RETRY, Fault, Reply, ScriptedServer, Usage, scripted_servers

MESSAGES = [{"role": "user", "content": "Say hello."}]
CALL = {"id": "call_1", "name": "read_file", "arguments": {"path": "src/a.py"}}


@pytest.fixture
def scripted_server():
    with scripted_servers() as make:
        yield make


_clients: list[openai.OpenAI] = []


@pytest.fixture(autouse=True)
def _close_clients():
    yield
    while _clients:
        _clients.pop().close()


def client(server: ScriptedServer, **options) -> openai.OpenAI:
    """A sync client for ``server`` (no retries unless asked), closed after the test."""
    options.setdefault("max_retries", 0)
    options.setdefault("api_key", "sk-test")
    _clients.append(openai.OpenAI(base_url=server.base_url, **options))
    return _clients[-1]


def async_client(server: ScriptedServer, **options) -> openai.AsyncOpenAI:
    options.setdefault("max_retries", 0)
    return openai.AsyncOpenAI(base_url=server.base_url, api_key="sk-test", **options)


# -- Chat Completions -------------------------------------------------------------------------------


def test_chat_completion_with_reasoning_and_usage(scripted_server):
    reply = Reply(content="Hello there.", reasoning="The user wants a greeting.", usage=Usage(cached_tokens=3))
    server = scripted_server([reply])
    completion = client(server).chat.completions.create(model="m-1", messages=MESSAGES)

    assert completion.object == "chat.completion"
    assert completion.model == "m-1"
    choice = completion.choices[0]
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    assert choice.message.content == "Hello there."
    # Extra fields survive on the pydantic model: as an attribute and in model_extra.
    assert choice.message.reasoning_content == "The user wants a greeting."
    assert choice.message.model_extra == {"reasoning_content": "The user wants a greeting."}
    usage = completion.usage
    # The double counts words and punctuation: "The user wants a greeting." is 6, "Hello there." is 3.
    assert usage.completion_tokens_details.reasoning_tokens == 6
    assert usage.completion_tokens == 3 + 6  # content + reasoning
    assert usage.prompt_tokens == 3  # "Say hello."
    assert usage.prompt_tokens_details.cached_tokens == 3
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens

    (request,) = server.requests
    assert request.method == "POST" and request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer sk-test"
    assert request.body == {"model": "m-1", "messages": MESSAGES}
    assert server.bodies == [request.body]
    assert server.remaining == 0 and server.errors == []


def test_chat_stream_with_usage_chunk(scripted_server):
    server = scripted_server(
        [Reply(content="Hello there, friend.", reasoning="Greet them.", usage={"prompt_tokens": 7})]
    )
    stream = client(server).chat.completions.create(
        model="m", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)

    assert all(chunk.object == "chat.completion.chunk" for chunk in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    reasoning = "".join(
        (c.choices[0].delta.model_extra or {}).get("reasoning_content", "") for c in chunks if c.choices
    )
    assert content == "Hello there, friend."
    assert reasoning == "Greet them."
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 1  # really streamed
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    *body, last = chunks
    assert last.choices == [] and last.usage.prompt_tokens == 7 and last.usage.total_tokens == 7 + 5 + 3
    assert all(chunk.usage is None for chunk in body)

    with pytest.raises(openai.InternalServerError, match="script exhausted"):  # raised by create(), before any chunk
        client(server).chat.completions.create(model="m", messages=MESSAGES, stream=True)
    assert server.errors == ["script exhausted after 1 entries"]


def test_chat_stream_without_usage_and_chunk_size(scripted_server):
    server = scripted_server([Reply(content="abcdefg", chunk_size=3)])
    chunks = list(client(server).chat.completions.create(model="m", messages=MESSAGES, stream=True))
    assert [c.choices[0].delta.content for c in chunks][1:4] == ["abc", "def", "g"]
    assert all(c.usage is None and c.choices for c in chunks)


def test_openrouter_reasoning_field(scripted_server):
    server = scripted_server([Reply(content="ok", reasoning="why")] * 2, reasoning_field="reasoning")
    message = client(server).chat.completions.create(model="m", messages=MESSAGES).choices[0].message
    assert message.reasoning == "why" and "reasoning_content" not in message.model_extra
    chunks = list(client(server).chat.completions.create(model="m", messages=MESSAGES, stream=True))
    assert "".join(getattr(c.choices[0].delta, "reasoning", None) or "" for c in chunks) == "why"


def test_chat_tool_calls(scripted_server):
    other = {"id": "call_2", "type": "function", "function": {"name": "ls", "arguments": "{}"}}
    server = scripted_server([Reply(tool_calls=[CALL, other])] * 2)
    message = client(server).chat.completions.create(model="m", messages=MESSAGES).choices[0]
    assert message.finish_reason == "tool_calls"
    assert message.message.content is None
    calls = message.message.tool_calls
    assert [(c.id, c.type, c.function.name) for c in calls] == [
        ("call_1", "function", "read_file"),
        ("call_2", "function", "ls"),
    ]
    assert json.loads(calls[0].function.arguments) == {"path": "src/a.py"}

    assembled: dict[int, dict] = {}
    finish = None
    for chunk in client(server).chat.completions.create(model="m", messages=MESSAGES, stream=True):
        choice = chunk.choices[0]
        finish = choice.finish_reason or finish
        for delta in choice.delta.tool_calls or ():
            slot = assembled.setdefault(delta.index, {"id": None, "name": None, "arguments": ""})
            slot["id"] = delta.id or slot["id"]
            slot["name"] = (delta.function.name if delta.function else None) or slot["name"]
            slot["arguments"] += (delta.function.arguments if delta.function else None) or ""
    assert finish == "tool_calls"
    assert assembled == {
        0: {"id": "call_1", "name": "read_file", "arguments": '{"path": "src/a.py"}'},
        1: {"id": "call_2", "name": "ls", "arguments": "{}"},
    }


# -- Responses --------------------------------------------------------------------------------------


def test_responses_create(scripted_server):
    reply = Reply(
        content="Done.", reasoning="Plan it.", tool_calls=[CALL], usage={"input_tokens": 11, "cached_tokens": 4}
    )
    server = scripted_server([reply])
    response = client(server).responses.create(model="m", input="hi", reasoning={"effort": "high", "summary": "auto"})

    assert response.object == "response" and response.status == "completed" and response.model == "m"
    assert [item.type for item in response.output] == ["reasoning", "message", "function_call"]
    reasoning, message, call = response.output
    assert [(s.type, s.text) for s in reasoning.summary] == [("summary_text", "Plan it.")]
    assert message.role == "assistant" and message.status == "completed"
    assert [(c.type, c.text, c.annotations) for c in message.content] == [("output_text", "Done.", [])]
    assert response.output_text == "Done."
    assert (call.call_id, call.name, json.loads(call.arguments)) == ("call_1", "read_file", {"path": "src/a.py"})
    usage = response.usage
    assert usage.input_tokens == 11 and usage.input_tokens_details.cached_tokens == 4
    assert usage.output_tokens_details.reasoning_tokens == 3
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    assert response.reasoning.effort == "high"
    assert server.requests[0].path == "/v1/responses"


def test_responses_stream_helper(scripted_server):
    server = scripted_server([Reply(content="Hello there, friend.", reasoning="Greet them warmly.")])
    with client(server).responses.stream(model="m", input="hi") as stream:
        events = list(stream)
        final = stream.get_final_response()

    types = [event.type for event in events]
    assert types[:3] == ["response.created", "response.in_progress", "response.output_item.added"]
    assert types[-1] == "response.completed"
    for expected in (
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.done",
        "response.reasoning_summary_part.done",
        "response.content_part.added",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
    ):
        assert expected in types
    assert [event.sequence_number for event in events] == list(range(len(events)))
    text_deltas = [e for e in events if e.type == "response.output_text.delta"]
    assert len(text_deltas) > 1 and text_deltas[-1].snapshot == "Hello there, friend."
    summary = "".join(e.delta for e in events if e.type == "response.reasoning_summary_text.delta")
    assert summary == "Greet them warmly."
    assert final.output_text == "Hello there, friend."
    assert final.output[0].summary[0].text == "Greet them warmly."
    assert final.usage.output_tokens_details.reasoning_tokens == 4


def test_responses_raw_stream_events_parse(scripted_server):
    server = scripted_server([Reply(content="Hi you", reasoning="Think", tool_calls=[CALL])])
    events = list(client(server).responses.create(model="m", input="hi", stream=True))
    assert isinstance(events[0], ResponseCreatedEvent) and events[0].response.status == "in_progress"
    assert isinstance(events[-1], ResponseCompletedEvent)
    assert any(isinstance(e, ResponseTextDeltaEvent) for e in events)
    assert any(isinstance(e, ResponseReasoningSummaryTextDeltaEvent) for e in events)
    arguments = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    assert json.loads(arguments) == {"path": "src/a.py"}
    final = events[-1].response
    assert [item.type for item in final.output] == ["reasoning", "message", "function_call"]
    assert final.usage.total_tokens > 0


def test_strict_reasoning_summary(scripted_server):
    server = scripted_server([Reply(content="a", reasoning="secret")] * 2, strict_reasoning_summary=True)
    plain = client(server).responses.create(model="m", input="hi")
    asked = client(server).responses.create(model="m", input="hi", reasoning={"summary": "auto"})
    assert plain.output[0].type == "reasoning" and plain.output[0].summary == []
    assert asked.output[0].summary[0].text == "secret"


# -- async ------------------------------------------------------------------------------------------


def test_async_client_both_protocols(scripted_server):
    server = scripted_server(lambda body: Reply(content=f"echo {len(body.get('messages') or [])}", reasoning="r"))

    async def main():
        async with async_client(server) as api:
            completion = await api.chat.completions.create(model="m", messages=MESSAGES)
            stream = await api.chat.completions.create(model="m", messages=MESSAGES, stream=True)
            streamed = "".join([c.choices[0].delta.content or "" async for c in stream])
            response = await api.responses.create(model="m", input="hi")
            async with api.responses.stream(model="m", input="hi") as events:
                kinds = [event.type async for event in events]
                final = await events.get_final_response()
            return completion, streamed, response, kinds, final

    completion, streamed, response, kinds, final = asyncio.run(main())
    assert completion.choices[0].message.content == "echo 1"
    assert completion.choices[0].message.reasoning_content == "r"
    assert streamed == "echo 1"
    assert response.output_text == "echo 0" and response.output[0].summary[0].text == "r"
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert final.output_text == "echo 0"
    assert server.remaining is None and len(server.requests) == 4


def test_max_in_flight_counts_concurrent_requests(scripted_server):
    server = scripted_server([Reply(content="x", delay=0.2)] * 6)

    async def burst(count: int, limit: int) -> float:
        gate = asyncio.Semaphore(limit)
        async with async_client(server) as api:

            async def one():
                async with gate:
                    await api.chat.completions.create(model="m", messages=MESSAGES)

            start = time.monotonic()
            await asyncio.gather(*(one() for _ in range(count)))
            return time.monotonic() - start

    assert asyncio.run(burst(4, limit=4)) < 0.8 - 0.05  # 4 x 0.2 s serially
    assert server.max_in_flight == 4 and server.in_flight == 0
    server.reset()
    asyncio.run(burst(2, limit=1))
    assert server.max_in_flight == 1 and server.requests and server.remaining == 0


# -- faults -----------------------------------------------------------------------------------------


def test_rate_limit_then_success_is_retried(scripted_server):
    server = scripted_server([Fault(status=429, headers=FAST_RETRY), Fault(status=503, headers=FAST_RETRY), "fine"])
    completion = client(server, max_retries=2).chat.completions.create(model="m", messages=MESSAGES)
    assert completion.choices[0].message.content == "fine"
    retries = [r.headers.get("x-stainless-retry-count") for r in server.requests]
    assert retries == ["0", "1", "2"]


def test_rate_limit_error_body(scripted_server):
    server = scripted_server([Fault(status=429, headers={"retry-after": "7"})])
    with pytest.raises(openai.RateLimitError) as caught:
        client(server).chat.completions.create(model="m", messages=MESSAGES)
    assert caught.value.status_code == 429 and caught.value.code == "rate_limit_exceeded"
    assert caught.value.response.headers["retry-after"] == "7"


def test_server_error_without_retries(scripted_server):
    server = scripted_server([Fault(status=500, body={"error": {"message": "boom", "type": "server_error"}})])
    with pytest.raises(openai.InternalServerError, match="boom") as caught:
        client(server).responses.create(model="m", input="hi")
    assert caught.value.status_code == 500 and len(server.requests) == 1


def test_timeout_and_fast_shutdown():
    with ScriptedServer([Fault(delay=5.0), Fault(delay=5.0)]) as server:
        api = client(server, timeout=0.2)
        start = time.monotonic()
        with pytest.raises(openai.APITimeoutError):
            api.chat.completions.create(model="m", messages=MESSAGES)
        assert time.monotonic() - start < 2
        with pytest.raises(openai.APITimeoutError):
            api.chat.completions.create(model="m", messages=MESSAGES, stream=True)
        start = time.monotonic()
    assert time.monotonic() - start < 1.5  # close() wakes the still-sleeping handlers


def test_slow_success_and_stream_delay(scripted_server):
    server = scripted_server([Fault(delay=0.1, reply=Reply(content="late")), Reply(content="a b c", stream_delay=0.05)])
    start = time.monotonic()
    assert client(server).chat.completions.create(model="m", messages=MESSAGES).choices[0].message.content == "late"
    assert time.monotonic() - start >= 0.1
    start = time.monotonic()
    list(client(server).chat.completions.create(model="m", messages=MESSAGES, stream=True))
    assert time.monotonic() - start >= 0.15  # 4 gaps of 0.05 s between 5 chunks


def test_malformed_body_is_an_error(scripted_server):
    server = scripted_server([Fault(malformed=True)] * 4)
    api = client(server)
    # The SDK does not wrap these: invalid JSON surfaces as json.JSONDecodeError (a ValueError).
    with pytest.raises(json.JSONDecodeError):
        api.chat.completions.create(model="m", messages=MESSAGES)
    with pytest.raises(json.JSONDecodeError):
        api.responses.create(model="m", input="hi")
    # Streaming: the first event is valid, the second is not.
    chunks = []
    with pytest.raises(json.JSONDecodeError):
        chunks.extend(api.chat.completions.create(model="m", messages=MESSAGES, stream=True))
    assert [c.choices[0].delta.role for c in chunks] == ["assistant"]
    events = []
    with pytest.raises(json.JSONDecodeError):
        events.extend(api.responses.create(model="m", input="hi", stream=True))
    assert [e.type for e in events] == ["response.created"]
    assert server.errors == []


def test_disconnect_is_a_connection_error(scripted_server):
    server = scripted_server([Fault(disconnect=True)] * 4)
    api = client(server)
    with pytest.raises(openai.APIConnectionError):
        api.chat.completions.create(model="m", messages=MESSAGES)
    with pytest.raises(openai.APIConnectionError):
        api.responses.create(model="m", input="hi")
    # Streaming: the headers and the first event arrive, then the chunked body is cut off.
    chunks = []
    with pytest.raises(openai.APIConnectionError):
        chunks.extend(api.chat.completions.create(model="m", messages=MESSAGES, stream=True))
    assert [c.choices[0].delta.role for c in chunks] == ["assistant"]
    events = []
    with pytest.raises(openai.APIConnectionError):
        events.extend(api.responses.create(model="m", input="hi", stream=True))
    assert [e.type for e in events] == ["response.created"]
    assert server.errors == []


# -- the rest of the surface ------------------------------------------------------------------------


def test_models_auth_validation_and_script_errors(scripted_server):
    def script(body):
        if body["model"] == "bad":
            raise RuntimeError("no such reply")
        return "ok"

    server = scripted_server(script, models=["a", "b"], api_key="sk-test")
    api = client(server)
    assert [model.id for model in api.models.list()] == ["a", "b"]
    assert api.models.retrieve("b").object == "model"
    with pytest.raises(openai.NotFoundError):
        api.models.retrieve("c")
    with pytest.raises(openai.AuthenticationError):
        client(server, api_key="wrong").models.list()
    with pytest.raises(openai.BadRequestError, match="messages"):
        api.chat.completions.create(model="m", messages=[])
    with pytest.raises(openai.InternalServerError, match="no such reply"):
        client(server, max_retries=2).chat.completions.create(model="bad", messages=MESSAGES)
    assert len([r for r in server.requests if r.body and r.body.get("model") == "bad"]) == 1  # not retried
    assert "RuntimeError: no such reply" in server.errors[0]
    assert api.chat.completions.create(model="m", messages=MESSAGES).choices[0].message.content == "ok"


def test_set_script_and_extend():
    with ScriptedServer() as server:
        server.set_script(["one"])
        server.extend(Reply(content="two"), lambda body: Reply(content=body["model"]))
        api = client(server)
        got = [api.chat.completions.create(model="m3", messages=MESSAGES).choices[0].message.content for _ in range(3)]
        assert got == ["one", "two", "m3"]
        assert server.remaining == 0
