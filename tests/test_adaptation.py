"""The adaptation layer (``template_messages``) against expectations stated by hand, family by family.

The oracle comparison and the "equals ``apply_chat_template``" checks consume the messages *after*
Teich adapted them to a template, so an adaptation that loses content passes both. These tests do not:

- for each of the 10 families, what ``template_messages`` must return for the hard cases (leading
  system + developer messages, reasoning beside tool calls, parallel calls, images, empty content,
  system and developer messages after the start) is written out literally below, from the
  documented policy (docs/training.md, "Adapting rows to a template") and what each template does
  (tests/model_families.py), never computed by Teich;
- a property test renders generated rows on every family and checks, against the ORIGINAL row,
  that every message's text, every reasoning, every tool name, argument key and argument value
  and every image is in the rendered text, unless the loss is a named note of the row or the row
  is refused with a documented reason.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from model_families import FAMILIES, family_tokenizer

from teich import TrainingExample
from teich.errors import TemplateError
from teich.training.render import render_row, template_messages
from teich.training.templates import profile_template


def _adapt(family: str, messages: list[dict[str, Any]], **options: Any) -> tuple[list[dict[str, Any]], dict[str, int]]:
    example = TrainingExample.from_record({"messages": messages})
    adapted, notes = template_messages(example, profile_template(family_tokenizer(family)), **options)
    return adapted, dict(notes)


def _render(family: str, messages: list[dict[str, Any]]) -> str:
    tokenizer = family_tokenizer(family)
    example = TrainingExample.from_record({"messages": messages})
    return render_row(example, tokenizer, profile_template(tokenizer), {}).text


def _groups(*groups: tuple[tuple[str, ...], Any]) -> dict[str, Any]:
    """Family -> expectation, checking that the groups name every family exactly once."""
    table = {family: expected for families, expected in groups for family in families}
    assert sorted(table) == sorted(FAMILIES) and sum(len(f) for f, _ in groups) == len(FAMILIES)
    return table


# Families by what their templates do (tests/model_families.py, "Template behaviour"), stated by hand.
NO_DEVELOPER_ROLE = (
    "qwen3",
    "qwen3_5_think",
    "qwen3_6",
    "qwen2_5",
    "gemma3",
    "gptoss",
    "deepseekv3",
    "glm4moe",
    "phi3",
)
NO_TOOL_CALLS = ("llama3", "gemma3", "phi3")  # no tool calls rendered at all (arguments pass as JSON text)
PARALLEL_CALLS = ("qwen3", "qwen3_5_think", "qwen3_6", "qwen2_5", "glm4moe")  # render a turn of several calls
# render list content with a mark for each image (GLM-4.5's template keeps the text parts, drops the image)
CONTENT_PARTS = ("qwen3_5_think", "qwen3_6", "gemma3")
LATE_SYSTEM_LOST = ("qwen3_5_think", "qwen3_6", "gemma3", "gptoss", "deepseekv3")  # raise, drop or hoist it


# ---------------------------------------------------------------------------------------------
# 1. leading system + developer messages (Codex: base instructions, then developer context)

CODEX_HEAD = [
    {"role": "system", "content": "You are Codex, a coding agent."},
    {"role": "developer", "content": "<permissions instructions>sandbox: workspace-write</permissions instructions>"},
    {"role": "developer", "content": "<environment_context><cwd>/workspace</cwd></environment_context>"},
    {"role": "user", "content": "Make a dashboard."},
    {"role": "assistant", "content": "Done."},
]
CODEX_MERGED = (
    "You are Codex, a coding agent.\n\n"
    "<permissions instructions>sandbox: workspace-write</permissions instructions>\n\n"
    "<environment_context><cwd>/workspace</cwd></environment_context>"
)
CODEX_HEAD_EXPECTED = _groups(
    (
        NO_DEVELOPER_ROLE,
        (
            [
                {"role": "system", "content": CODEX_MERGED},
                {"role": "user", "content": "Make a dashboard."},
                {"role": "assistant", "content": "Done."},
            ],
            {"developer message rendered as system": 2, "leading system messages merged": 2},
        ),
    ),
    # Llama 3 renders developer headers: the system message is alone at the start, nothing to merge
    (("llama3",), (CODEX_HEAD, {})),
)


@pytest.mark.parametrize("family", FAMILIES)
def test_leading_system_and_developer_messages(family: str) -> None:
    expected, notes = CODEX_HEAD_EXPECTED[family]
    assert _adapt(family, CODEX_HEAD) == (expected, notes)


@pytest.mark.parametrize("family", NO_DEVELOPER_ROLE)
def test_the_merged_system_prompt_is_rendered_whole(family: str) -> None:
    """All three texts, in order and blank-line joined, in the rendering (one system block)."""
    assert CODEX_MERGED in _render(family, CODEX_HEAD)


def test_codex_developer_context_survives_on_qwen3_6() -> None:
    assert _render("qwen3_6", CODEX_HEAD) == (
        "<|im_start|>system\n"
        "You are Codex, a coding agent.\n\n"
        "<permissions instructions>sandbox: workspace-write</permissions instructions>\n\n"
        "<environment_context><cwd>/workspace</cwd></environment_context><|im_end|>\n"
        "<|im_start|>user\nMake a dashboard.<|im_end|>\n"
        "<|im_start|>assistant\n<think>\n\n</think>\n\nDone.<|im_end|>\n"
    )


def test_llama3_renders_each_developer_message_under_its_own_header() -> None:
    text = _render("llama3", CODEX_HEAD)
    assert (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
        "You are Codex, a coding agent.<|eot_id|>"
        "<|start_header_id|>developer<|end_header_id|>\n\n"
        "<permissions instructions>sandbox: workspace-write</permissions instructions><|eot_id|>"
        "<|start_header_id|>developer<|end_header_id|>\n\n"
        "<environment_context><cwd>/workspace</cwd></environment_context><|eot_id|>"
    ) in text


def test_the_real_codex_session_keeps_its_developer_context_on_qwen3_6(shared_examples) -> None:
    """../shared/traces/codex.jsonl: base instructions, then the permissions and the environment
    context as two developer messages; on Qwen3.6 one system prompt holding all three, in order."""
    example = shared_examples["codex"]
    head = [(m.role, m.content) for m in example.messages[:4]]
    assert [role for role, _ in head] == ["system", "developer", "developer", "user"]
    assert head[0][1].startswith("You are Codex")
    assert head[1][1].startswith("<permissions instructions>") and head[2][1].startswith("<environment_context>")
    merged = f"{head[0][1]}\n\n{head[1][1]}\n\n{head[2][1]}"
    tokenizer = family_tokenizer("qwen3_6")
    adapted, notes = template_messages(example, profile_template(tokenizer))
    assert adapted[:2] == [{"role": "system", "content": merged}, {"role": "user", "content": head[3][1]}]
    assert notes["leading system messages merged"] == 2 and notes["developer message rendered as system"] == 2
    text = render_row(example, tokenizer, profile_template(tokenizer), {}).text
    # one system block (the tool declarations first, then the prompt), ending before the first user turn
    assert text.startswith("<|im_start|>system\n") and text.count("<|im_start|>system") == 1
    assert f"\n\n{merged}<|im_end|>\n<|im_start|>user\n{head[3][1]}<|im_end|>" in text


# ---------------------------------------------------------------------------------------------
# 2. reasoning and text on a tool-call turn


def _call(call_id: str, name: str, arguments: Any) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


READ = _call("r1", "read_file", {"path": "main.py"})
READ_TEXT = _call("r1", "read_file", '{"path": "main.py"}')
REASONING_ON_CALL = [
    {"role": "user", "content": "Fix the bug in main.py."},
    {
        "role": "assistant",
        "content": "Let me read main.py.",
        "reasoning_content": "I should read the file first.",
        "tool_calls": [READ],
    },
    {"role": "tool", "content": "print('hello')", "tool_call_id": "r1"},
    {"role": "assistant", "content": "There is no bug.", "reasoning_content": "The file looks fine."},
]
REASONING_ON_CALL_EXPECTED = _groups(
    (("qwen3", "qwen3_5_think", "qwen3_6", "qwen2_5", "glm4moe"), (REASONING_ON_CALL, {})),
    (
        ("llama3", "gemma3", "phi3", "deepseekv3"),  # arguments as JSON text
        (
            [
                {"role": "user", "content": "Fix the bug in main.py."},
                {
                    "role": "assistant",
                    "content": "Let me read main.py.",
                    "reasoning_content": "I should read the file first.",
                    "tool_calls": [READ_TEXT],
                },
                {"role": "tool", "content": "print('hello')", "tool_call_id": "r1"},
                {"role": "assistant", "content": "There is no bug.", "reasoning_content": "The file looks fine."},
            ],
            {},
        ),
    ),
    (
        ("gptoss",),  # a tool-call turn carries reasoning or content, not both: the text joins the reasoning
        (
            [
                {"role": "user", "content": "Fix the bug in main.py."},
                {
                    "role": "assistant",
                    "content": "",
                    "reasoning_content": "I should read the file first.\n\nLet me read main.py.",
                    "tool_calls": [READ],
                },
                {"role": "tool", "content": "print('hello')", "tool_call_id": "r1"},
                {"role": "assistant", "content": "There is no bug.", "reasoning_content": "The file looks fine."},
            ],
            {"content moved into reasoning on tool-call turns": 1},
        ),
    ),
)


@pytest.mark.parametrize("family", FAMILIES)
def test_reasoning_and_text_on_a_tool_call_turn(family: str) -> None:
    expected, notes = REASONING_ON_CALL_EXPECTED[family]
    assert _adapt(family, REASONING_ON_CALL) == (expected, notes)


def test_gptoss_renders_the_text_of_a_tool_call_turn_as_its_analysis() -> None:
    """The turn still waiting for its answer (GPT-OSS drops the analysis of earlier call turns)."""
    text = _render("gptoss", REASONING_ON_CALL[:3])
    assert text.endswith(
        "<|start|>user<|message|>Fix the bug in main.py.<|end|>"
        "<|start|>assistant<|channel|>analysis<|message|>I should read the file first.\n\nLet me read main.py.<|end|>"
        '<|start|>assistant to=functions.read_file<|channel|>commentary json<|message|>{"path": "main.py"}<|call|>'
        "<|start|>functions.read_file to=assistant<|channel|>commentary<|message|>\"print('hello')\"<|end|>"
    )


def test_gptoss_moves_text_without_reasoning_too() -> None:
    messages = [REASONING_ON_CALL[0], {"role": "assistant", "content": "Let me read main.py.", "tool_calls": [READ]}]
    assert _adapt("gptoss", messages) == (
        [
            {"role": "user", "content": "Fix the bug in main.py."},
            {"role": "assistant", "content": "", "reasoning_content": "Let me read main.py.", "tool_calls": [READ]},
        ],
        {"content moved into reasoning on tool-call turns": 1},
    )


# ---------------------------------------------------------------------------------------------
# 3. parallel calls, answered out of order

PARIS, ZURICH = _call("a", "weather", {"city": "Paris"}), _call("b", "weather", {"city": "Zürich"})
PARIS_TEXT, ZURICH_TEXT = _call("a", "weather", '{"city": "Paris"}'), _call("b", "weather", '{"city": "Zürich"}')
PARALLEL = [
    {"role": "user", "content": "Weather in Paris and Zürich?"},
    {
        "role": "assistant",
        "content": "Checking both cities.",
        "reasoning_content": "Two cities, two calls.",
        "tool_calls": [PARIS, ZURICH],
    },
    {"role": "tool", "content": "12C", "tool_call_id": "b"},
    {"role": "tool", "content": "18C", "tool_call_id": "a"},
    {"role": "assistant", "content": "Paris 18C, Zürich 12C."},
]
PARALLEL_EXPECTED = _groups(
    (PARALLEL_CALLS, (PARALLEL, {})),
    (
        ("deepseekv3",),
        (
            [
                {"role": "user", "content": "Weather in Paris and Zürich?"},
                {
                    "role": "assistant",
                    "content": "Checking both cities.",
                    "reasoning_content": "Two cities, two calls.",
                    "tool_calls": [PARIS_TEXT, ZURICH_TEXT],
                },
                {"role": "tool", "content": "12C", "tool_call_id": "b"},
                {"role": "tool", "content": "18C", "tool_call_id": "a"},
                {"role": "assistant", "content": "Paris 18C, Zürich 12C."},
            ],
            {},
        ),
    ),
    (
        # one call per turn, in the order the results came; the first turn keeps reasoning and text
        NO_TOOL_CALLS,
        (
            [
                {"role": "user", "content": "Weather in Paris and Zürich?"},
                {
                    "role": "assistant",
                    "content": "Checking both cities.",
                    "reasoning_content": "Two cities, two calls.",
                    "tool_calls": [ZURICH_TEXT],
                },
                {"role": "tool", "content": "12C", "tool_call_id": "b"},
                {"role": "assistant", "content": "", "tool_calls": [PARIS_TEXT]},
                {"role": "tool", "content": "18C", "tool_call_id": "a"},
                {"role": "assistant", "content": "Paris 18C, Zürich 12C."},
            ],
            {"parallel tool calls split into one call per turn": 1},
        ),
    ),
    (
        ("gptoss",),
        (
            [
                {"role": "user", "content": "Weather in Paris and Zürich?"},
                {
                    "role": "assistant",
                    "content": "",
                    "reasoning_content": "Two cities, two calls.\n\nChecking both cities.",
                    "tool_calls": [ZURICH],
                },
                {"role": "tool", "content": "12C", "tool_call_id": "b"},
                {"role": "assistant", "content": "", "tool_calls": [PARIS]},
                {"role": "tool", "content": "18C", "tool_call_id": "a"},
                {"role": "assistant", "content": "Paris 18C, Zürich 12C."},
            ],
            {
                "parallel tool calls split into one call per turn": 1,
                "content moved into reasoning on tool-call turns": 1,
            },
        ),
    ),
)


@pytest.mark.parametrize("family", FAMILIES)
def test_parallel_calls(family: str) -> None:
    expected, notes = PARALLEL_EXPECTED[family]
    assert _adapt(family, PARALLEL) == (expected, notes)


def test_gptoss_renders_each_split_call_followed_by_its_result() -> None:
    text = _render("gptoss", PARALLEL[:4])
    assert text.endswith(
        "<|start|>assistant<|channel|>analysis<|message|>Two cities, two calls.\n\nChecking both cities.<|end|>"
        '<|start|>assistant to=functions.weather<|channel|>commentary json<|message|>{"city": "Zürich"}<|call|>'
        '<|start|>functions.weather to=assistant<|channel|>commentary<|message|>"12C"<|end|>'
        '<|start|>assistant to=functions.weather<|channel|>commentary json<|message|>{"city": "Paris"}<|call|>'
        '<|start|>functions.weather to=assistant<|channel|>commentary<|message|>"18C"<|end|>'
    )


# ---------------------------------------------------------------------------------------------
# 4. images

IMAGE = {"type": "image", "image": "data:image/png;base64,iVBORw0KGgo="}
PICTURE = [
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is in this screenshot?"},
            IMAGE,
            {"type": "text", "text": "Answer in one word."},
        ],
    },
    {"role": "assistant", "content": "Cat."},
]
PICTURE_EXPECTED = _groups(
    (CONTENT_PARTS, (PICTURE, {})),
    (
        ("qwen3", "qwen2_5", "llama3", "gptoss", "deepseekv3", "glm4moe", "phi3"),
        (
            [
                {"role": "user", "content": "What is in this screenshot?\n[image]\nAnswer in one word."},
                {"role": "assistant", "content": "Cat."},
            ],
            {"image parts rendered as [image]": 1},
        ),
    ),
)


@pytest.mark.parametrize("family", FAMILIES)
def test_image_parts(family: str) -> None:
    expected, notes = PICTURE_EXPECTED[family]
    assert _adapt(family, PICTURE) == (expected, notes)


@pytest.mark.parametrize(
    ("family", "rendered"),
    [
        ("qwen3", "<|im_start|>user\nWhat is in this screenshot?\n[image]\nAnswer in one word.<|im_end|>"),
        ("gptoss", "<|start|>user<|message|>What is in this screenshot?\n[image]\nAnswer in one word.<|end|>"),
        ("glm4moe", "<|user|>\nWhat is in this screenshot?\n[image]\nAnswer in one word.<|assistant|>"),
        ("qwen3_6", "What is in this screenshot?<|vision_start|><|image_pad|><|vision_end|>Answer in one word."),
        ("gemma3", "<start_of_turn>user\nWhat is in this screenshot?<start_of_image>Answer in one word.<end_of_turn>"),
    ],
)
def test_an_image_leaves_a_mark_in_the_rendering(family: str, rendered: str) -> None:
    assert rendered in _render(family, PICTURE)


# ---------------------------------------------------------------------------------------------
# 5. empty content: a call turn without text, an empty result, an answer that is only reasoning

EMPTY = [
    {"role": "user", "content": "Run the tests."},
    {"role": "assistant", "content": None, "tool_calls": [_call("t1", "run_tests", {})]},
    {"role": "tool", "content": "", "tool_call_id": "t1"},
    {"role": "assistant", "content": "", "reasoning_content": "The run printed nothing."},
]
EMPTY_ADAPTED = [
    {"role": "user", "content": "Run the tests."},
    {"role": "assistant", "content": "", "tool_calls": [_call("t1", "run_tests", {})]},
    {"role": "tool", "content": "", "tool_call_id": "t1"},
    {"role": "assistant", "content": "", "reasoning_content": "The run printed nothing."},
]
EMPTY_EXPECTED = _groups(
    (("qwen3", "qwen3_5_think", "qwen3_6", "qwen2_5", "glm4moe", "gptoss"), (EMPTY_ADAPTED, {})),
    (
        ("llama3", "gemma3", "phi3", "deepseekv3"),
        (
            [
                {"role": "user", "content": "Run the tests."},
                {"role": "assistant", "content": "", "tool_calls": [_call("t1", "run_tests", "{}")]},
                {"role": "tool", "content": "", "tool_call_id": "t1"},
                {"role": "assistant", "content": "", "reasoning_content": "The run printed nothing."},
            ],
            {},
        ),
    ),
)


@pytest.mark.parametrize("family", FAMILIES)
def test_empty_content(family: str) -> None:
    expected, notes = EMPTY_EXPECTED[family]
    assert _adapt(family, EMPTY) == (expected, notes)


# ---------------------------------------------------------------------------------------------
# 6. a system and a developer message after the conversation started

LATE = [
    {"role": "system", "content": "Be terse."},
    {"role": "user", "content": "Hi."},
    {"role": "assistant", "content": "Hello."},
    {"role": "system", "content": "The user switched to plan mode."},
    {"role": "developer", "content": "<collaboration_mode>plan</collaboration_mode>"},
    {"role": "user", "content": "Plan the refactor."},
    {"role": "assistant", "content": "1. Extract the parser."},
]


def _late(system_role: str, developer_role: str) -> list[dict[str, Any]]:
    return [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "Hi."},
        {"role": "assistant", "content": "Hello."},
        {"role": system_role, "content": "The user switched to plan mode."},
        {"role": developer_role, "content": "<collaboration_mode>plan</collaboration_mode>"},
        {"role": "user", "content": "Plan the refactor."},
        {"role": "assistant", "content": "1. Extract the parser."},
    ]


LATE_EXPECTED = _groups(
    (("llama3",), (_late("system", "developer"), {})),
    (
        ("qwen3", "qwen2_5", "glm4moe", "phi3"),
        (_late("system", "system"), {"developer message rendered as system": 1}),
    ),
    (
        LATE_SYSTEM_LOST,
        (
            _late("user", "user"),
            {"developer message rendered as system": 1, "late system message rendered as user": 2},
        ),
    ),
)


@pytest.mark.parametrize("family", FAMILIES)
def test_system_and_developer_messages_after_the_start(family: str) -> None:
    expected, notes = LATE_EXPECTED[family]
    assert _adapt(family, LATE) == (expected, notes)


# ---------------------------------------------------------------------------------------------
# 7. the reasoning policy, on a template that takes reasoning beside calls and one that does not

POLICY_ROW = [
    {"role": "user", "content": "q1"},
    {"role": "assistant", "content": "a1", "reasoning_content": "r1"},
    {"role": "user", "content": "q2"},
    {"role": "assistant", "content": "Looking.", "reasoning_content": "r2", "tool_calls": [READ]},
    {"role": "tool", "content": "x = 1", "tool_call_id": "r1"},
    {"role": "assistant", "content": "a2", "reasoning_content": "r3"},
]


@pytest.mark.parametrize(
    ("family", "reasoning", "expected", "notes"),
    [
        (
            "qwen3_6",
            "last",
            [
                {"role": "user", "content": "q1"},
                {"role": "assistant", "content": "a1"},
                {"role": "user", "content": "q2"},
                {"role": "assistant", "content": "Looking.", "tool_calls": [READ]},
                {"role": "tool", "content": "x = 1", "tool_call_id": "r1"},
                {"role": "assistant", "content": "a2", "reasoning_content": "r3"},
            ],
            {"reasoning removed by the reasoning policy": 2},
        ),
        (
            "gptoss",
            "drop",
            [
                {"role": "user", "content": "q1"},
                {"role": "assistant", "content": "a1"},
                {"role": "user", "content": "q2"},
                # the text still moves: it is what the model writes before calling, not reasoning
                {"role": "assistant", "content": "", "reasoning_content": "Looking.", "tool_calls": [READ]},
                {"role": "tool", "content": "x = 1", "tool_call_id": "r1"},
                {"role": "assistant", "content": "a2"},
            ],
            {"reasoning removed by the reasoning policy": 3, "content moved into reasoning on tool-call turns": 1},
        ),
    ],
)
def test_reasoning_policy(family: str, reasoning: str, expected: list[dict[str, Any]], notes: dict[str, int]) -> None:
    assert _adapt(family, POLICY_ROW, reasoning=reasoning) == (expected, notes)


@pytest.mark.parametrize(
    ("family", "unrendered"),
    [
        # templates that read no reasoning field render none of it: reported, not silent
        ("qwen2_5", 2),
        ("llama3", 2),
        ("gemma3", 2),
        ("deepseekv3", 2),
        ("phi3", 2),
        # Qwen3 leaves out the reasoning before the last user turn
        ("qwen3", 1),
        ("qwen3_6", 1),
        ("glm4moe", 1),
    ],
)
def test_reasoning_a_template_leaves_out_is_reported(family: str, unrendered: int) -> None:
    messages = [
        POLICY_ROW[0],
        POLICY_ROW[1],
        POLICY_ROW[2],
        {"role": "assistant", "content": "a2", "reasoning_content": "r3"},
    ]
    tokenizer = family_tokenizer(family)
    row = render_row(TrainingExample.from_record({"messages": messages}), tokenizer, profile_template(tokenizer), {})
    assert row.notes["reasoning not rendered by the template"] == unrendered
    assert ("r1" in row.text, "r3" in row.text) == (False, unrendered == 1)


# ---------------------------------------------------------------------------------------------
# 8. no content lost between the row and its rendering (property)
#
# Every text is a unique marker ("Q12X", letters the words never use) followed by words, so finding
# it in the rendering means this message's text was rendered. A text may appear as written (stripped:
# templates trim) or JSON-encoded (templates that ``tojson`` tool results and arguments).

WORDS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz ABC0123456789.,;:!?-'()/\néü中🎉", max_size=24)


class _Markers:
    def __init__(self) -> None:
        self.count = 0

    def text(self, draw: st.DrawFn) -> str:
        self.count += 1
        return f"Q{self.count}X {draw(WORDS)}".strip()


@st.composite
def _rows(draw: st.DrawFn) -> dict[str, Any]:
    marks = _Markers()
    messages: list[dict[str, Any]] = []
    if draw(st.booleans()):
        messages.append({"role": "system", "content": marks.text(draw)})
    for _ in range(draw(st.integers(0, 2))):
        messages.append({"role": "developer", "content": marks.text(draw)})
    calls, uses_tools = 0, draw(st.integers(0, 2)) > 0  # a third of the rows without tools (Llama 3 renders none)
    for turn in range(draw(st.integers(1, 3))):
        if turn and draw(st.integers(0, 2)) == 0:
            messages.append({"role": draw(st.sampled_from(["system", "developer"])), "content": marks.text(draw)})
        if draw(st.integers(0, 3)) == 0:
            parts = [{"type": "text", "text": marks.text(draw)}, IMAGE, {"type": "text", "text": marks.text(draw)}]
            messages.append({"role": "user", "content": parts})
        else:
            messages.append({"role": "user", "content": marks.text(draw)})
        for _ in range(draw(st.integers(0, 2)) if uses_tools else 0):
            turn_calls = []
            for _ in range(draw(st.integers(1, 3))):
                calls += 1
                keys = draw(st.lists(st.sampled_from(["path", "query", "count", "force"]), max_size=3, unique=True))
                values = {"count": st.integers(-5, 500), "force": st.booleans()}
                arguments = {key: draw(values[key]) if key in values else marks.text(draw) for key in keys}
                name = draw(st.sampled_from(["read_file", "run_shell", "web_search"]))
                turn_calls.append(
                    {"id": f"call{calls}", "type": "function", "function": {"name": name, "arguments": arguments}}
                )
            step: dict[str, Any] = {"role": "assistant", "tool_calls": turn_calls}
            step["content"] = marks.text(draw) if draw(st.booleans()) else None
            if draw(st.booleans()):
                step["reasoning_content"] = marks.text(draw)
            messages.append(step)
            for call in draw(st.permutations(turn_calls)):
                result: Any = marks.text(draw)
                if draw(st.integers(0, 5)) == 0:  # a screenshot
                    result = [{"type": "text", "text": result}, IMAGE]
                messages.append({"role": "tool", "tool_call_id": call["id"], "content": result})
        answer: dict[str, Any] = {"role": "assistant", "content": marks.text(draw)}
        if draw(st.booleans()):
            answer["reasoning_content"] = marks.text(draw)
        messages.append(answer)
    return {"messages": messages}


def _shown(text: str, piece: str) -> int:
    """Where ``piece`` is in ``text``, as written (trimmed) or JSON-encoded; -1 if nowhere."""
    piece = piece.strip()
    forms = [piece, json.dumps(piece)[1:-1], json.dumps(piece, ensure_ascii=False)[1:-1]]
    found = [at for at in (text.find(form) for form in forms) if at >= 0]
    return min(found) if found else -1


# Why a family may refuse a row (render_row's TemplateError), stated by hand; any other refusal fails.
ALLOWED_REFUSALS = {
    "llama3": ("the chat template does not render tool calls",),
    "phi3": ("the chat template does not render tool calls",),
    # raises on tool messages, and on two user turns in a row (a late system message becomes one)
    "gemma3": ("cannot render it: Conversation roles must alternate",),
    # leaves out the text before the calls of every tool-call turn after the first
    "deepseekv3": ("the chat template leaves out the text before its tool calls",),
}
IMAGE_MARKS = {"qwen3_5_think": "<|vision_start|>", "qwen3_6": "<|vision_start|>", "gemma3": "<start_of_image>"}
MOVES_CALL_TEXT_INTO_REASONING = ("gptoss",)


def _check_nothing_lost(family: str, record: dict[str, Any], reasoning: str) -> None:
    tokenizer = family_tokenizer(family)
    example = TrainingExample.from_record(record)
    try:
        row = render_row(example, tokenizer, profile_template(tokenizer), {}, reasoning=reasoning)
    except TemplateError as error:
        assert any(reason in str(error) for reason in ALLOWED_REFUSALS.get(family, ())), (family, str(error))
        return
    text, notes = row.text, Counter(row.notes)
    messages = record["messages"]
    assistants = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
    removed = {"keep": [], "last": assistants[:-1], "drop": assistants}[reasoning]
    order: list[int] = []
    lost_reasoning = removed_reasoning = images = 0
    for index, message in enumerate(messages):
        content = message.get("content")
        parts = content if isinstance(content, list) else [{"type": "text", "text": content or ""}]
        texts = [p["text"] for p in parts if p["type"] == "text" and p["text"].strip()]
        images += sum(p["type"] == "image" for p in parts)
        thought = message.get("reasoning_content")
        if thought and index in removed:
            removed_reasoning += 1
            assert _shown(text, thought) < 0, (family, "reasoning the policy removed is rendered", thought)
            thought = None
        moved = family in MOVES_CALL_TEXT_INTO_REASONING and message.get("tool_calls") and texts
        if moved and thought and (_shown(text, thought) >= 0) != (_shown(text, texts[0]) >= 0):
            raise AssertionError((family, "text moved into reasoning rendered apart from it", message))
        if thought and _shown(text, thought) < 0 or moved and _shown(text, texts[0]) < 0:
            lost_reasoning += 1  # the template leaves this turn's reasoning out: counted in the notes
            texts = [] if moved else texts
        elif thought:
            order.append(_shown(text, thought))
        for piece in texts:
            assert _shown(text, piece) >= 0, (family, "text lost", message["role"], piece)
            order.append(_shown(text, piece))
        for call in message.get("tool_calls") or []:
            function = call["function"]
            assert function["name"] in text, (family, "tool call lost", function["name"])
            for key, value in function["arguments"].items():
                assert key in text, (family, "argument key lost", key)
                # a number or a boolean as JSON, or as Python writes it (Qwen3.5's template: False)
                forms = [value] if isinstance(value, str) else [json.dumps(value), str(value)]
                assert max(_shown(text, form) for form in forms) >= 0, (family, "argument value lost", key, value)
    assert notes["reasoning removed by the reasoning policy"] == removed_reasoning
    assert notes["reasoning not rendered by the template"] == lost_reasoning
    mark = IMAGE_MARKS.get(family, "[image]")
    assert text.count(mark) == images, (family, "images lost", text.count(mark), images)
    # texts and reasoning come in the order of the row, parallel calls' results aside (GPT-OSS
    # takes each call with its own result, in the order the results came)
    if family not in MOVES_CALL_TEXT_INTO_REASONING:
        assert order == sorted(order), (family, "texts out of order")


def test_a_boolean_argument_written_the_python_way_ends_its_call_turn() -> None:
    """Found by the property test. Qwen3.5's template writes a boolean argument as ``True``; the span
    walk looked for the JSON ``true``, found it in the tool result after the call, searched the turn's
    end from there and refused the row ("message 2 (tool) is not in the rendered text")."""
    tokenizer = family_tokenizer("qwen3_5_think")
    record = {
        "messages": [
            {"role": "user", "content": "Is strict mode on?"},
            {"role": "assistant", "tool_calls": [_call("c1", "check", {"strict": True})]},
            {"role": "tool", "content": "true", "tool_call_id": "c1"},
            {"role": "assistant", "content": "Yes."},
        ]
    }
    row = render_row(TrainingExample.from_record(record), tokenizer, profile_template(tokenizer), {})
    assert [(s.kind, s.message, row.text[s.start : s.end]) for s in row.spans] == [
        ("user", 0, "Is strict mode on?"),
        (
            "tool_call",
            1,
            "\n</think>\n\n<tool_call>\n<function=check>\n<parameter=strict>\nTrue\n</parameter>\n</function>\n"
            "</tool_call><|im_end|>",
        ),
        ("tool_response", 2, "true"),
        ("final_answer", 3, "\n</think>\n\nYes.<|im_end|>"),
    ]


PROPERTY_SETTINGS = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.mark.parametrize("family", FAMILIES)
@PROPERTY_SETTINGS
@given(record=_rows(), reasoning=st.sampled_from(["keep", "keep", "last", "drop"]))
def test_no_content_lost_between_the_row_and_its_rendering(family: str, record: dict[str, Any], reasoning: str) -> None:
    _check_nothing_lost(family, record, reasoning)
