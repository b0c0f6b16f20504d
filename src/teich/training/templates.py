"""What a tokenizer's chat template does, learned by rendering tiny probe conversations.

Teich never parses a template's Jinja source. It renders short conversations made of unique probe
words and reads off the strings it needs to find supervision spans in a real rendering:

- the *gaps* between two consecutive messages (``"user>assistant"``, ``"assistant>tool"``, ...):
  the text from the end of one message to the start of the next one's content, in every form the
  probes show (DeepSeek-V3 opens only its first tool-call turn with ``<｜Assistant｜>``). A gap into
  an assistant turn ends where generation starts: after the generation prompt when the turn is
  rendered as it would be generated, otherwise after the role header;
- the special tokens that end a generated turn (``<|im_end|>``, ``<|eot_id|>``, ``<|call|>``, or the
  next role marker on templates without an end-of-turn token, such as GLM);
- the text that introduces a tool call, the key the template reads reasoning from, and which roles
  and message layouts it renders at all.
"""

from __future__ import annotations

import functools
import json
import os
import re
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from teich.errors import TeichError

_U, _U2, _A, _A2 = "teichprobeuser", "teichprobequestion", "teichprobeanswer", "teichprobereply"
_S, _S2, _D, _R = "teichprobesystem", "teichprobecontext", "teichprobedeveloper", "teichprobethought"
_T, _T2, _FN, _FN2 = "teichproberesult", "teichprobeoutput", "teichprobefn", "teichprobetool"
_KEY, _VAL = "teichprobekey", "teichprobevalue"


def _tool_schema(name: str) -> dict[str, Any]:
    parameters = {"type": "object", "properties": {_KEY: {"type": "string"}}, "required": [_KEY]}
    return {"type": "function", "function": {"name": name, "description": "probe", "parameters": parameters}}


_PROBE_TOOLS = (_tool_schema(_FN), _tool_schema(_FN2))


@dataclass(frozen=True)
class TemplateProfile:
    """The strings of a chat template that spans are located with (see the module docstring)."""

    gaps: dict[str, tuple[str, ...]]
    stop_tokens: tuple[str, ...]
    tool_call_lead: str
    reasoning_key: str | None
    renders_developer: bool
    renders_late_system: bool
    renders_leading_systems: bool
    renders_tools: bool
    arguments_as_text: bool
    """Whether tool-call arguments must be passed as JSON text (DeepSeek-V3) rather than objects."""
    renders_parallel_calls: bool
    renders_content_parts: bool
    renders_reasoning_beside_calls: bool
    """Whether a tool-call turn may carry both reasoning and content (GPT-OSS raises on it)."""
    """Whether list content (text and image parts) renders natively rather than as a Python repr."""
    special_tokens: tuple[str, ...] = field(repr=False)
    special_pattern: re.Pattern[str] = field(repr=False, default=re.compile(r"(?!)"))
    """Matches any special token's text (to report content that contains one)."""


def render(
    tokenizer: Any,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None,
    kwargs: dict[str, Any],
    *,
    add_generation_prompt: bool = False,
) -> str:
    """The tokenizer's own chat template rendering, as text."""
    return str(tokenizer.apply_chat_template(
        messages, tools=tools or None, tokenize=False, add_generation_prompt=add_generation_prompt, **kwargs
    ))


def profile_template(tokenizer: Any, chat_template_kwargs: dict[str, Any] | None = None) -> TemplateProfile:
    """The :class:`TemplateProfile` of ``tokenizer.chat_template`` under these template kwargs (cached)."""
    if not getattr(tokenizer, "chat_template", None):
        raise TeichError("the tokenizer has no chat template; set tokenizer.chat_template first")
    kwargs = json.dumps(chat_template_kwargs or {}, sort_keys=True, default=str)
    try:
        return _profile(_TokenizerKey(tokenizer), kwargs)
    except TeichError:
        raise
    except Exception as error:  # the template itself failed on a plain conversation
        raise TeichError(f"the chat template cannot render a plain conversation: {error}") from None


