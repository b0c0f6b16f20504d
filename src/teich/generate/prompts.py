"""Reading the prompts of a generation project, in any of four formats chosen by file extension.

- ``.csv``: a header row with a ``prompt`` column and optionally ``system``, ``category``,
  ``github_repo`` and ``follow_up_prompts`` (a JSON list of strings, e.g. ``["And now in Rust?"]``).
- ``.jsonl`` / ``.ndjson``: one JSON object with those keys per line, or a bare JSON string.
- ``.json``: a JSON list of such objects or strings.
- ``.txt``: lines starting with ``#`` are comments. If a blank line separates two prompt lines,
  prompts are blocks separated by blank lines (so a prompt may span lines); otherwise every line
  is one prompt.

Text is stripped, a prompt's ``system`` falls back to the config's ``system_prompt``, and prompts
with the same :func:`key_for` as an earlier one are skipped. A row that cannot be used is skipped
and reported as ``path:line: message``; a file that cannot be read at all raises :class:`TeichError`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, ValidationError
from pydantic_core import PydanticCustomError

from teich.errors import TeichError
from teich.files import read_text

Item = dict[str, Any] | str  # a row's fields, or why the row could not be read
_WHITESPACE = re.compile(r"\s*")


def _skip_whitespace(text: str, position: int) -> int:
    """The position of the first non-space character at or after ``position``."""
    return _WHITESPACE.match(text, position).end()  # type: ignore[union-attr]  # \s* always matches


def _text(value: str) -> str:
    value = value.strip()
    if not value:
        raise PydanticCustomError("empty", "must not be empty")
    return value


def _blank_is_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


Text = Annotated[str, AfterValidator(_text)]
OptionalText = Annotated[Text | None, BeforeValidator(_blank_is_none)]
FollowUps = Annotated[tuple[Text, ...], BeforeValidator(lambda value: () if value is None else value)]


class PromptSpec(BaseModel):
    """One prompt to generate from, with its optional system prompt, follow-ups and labels."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt: Text
    system: OptionalText = None
    follow_up_prompts: FollowUps = ()
    category: OptionalText = None
    github_repo: OptionalText = None

    @property
    def key(self) -> str:
        """The resume key: the same for the same prompt, system prompt and follow-ups."""
        return key_for(self.prompt, self.system, self.follow_up_prompts)


def key_for(prompt: str, system: str | None = None, follow_ups: Sequence[str] = ()) -> str:
    """The resume key of a prompt, its effective system prompt and its follow-ups (also of an output row)."""
    identity = json.dumps([prompt, system or None, list(follow_ups)], ensure_ascii=False)
    return hashlib.sha256(identity.encode()).hexdigest()[:16]


def read_prompts(path: str | Path, *, default_system: str | None = None) -> tuple[list[PromptSpec], list[str]]:
    """The distinct prompts in ``path``, and one ``path:line: message`` line per row skipped."""
    path = Path(path)
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        known = ", ".join(_READERS)
        raise TeichError(f"{path}: unknown prompts format {path.suffix or '(no extension)'!r}; use {known}")
    text = read_text(path, encoding="utf-8-sig")
    specs: list[PromptSpec] = []
    problems: list[str] = []
    first_line: dict[str, int] = {}
    for line, item in reader(text, path):
        spec = _spec(item, default_system)
        if isinstance(spec, str):
            problems.append(f"{path}:{line}: {spec}")
        elif spec.key in first_line:
            problems.append(f"{path}:{line}: duplicate of the prompt on line {first_line[spec.key]}, skipped")
        else:
            first_line[spec.key] = line
            specs.append(spec)
    return specs, problems


def _spec(item: Item, default_system: str | None) -> PromptSpec | str:
    if isinstance(item, str):
        return item
    try:
        spec = PromptSpec.model_validate(item)
    except ValidationError as error:
        return "; ".join(_describe(problem) for problem in error.errors(include_url=False))
    if spec.system is None and default_system and default_system.strip():
        spec = spec.model_copy(update={"system": default_system.strip()})
    return spec


def _describe(problem: Any) -> str:
    key = ".".join(str(part) for part in problem["loc"])
    message = "unknown key" if problem["type"] == "extra_forbidden" else problem["msg"]
    return f"{key}: {message}"


