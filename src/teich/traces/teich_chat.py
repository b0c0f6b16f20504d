"""Rows written by Teich's ``chat`` provider: ``{"messages", "system", "prompt", "thinking",
"response", "model"}``, where each message's ``thinking`` is the assistant's reasoning."""

from __future__ import annotations

from typing import Any

from teich.schema import TrainingExample
from teich.traces import openai

NAME = "teich_chat"
PER_ROW = True


def matches(records: list[dict[str, Any]]) -> bool:
    return bool(records) and "response" in records[0] and ("messages" in records[0] or "prompt" in records[0])


def convert(records: list[dict[str, Any]]) -> TrainingExample | None:
    (row,) = records
    if not row.get("messages"):
        messages = [{"role": "system", "content": row.get("system")}] if row.get("system") else []
        messages += [
            {"role": "user", "content": row.get("prompt")},
            {"role": "assistant", "content": row.get("response"), "thinking": row.get("thinking")},
        ]
        row = {**row, "messages": messages}
    metadata = {"model": row.get("model"), **(row.get("metadata") or {})}
    return openai.convert([{**row, "metadata": metadata}], NAME)
