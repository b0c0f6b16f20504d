"""The ``chat`` provider: prompts sent straight to an OpenAI-compatible API with the official SDK.

Both wire APIs are spoken: Chat Completions (reasoning read from the ``reasoning_content`` or
``reasoning`` field that DeepSeek, vLLM and OpenRouter add) and the Responses API (reasoning read
from the reasoning summaries). Each prompt, with its follow-ups, becomes one text-only training row.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any, ClassVar

import openai

from teich.errors import GenerationError, first_line
from teich.generate.config import Config, ModelConfig
from teich.generate.output import RowLog
from teich.generate.prompts import PromptSpec, key_for

# Worth another attempt: rate limits, server errors, timeouts, dropped connections, broken bodies
# (the SDK lets a body that is not JSON through as a bare JSONDecodeError).
ROWS_FILE = "train.jsonl"
_RETRYABLE = (
    openai.RateLimitError,
    openai.InternalServerError,
    openai.APITimeoutError,
    openai.APIConnectionError,
    json.JSONDecodeError,
)


@dataclass
class Turn:
    content: str
    reasoning: str | None
    usage: dict[str, int] = field(default_factory=dict)
    cost: float | None = None


def row_key(row: dict[str, Any]) -> str:
    """The resume key of an output row: its prompt, system prompt and follow-ups."""
    return key_for(row.get("prompt", ""), row.get("system"), row.get("follow_up_prompts") or ())


class ChatProvider:
    """Runs prompts through one OpenAI-compatible endpoint; rows go to ``<traces_dir>/train.jsonl``."""

    name: ClassVar[str] = "chat"
    attempts = 1  # each request is retried on its own (``retry.*``), never the whole conversation

    def __init__(self, config: Config) -> None:
        self.config = config
        self.log = RowLog(config.output.traces_dir / ROWS_FILE)
        self._client: openai.AsyncOpenAI | None = None

    @property
    def client(self) -> openai.AsyncOpenAI:
        """The SDK client, made on first use (planning and dry runs need no key)."""
        if self._client is None:
            self._client = openai.AsyncOpenAI(
                base_url=self.config.base_url,
                api_key=self.config.api_key(),
                max_retries=0,  # retries are ours, so that every attempt is counted and reported
                timeout=self.config.retry.timeout_seconds,
            )
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()

    def existing(self) -> int:
        return len(self.log.rows())

    def recover(self) -> None:
        """Move the rows an earlier run could not write into the rows file."""
        self.log.recover()

    def done_keys(self) -> set[str]:
        return {row_key(row) for row in self.log.rows() if _complete(row)}

    def rows(self) -> list[dict[str, Any]]:
        return self.log.rows()

    def output_files(self) -> list[str]:
        return [ROWS_FILE]

    async def run(self, spec: PromptSpec) -> dict[str, Any]:
        """Ask a prompt and its follow-ups in one conversation, append the row; return its metadata."""
        return self.keep(spec, await self.produce(spec))

    async def produce(self, spec: PromptSpec) -> dict[str, Any]:
        """The prompt's row (:meth:`conversation`), written nowhere."""
        return await self.conversation(spec)

    def keep(self, spec: PromptSpec, produced: dict[str, Any]) -> dict[str, Any]:
        """Append the row ``produced`` for ``spec``; return its metadata."""
        self.log.append(produced)
        metadata: dict[str, Any] = produced["metadata"]
        return metadata

    async def conversation(self, spec: PromptSpec) -> dict[str, Any]:
        """The training row for a prompt and its follow-ups, asked in order in one conversation."""
        # stripped as the prompt reader strips it, so that the row keys back to its prompt (``row_key``)
        system = spec.system if spec.system is not None else (self.config.system_prompt or "").strip() or None
        messages: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
        usage: dict[str, int] = {}
        cost = 0.0
        for prompt in (spec.prompt, *spec.follow_up_prompts):
            messages.append({"role": "user", "content": prompt})
            turn = await self._with_retries(messages)
            messages.append({"role": "assistant", "content": turn.content, "thinking": turn.reasoning})
            for key, value in turn.usage.items():
                usage[key] = usage.get(key, 0) + value
            cost += turn.cost or 0.0
        return self._row(spec, system, messages, usage, cost)

    def _row(
        self, spec: PromptSpec, system: str | None, messages: list[dict[str, Any]], usage: dict[str, int], cost: float
    ) -> dict[str, Any]:
        last = messages[-1]
        row = {
            "messages": [{"thinking": None, **m} for m in messages],
            "system": system,
            "prompt": spec.prompt,
            "thinking": last["thinking"],
            "response": last["content"],
            "model": self.config.model.model,
            "metadata": {"provider": self.config.api.provider, "wire_api": self.config.api.wire_api, "usage": usage},
        }
        if cost:
            row["metadata"]["cost"] = round(cost, 8)
        if spec.follow_up_prompts:
            row["follow_up_prompts"] = list(spec.follow_up_prompts)
        if spec.category:
            row["category"] = spec.category
        return row

    async def _with_retries(self, messages: list[dict[str, Any]]) -> Turn:
        retry = self.config.retry
        for attempt in range(1, retry.max_attempts + 1):
            try:
                return await self._ask(messages)
            except _RETRYABLE as error:
                if attempt == retry.max_attempts:
                    raise GenerationError(f"gave up after {attempt} attempts: {_describe(error)}") from None
                await asyncio.sleep(retry.backoff_seconds * 2 ** (attempt - 1))
            except (openai.APIError, ValueError) as error:  # 4xx other than 429, or a body we cannot read
                raise GenerationError(_describe(error)) from None
        raise AssertionError("unreachable")

    async def _ask(self, messages: list[dict[str, Any]]) -> Turn:
        if self.config.api.wire_api == "responses":
            return await self._ask_responses(messages)
        return await self._ask_chat(messages)

    async def _ask_chat(self, messages: list[dict[str, Any]]) -> Turn:
        model = self.config.model
        options = _sampling(model, "max_tokens")
        if model.reasoning_effort is not None:
            options["reasoning_effort"] = model.reasoning_effort
        plain: Any = [{"role": m["role"], "content": m["content"]} for m in messages]  # the SDK's message dicts
        create = self.client.chat.completions.create
        if self.config.api.stream:
            chunks = await create(
                model=model.model, messages=plain, stream=True, stream_options={"include_usage": True}, **options
            )
            return await _chat_stream_turn(chunks)
        completion = await create(model=model.model, messages=plain, **options)
        if not completion.choices:
            raise ValueError("the response has no choices")
        message = completion.choices[0].message
        return Turn(
            message.content or "", _reasoning_of(message), _chat_usage(completion.usage), _cost(completion.usage)
        )

    async def _ask_responses(self, messages: list[dict[str, Any]]) -> Turn:
        model = self.config.model
        options = _sampling(model, "max_output_tokens")
        if model.reasoning_effort is not None:
            options["reasoning"] = {"effort": model.reasoning_effort, "summary": "auto"}
        instructions = next((m["content"] for m in messages if m["role"] == "system"), None)
        turns = [{"role": m["role"], "content": m["content"]} for m in messages if m["role"] != "system"]
        request = {"model": model.model, "input": turns, "instructions": instructions, **options}
        if self.config.api.stream:
            async with self.client.responses.stream(**request) as events:
                response = await events.get_final_response()
        else:
            response = await self.client.responses.create(**request)
        summaries = [part.text for item in response.output if item.type == "reasoning" for part in item.summary or []]
        usage = response.usage
        tokens = {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens} if usage else {}
        return Turn(response.output_text, "\n\n".join(summaries) or None, tokens, _cost(usage))