def _fields(value: Any) -> Item:
    """A JSON value as a row: an object as is, a string as its prompt."""
    if isinstance(value, dict):
        return value
    if isinstance(value, str):
        return {"prompt": value}
    return f"expected a prompt string or an object, not {type(value).__name__}"


def _csv_items(text: str, path: Path) -> Iterator[tuple[int, Item]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [name.strip() for name in next(reader, [])]
        if not header:
            return
        if "prompt" not in header:
            raise TeichError(f"{path}:1: no 'prompt' column (columns: {', '.join(header)})")
        known = list(PromptSpec.model_fields)
        unknown = [name for name in header if name and name not in known]
        if unknown:
            raise TeichError(f"{path}:1: unknown columns {', '.join(unknown)}; known: {', '.join(known)}")
        line = reader.line_num + 1
        for cells in reader:
            if any(cell.strip() for cell in cells[len(header) :]):
                yield line, f"{len(cells)} fields but {len(header)} columns"
            elif any(cell.strip() for cell in cells):
                yield line, _csv_fields({name: cell for name, cell in zip(header, cells, strict=False) if name})
            line = reader.line_num + 1
    except csv.Error as error:
        raise TeichError(f"{path}:{reader.line_num}: invalid CSV: {error}") from None


def _csv_fields(row: dict[str, str]) -> Item:
    fields: dict[str, Any] = {name: cell for name, cell in row.items() if cell.strip() or name == "prompt"}
    if "follow_up_prompts" in fields:
        try:
            fields["follow_up_prompts"] = json.loads(fields["follow_up_prompts"])
        except json.JSONDecodeError as error:
            return f'follow_up_prompts: invalid JSON ({error.msg}); write a list such as ["next question"]'
        if not isinstance(fields["follow_up_prompts"], list):
            return "follow_up_prompts: should be a JSON list of strings"
    return fields


def _jsonl_items(text: str, path: Path) -> Iterator[tuple[int, Item]]:
    for line, content in enumerate(text.splitlines(), start=1):
        if not content.strip():
            continue
        try:
            value = json.loads(content)
        except json.JSONDecodeError as error:
            yield line, f"invalid JSON: {error.msg} (column {error.colno})"
        else:
            yield line, _fields(value)


def _json_items(text: str, path: Path) -> Iterator[tuple[int, Item]]:
    """The items of a JSON list, each with the line it starts on."""
    try:
        values = json.loads(text)
    except json.JSONDecodeError as error:
        raise TeichError(f"{path}:{error.lineno}: invalid JSON: {error.msg}") from None
    if not isinstance(values, list):
        raise TeichError(f"{path}: should be a JSON list of prompts, not {type(values).__name__}")
    decoder = json.JSONDecoder()
    position, line = text.index("[") + 1, text.count("\n", 0, text.index("[")) + 1
    for value in values:
        start = _skip_whitespace(text, position)
        line += text.count("\n", position, start)
        yield line, _fields(value)
        _, end = decoder.raw_decode(text, start)
        line += text.count("\n", start, end)
        position = _skip_whitespace(text, end) + 1  # past the comma


def _text_items(text: str, path: Path) -> Iterator[tuple[int, Item]]:
    lines = [(number, content.rstrip()) for number, content in enumerate(text.splitlines(), start=1)]
    lines = [(number, content) for number, content in lines if not content.startswith("#")]
    while lines and not lines[0][1].strip():
        lines.pop(0)
    while lines and not lines[-1][1].strip():
        lines.pop()
    if not any(not content.strip() for _, content in lines):
        yield from ((number, {"prompt": content}) for number, content in lines)
        return
    block: list[tuple[int, str]] = []
    for number, content in [*lines, (0, "")]:
        if content.strip():
            block.append((number, content))
        elif block:
            yield block[0][0], {"prompt": "\n".join(content for _, content in block)}
            block = []


_READERS: Mapping[str, Callable[[str, Path], Iterator[tuple[int, Item]]]] = MappingProxyType(
    {
        ".csv": _csv_items,
        ".jsonl": _jsonl_items,
        ".ndjson": _jsonl_items,
        ".json": _json_items,
        ".txt": _text_items,
    }
)
