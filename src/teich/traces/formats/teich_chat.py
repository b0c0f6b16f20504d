"""Rows written by Teich's ``chat`` provider: ``{"messages", "system", "prompt", "thinking",
"response", "model"}``, where each message's ``thinking`` is the assistant's reasoning."""

from __future__ import annotations

from pathlib import Path

from teich.traces.checks import NULL, check_content, field
from teich.traces.formats.openai import check_row, convert_row
from teich.traces.protocol import Converted, Record, TraceFormat


class TeichChat(TraceFormat):
    name = "teich_chat"
    per_row = True
    priority = 80

    def matches(self, records: list[Record]) -> bool:
        return bool(records) and "response" in records[0] and ("messages" in records[0] or "prompt" in records[0])

    def check(self, record: Record) -> None:
        field(record, "metadata", dict, NULL)
        if record.get("messages"):
            check_row(record)
            return
        for key in ("system", "prompt", "thinking"):
            field(record, key, str, NULL)
        check_content(record.get("response"), "response")

    def convert(self, records: list[Record], path: Path | None = None) -> Converted:
        (row,) = records
        if not row.get("messages"):
            messages = [{"role": "system", "content": row.get("system")}] if row.get("system") else []
            messages += [
                {"role": "user", "content": row.get("prompt")},
                {"role": "assistant", "content": row.get("response"), "thinking": row.get("thinking")},
            ]
            row = {**row, "messages": messages}
        metadata = {"model": row.get("model"), **(row.get("metadata") or {})}
        return convert_row({**row, "metadata": metadata}, self.name)


FORMAT = TeichChat()