PROVIDER = ChatProvider  # registered as ``chat`` (see :mod:`teich.generate.providers`)


def _sampling(model: ModelConfig, max_tokens_key: str) -> dict[str, Any]:
    """The sampling options the config sets; the token limit under the wire API's own name."""
    options: dict[str, Any] = {}
    if model.temperature is not None:
        options["temperature"] = model.temperature
    if model.max_tokens is not None:
        options[max_tokens_key] = model.max_tokens
    return options


async def _chat_stream_turn(chunks: Any) -> Turn:
    """A streamed Chat Completions reply, its content and reasoning deltas joined."""
    content, reasoning, usage = [], [], None
    async for chunk in chunks:
        usage = chunk.usage or usage
        for choice in chunk.choices:
            content.append(choice.delta.content or "")
            reasoning.append(_reasoning_of(choice.delta) or "")
    return Turn("".join(content), "".join(reasoning) or None, _chat_usage(usage), _cost(usage))


def _reasoning_of(message: Any) -> str | None:
    """Reasoning in the field DeepSeek and vLLM (``reasoning_content``) or OpenRouter (``reasoning``) add."""
    extra = message.model_extra or {}
    return extra.get("reasoning_content") or extra.get("reasoning") or None


def _chat_usage(usage: Any) -> dict[str, int]:
    return {"input_tokens": usage.prompt_tokens, "output_tokens": usage.completion_tokens} if usage else {}


def _complete(row: dict[str, Any]) -> bool:
    messages = row.get("messages") or []
    return bool(messages) and messages[-1].get("role") == "assistant"


def _cost(usage: Any) -> float | None:
    """The cost some servers report in the usage object (OpenRouter's ``usage.cost``)."""
    extra = getattr(usage, "model_extra", None) or {}
    cost = extra.get("cost")
    return float(cost) if isinstance(cost, (int, float)) else None


def _describe(error: Exception) -> str:
    status = getattr(error, "status_code", None)
    prefix = f"HTTP {status}: " if status else ""
    return prefix + first_line(error, typed=True)
