"""The dataset card (``README.md``) and ``tools.json`` written beside generated rows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from teich.files import write_json_atomic, write_text_atomic
from teich.generate.config import Config
from teich.generate.output import cannot_write

CARD = "README.md"
TOOLS = "tools.json"


def card_tags(config: Config) -> list[str]:
    """Hub tags: conversational data for ``chat``, agent traces for the agent providers."""
    model = config.model.model
    if config.agent.provider == "chat":
        return ["conversational", "distillation", "teich", model]
    return ["agent-traces", config.agent.provider, "distillation", model, "teich"]


def render_card(config: Config, rows: list[dict[str, Any]], files: list[str], failed: int) -> str:
    """The card's text: front matter, counts, provider and model, an example row, how to load it."""
    name = config.output.pretty_name or f"{config.model.model} {config.agent.provider} traces"
    front = {"pretty_name": name, "tags": card_tags(config), "task_categories": ["text-generation"]}
    if config.agent.provider == "chat":  # rows the datasets library reads; native agent sessions it cannot
        front["configs"] = [{"config_name": "default", "data_files": [{"split": "train", "path": files[0]}]}]
    example = json.dumps(rows[0], ensure_ascii=False, indent=2) if rows else "(no rows yet)"
    reasoning = sum(1 for row in rows if row.get("thinking"))
    return f"""---
{yaml.safe_dump(front, sort_keys=False, allow_unicode=True).strip()}
---

# {name}

Generated with [Teich](https://pypi.org/project/teich/) (`teich generate`).

| | |
| --- | --- |
| rows | {len(rows)} |
| rows with reasoning | {reasoning} |
| prompts that failed | {failed} |
| provider | `{config.agent.provider}` ({config.api.wire_api} API, {config.api.provider}) |
| model | `{config.model.model}` |

## Example row

```json
{example}
```

## Load it

```python
from teich import load_traces, prepare_data

rows = load_traces("<this dataset's repo id or folder>")
train = prepare_data("<this dataset's repo id or folder>", tokenizer, tokenize=True)
```
"""


def write_card(config: Config, folder: Path, rows: list[dict[str, Any]], files: list[str], failed: int) -> None:
    """Write ``README.md``, and ``tools.json`` when the rows offered tools."""
    try:
        write_text_atomic(folder / CARD, render_card(config, rows, files, failed))
        tools = _tools(rows)
        if tools:
            write_json_atomic(folder / TOOLS, tools)
    except OSError as error:
        raise cannot_write(folder, error) from None


def _tools(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for row in rows:
        for tool in row.get("tools") or []:
            seen.setdefault(json.dumps(tool, sort_keys=True), tool)
    return list(seen.values())
