"""The dataset card (``README.md``) and ``tools.json`` written beside generated rows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from teich.files import write_json_atomic, write_text_atomic
from teich.generate.agents.provider import AgentCli
from teich.generate.config import Config
from teich.generate.output import cannot_write
from teich.generate.providers import PROVIDERS
from teich.traces.sources import TOOLS_SNAPSHOT

CARD = "README.md"
#: How a card tells its reader to load the dataset with Teich.
LOAD_SECTION = """## Load it

```python
from teich import load_traces, prepare_data

rows = load_traces("<this dataset's repo id or folder>")
train = prepare_data("<this dataset's repo id or folder>", tokenizer, tokenize=True)
```
"""


def card_tags(config: Config) -> list[str]:
    """Hub tags: conversational data for ``chat``, agent traces for the agent providers."""
    model = config.model.model
    if config.agent.provider == "chat":
        return ["conversational", "distillation", "teich", model]
    return ["agent-traces", config.agent.provider, "distillation", model, "teich"]


def provider_line(config: Config) -> str:
    """How the rows were made: for ``chat``, the wire API and ``api.provider``; for an agent provider, the
    agent CLI and its pinned version, the API it speaks and ``api.provider``."""
    provider = PROVIDERS[config.agent.provider]
    if isinstance(provider, AgentCli):
        return f"{provider.describe(config)}, {config.api.provider}"
    return f"{config.api.wire_api} API, {config.api.provider}"


def front_matter(front: dict[str, Any]) -> str:
    """A card's YAML front matter, between its ``---`` lines."""
    return f"---\n{yaml.safe_dump(front, sort_keys=False, allow_unicode=True).strip()}\n---\n"


def render_card(config: Config, rows: list[dict[str, Any]], files: list[str], failed: int) -> str:
    """The card's text: front matter, counts, provider and model, an example row, how to load it."""
    name = config.output.pretty_name or f"{config.model.model} {config.agent.provider} traces"
    front: dict[str, Any] = {"pretty_name": name, "tags": card_tags(config), "task_categories": ["text-generation"]}
    if config.agent.provider == "chat":  # rows the datasets library reads; native agent sessions it cannot
        front["configs"] = [{"config_name": "default", "data_files": [{"split": "train", "path": files[0]}]}]
    example = json.dumps(rows[0], ensure_ascii=False, indent=2) if rows else "(no rows yet)"
    reasoning = sum(1 for row in rows if row.get("thinking"))
    return f"""{front_matter(front)}
# {name}

Generated with [Teich](https://pypi.org/project/teich/) (`teich generate`).

| | |
| --- | --- |
| rows | {len(rows)} |
| rows with reasoning | {reasoning} |
| prompts that failed | {failed} |
| provider | `{config.agent.provider}` ({provider_line(config)}) |
| model | `{config.model.model}` |

## Example row

```json
{example}
```

{LOAD_SECTION}"""


def write_card(
    config: Config, folder: str | Path, rows: list[dict[str, Any]], files: list[str], *, failed: int = 0
) -> None:
    """Write the dataset card (``README.md``) into ``folder``, and ``tools.json`` when the rows offered tools.

    ``config`` is the project's :class:`~teich.generate.config.Config` (the card shows its provider and
    model, and ``output.pretty_name``); ``rows`` are the generated rows as standalone OpenAI-style dicts
    (counted, the first shown); ``files`` are the data files in ``folder`` (for ``chat``, the first is the
    one the card's ``datasets`` config loads); ``failed`` is how many prompts failed. Raises
    :class:`~teich.errors.OutputError` when ``folder`` cannot be written."""
    folder = Path(folder)
    try:
        write_text_atomic(folder / CARD, render_card(config, rows, files, failed))
        tools = _tools(rows)
        if tools:
            write_json_atomic(folder / TOOLS_SNAPSHOT, tools)
    except OSError as error:
        raise cannot_write(folder, error) from None


def _tools(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for row in rows:
        for tool in row.get("tools") or []:
            seen.setdefault(json.dumps(tool, sort_keys=True), tool)
    return list(seen.values())