def special_tokens(tokenizer: Any) -> tuple[str, ...]:
    """The tokenizer's special tokens, longest first."""
    tokens = set(tokenizer.all_special_tokens)
    tokens.update(t.content for t in tokenizer.added_tokens_decoder.values() if t.special)
    return tuple(sorted((t for t in tokens if t), key=len, reverse=True))


class _TokenizerKey:
    """Hashable handle on a tokenizer: equal when the chat template and special tokens are equal. It
    holds the tokenizer weakly, so the profile cache keeps these values and never a tokenizer alive."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = weakref.ref(tokenizer)
        self.key = (tokenizer.chat_template, special_tokens(tokenizer), type(tokenizer).__name__)

    def __hash__(self) -> int:
        return hash(self.key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _TokenizerKey) and self.key == other.key


def _message(role: str, content: Any, **fields: Any) -> dict[str, Any]:
    return {"role": role, "content": content, **fields}


def _call(name: str, call_id: str, as_text: bool = False) -> dict[str, Any]:
    arguments = json.dumps({_KEY: _VAL}) if as_text else {_KEY: _VAL}
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


# Profiling renders some 30 probe conversations (10-30 ms), and row_fits_context profiles on every call:
# the profiles of the last 64 (template, special tokens, kwargs) values are kept, bounded and by value.
@functools.lru_cache(maxsize=64)
def _profile(handle: _TokenizerKey, kwargs_json: str) -> TemplateProfile:
    tokenizer = handle.tokenizer()  # alive: a cache miss is computed for the caller's own handle
    probe = _Probe(tokenizer, json.loads(kwargs_json), special_tokens(tokenizer))
    system, user, answer = _message("system", _S), _message("user", _U), _message("assistant", _A)
    question, reply = _message("user", _U2), _message("assistant", _A2)
    result = _message("tool", _T, tool_call_id="call_probe", name=_FN)
    second = _message("tool", _T2, tool_call_id="call_probe2", name=_FN2)

    def caller_with(*names: str, as_text: bool = False) -> dict[str, Any]:
        calls = [_call(name, f"call_probe{i + 1 if i else ''}", as_text) for i, name in enumerate(names)]
        return {"role": "assistant", "content": "", "tool_calls": calls}

    arguments_as_text = not probe.renders([user, caller_with(_FN), result, reply], _FN, _VAL, _A2, tools=True)
    caller, parallel = caller_with(_FN, as_text=arguments_as_text), caller_with(_FN, _FN2, as_text=arguments_as_text)
    renders_tools = probe.renders([user, caller, result, reply], _FN, _VAL, _T, _A2, tools=True)
    renders_parallel = renders_tools and probe.renders([user, parallel, result, second, reply], _FN2, _T2, tools=True)
    stops = probe.stop_tokens(user, answer, caller if renders_tools else None)
    if not stops:
        raise TeichError(
            "no end-of-turn token found: the template's turn markers are not special tokens of this tokenizer"
        )
    gaps = [probe.gaps([system, user, answer, question, reply], stops)]
    if renders_tools:
        calls, results = ([parallel], [result, second]) if renders_parallel else ([caller], [result])
        # a second tool-call turn after the results and one after a new user turn: templates whose
        # rendering of a call turn depends on what came before (DeepSeek-V3) show every variant
        conversation = [user, *calls, *results, caller, result, reply, question, caller, result, answer]
        gaps += [probe.gaps(conversation, stops, tools=True), probe.unanswered_call_gaps(user, caller, reply, stops)]
    return TemplateProfile(
        gaps=_union(gaps),
        stop_tokens=stops,
        tool_call_lead=probe.tool_call_lead(user, answer, caller) if renders_tools else "",
        reasoning_key=probe.reasoning_key(user),
        renders_developer=probe.renders([user, _message("developer", _D), answer], _D, _A),
        renders_late_system=probe.renders([user, answer, _message("system", _S2), question, reply], _S2, _A2),
        renders_leading_systems=probe.renders([system, _message("system", _S2), user, answer], _S, _S2, _A),
        renders_tools=renders_tools,
        arguments_as_text=arguments_as_text,
        renders_parallel_calls=renders_parallel,
        renders_content_parts=probe.renders_parts(answer),
        renders_reasoning_beside_calls=probe.renders_reasoning_beside_calls(user, caller if renders_tools else None),
        special_tokens=probe.specials,
        special_pattern=re.compile("|".join(map(re.escape, probe.specials)) or r"(?!)"),
    )


class _Probe:
    """Renders probe conversations and reads strings off them."""

    def __init__(self, tokenizer: Any, kwargs: dict[str, Any], specials: tuple[str, ...]) -> None:
        self.tokenizer, self.kwargs, self.specials = tokenizer, kwargs, specials
        self.added = tuple(tokenizer.get_added_vocab()) + specials

    def text(self, messages: list[dict[str, Any]], *, tools: bool = False, generate: bool = False) -> str:
        tool_schemas = list(_PROBE_TOOLS) if tools else None
        return render(self.tokenizer, messages, tool_schemas, self.kwargs, add_generation_prompt=generate)

    def renders(self, messages: list[dict[str, Any]], *needles: str, tools: bool = False) -> bool:
        """Whether the template renders these messages, showing every needle after the first user turn
        (tool names also appear in the tool schemas at the top)."""
        try:
            text = self.text(messages, tools=tools)
        except Exception:  # a template that raises on these messages does not render them
            return False
        start = text.find(_U)
        return start >= 0 and all(needle in text[start:] for needle in needles)

    def gaps(
        self, messages: list[dict[str, Any]], stops: tuple[str, ...], *, tools: bool = False
    ) -> dict[str, set[str]]:
        """Every gap between consecutive probe messages, keyed ``"previous>next"`` by their roles."""
        text = self.text(messages, tools=tools)
        gaps: dict[str, set[str]] = {}
        cursor = 0
        for index in range(1, len(messages)):
            previous, current = messages[index - 1], messages[index]
            cursor = self._end_of(text, previous, cursor, stops)
            start = text.index(_probe_word(current), cursor)
            gap = text[cursor:start]
            found = gaps.setdefault(f"{previous['role']}>{current['role']}", set())
            if current["role"] == "assistant":
                generated = self.text(messages[:index], tools=tools, generate=True)
                prompted = generated[self._end_of(generated, previous, 0, stops, last=True) :]
                found.update({prompted, self._header(prompted, gap)})
            else:
                found.add(gap)
            cursor = start
        return gaps

    def unanswered_call_gaps(
        self, user: dict[str, Any], caller: dict[str, Any], reply: dict[str, Any], stops: tuple[str, ...]
    ) -> dict[str, set[str]]:
        """The gap from a tool-call turn left without a result to the next assistant turn, where the
        template renders that and ends the call turn with a stop token (GLM marks no end there)."""
        if not self.renders([user, caller, reply], _A2, tools=True):
            return {}
        try:
            return self.gaps([user, caller, reply], stops, tools=True)
        except ValueError:  # the probe reply is not after a stop token
            return {}

    def _header(self, prompted: str, gap: str) -> str:
        """What a turn rendered unlike the generation prompt shares with it: their common prefix, cut
        back to the end of a whole added token or whitespace (``<｜Assistant｜>``, not
        ``<｜Assistant｜><`` where the prompt goes on with ``<think>`` and the turn with a call)."""
        shared = os.path.commonprefix([prompted, gap])
        if shared == prompted:
            return shared
        cuts = (n for n in range(len(shared), 0, -1) if shared[n - 1].isspace() or shared[:n].endswith(self.added))
        return shared[: next(cuts, 0)]

    def _end_of(
        self, text: str, message: dict[str, Any], cursor: int, stops: tuple[str, ...], last: bool = False
    ) -> int:
        """Where a probe message ends: after its content, or after the stop token of an assistant turn."""
        word = _probe_word(message)
        end = (text.rindex(word) if last else text.index(word, cursor)) + len(word)
        if message["role"] != "assistant":
            return end
        found = [text.find(stop, end) + len(stop) for stop in stops if text.find(stop, end) >= 0]
        return min(found) if found else len(text)

    def stop_tokens(
        self, user: dict[str, Any], answer: dict[str, Any], caller: dict[str, Any] | None
    ) -> tuple[str, ...]:
        """The special tokens that end a generated turn.

        Found after an answer (last in the conversation, and followed by a user or a system message)
        and at the end of a tool-call turn. A template that emits nothing after a final answer has
        no end-of-turn token (GLM): there the model stops by writing the next message's role marker,
        which is then the stop token.
        """
        last = self.text([user, answer])
        final_stop = self._first_special(last, last.rindex(_A) + len(_A))
        stops = {final_stop}
        for rest in ([_message("user", _U2)], [_message("system", _S2), _message("user", _U2)]):
            if self.renders([user, answer, *rest], _A, _U2):
                text = self.text([user, answer, *rest])
                stops.add(self._first_special(text, text.index(_A) + len(_A)))
        if caller is not None:
            calling = self.text([user, caller], tools=True)
            if final_stop is not None:
                stops.add(self._last_special(calling, calling.rindex(_FN)))
            else:
                called = self.text([user, caller, _message("tool", _T, tool_call_id="call_probe")], tools=True)
                stops.add(self._first_special(called, len(os.path.commonprefix([calling, called]))))
        return tuple(sorted(s for s in stops if s))

    def tool_call_lead(self, user: dict[str, Any], answer: dict[str, Any], caller: dict[str, Any]) -> str:
        text = self.text([user, answer | {"tool_calls": [caller["tool_calls"][0]]}], tools=True)
        return text[text.index(_A) + len(_A) : text.rindex(_FN)]

    def renders_parts(self, answer: dict[str, Any]) -> bool:
        image = {"type": "image", "image": "data:image/png;base64,teichprobepixels"}
        parts = _message("user", [{"type": "text", "text": _U}, image])
        if not self.renders([parts, answer], _A):
            return False
        text = self.text([parts, answer])
        # the image must leave a mark: GLM-4.5's template keeps the text parts and drops the image
        imageless = self.text([_message("user", [{"type": "text", "text": _U}]), answer])
        return "teichprobepixels" not in text and "'type'" not in text and text != imageless

    def renders_reasoning_beside_calls(self, user: dict[str, Any], caller: dict[str, Any] | None) -> bool:
        key = self.reasoning_key(user)
        if caller is None or key is None:
            return True
        speaking = caller | {"content": _A, key: _R}
        result = _message("tool", _T, tool_call_id="call_probe", name=_FN)
        return self.renders([user, speaking, result], _A, _R, _FN, tools=True)

    def reasoning_key(self, user: dict[str, Any]) -> str | None:
        for key in ("reasoning_content", "thinking"):
            if self.renders([user, _message("assistant", _A, **{key: _R})], _R):
                return key
        return None

    def _first_special(self, text: str, start: int) -> str | None:
        found = [(text.find(s, start), -len(s), s) for s in self.specials if text.find(s, start) >= 0]
        return min(found)[2] if found else None

    def _last_special(self, text: str, start: int) -> str | None:
        found = [(text.rfind(s) + len(s), len(s), s) for s in self.specials if text.rfind(s) >= start]
        return max(found)[2] if found else None


def _union(gap_maps: Iterable[dict[str, set[str]]]) -> dict[str, tuple[str, ...]]:
    """The gaps of several probe conversations merged per key, longest first."""
    merged: dict[str, set[str]] = {}
    for gaps in gap_maps:
        for key, found in gaps.items():
            merged.setdefault(key, set()).update(found)
    return {key: tuple(sorted(found, key=lambda gap: (-len(gap), gap))) for key, found in merged.items()}


def _probe_word(message: dict[str, Any]) -> str:
    """The probe word that marks a probe message (a tool-call turn is marked by its last call's name)."""
    if message.get("tool_calls"):
        return str(message["tool_calls"][-1]["function"]["name"])
    return str(message["content"])
