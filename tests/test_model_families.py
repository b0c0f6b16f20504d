"""The offline model-family tokenizers of ``model_families`` behave like the real ones."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest
from model_families import (
    FAMILIES,
    TEMPLATE_TOKENS,
    VOCABULARIES,
    VOCABULARY,
    cache_root,
    chat_template,
    family_tokenizer,
)
from transformers import PreTrainedTokenizerFast

# family: (len(tokenizer), bos, eos, pad)
IDENTITY = {
    "qwen2_5": (151_665, None, "<|im_end|>", "<|endoftext|>"),
    "qwen3": (151_669, None, "<|im_end|>", "<|endoftext|>"),
    "qwen3_5_think": (248_077, None, "<|im_end|>", "<|endoftext|>"),
    "qwen3_6": (248_077, None, "<|im_end|>", "<|endoftext|>"),
    "llama3": (128_256, "<|begin_of_text|>", "<|eot_id|>", None),
    "gptoss": (201_088, "<|startoftext|>", "<|return|>", "<|endoftext|>"),
    "deepseekv3": (129_280, "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜end▁of▁sentence｜>"),
    "gemma3": (128_010, "<bos>", "<eos>", "<pad>"),
    "phi3": (128_014, "<s>", "<|endoftext|>", "<|endoftext|>"),
    "glm4moe": (151_679, None, "<|endoftext|>", "<|endoftext|>"),
}

# Ids the real tokenizers give these tokens (families with a real vocabulary only).
REAL_IDS = {
    "qwen2_5": {"<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645, "<tool_call>": 151657},
    "qwen3": {"<|im_end|>": 151645, "<|file_sep|>": 151664, "<tool_response>": 151665, "</think>": 151668},
    "qwen3_5_think": {"<|endoftext|>": 248044, "<|im_end|>": 248046, "<tool_call>": 248058, "<think>": 248068},
    "qwen3_6": {"<|im_start|>": 248045, "</think>": 248069, "<|audio_pad|>": 248076},
    "llama3": {"<|begin_of_text|>": 128000, "<|start_header_id|>": 128006, "<|eot_id|>": 128009},
    "gptoss": {
        "<|startoftext|>": 199998,
        "<|endoftext|>": 199999,
        "<|return|>": 200002,
        "<|constrain|>": 200003,
        "<|channel|>": 200005,
        "<|start|>": 200006,
        "<|end|>": 200007,
        "<|message|>": 200008,
        "<|call|>": 200012,
        "<|endofprompt|>": 200018,
        "<|reserved_201087|>": 201087,
    },
    "deepseekv3": {
        "<｜end▁of▁sentence｜>": 1,
        "<｜User｜>": 128803,
        "<｜Assistant｜>": 128804,
        "<｜tool▁sep｜>": 128814,
    },
}

TEXTS = {
    "ascii": "Hello, world! It's 2024-06-01; x = 42.  Don't   stop...",
    "non_ascii": "Grüße, 世界! Привет мир — naïve café ☕ 🚀 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ☕☕🚀🚀 مرحبا",
    "code": "def f(x):\n\tif x:\n        return {'a': [1, 2]}  # ok\r\n\n\n   trailing   ",
}

CONVERSATION = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "What is 2+2?"},
    {"role": "assistant", "content": "The answer is 4."},
]


@pytest.mark.parametrize("name", FAMILIES)
def test_identity(name: str) -> None:
    tokenizer = family_tokenizer(name)
    assert isinstance(tokenizer, PreTrainedTokenizerFast)
    assert (len(tokenizer), tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token) == IDENTITY[name]
    assert tokenizer.chat_template == chat_template(name)
    assert family_tokenizer(name, training=True).chat_template == chat_template(name, training=True)
    assert "{% generation %}" in chat_template(name, training=True).replace("{%- generation %}", "{% generation %}")


@pytest.mark.parametrize("name", sorted(REAL_IDS))
def test_real_vocabularies_keep_the_real_ids(name: str) -> None:
    assert VOCABULARY[name] == "real"
    tokenizer = family_tokenizer(name)
    assert {token: tokenizer.convert_tokens_to_ids(token) for token in REAL_IDS[name]} == REAL_IDS[name]


@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize("kind", sorted(TEXTS))
def test_round_trip(name: str, kind: str) -> None:
    tokenizer = family_tokenizer(name)
    text = TEXTS[kind]
    assert tokenizer.decode(tokenizer.encode(text, add_special_tokens=False)) == text


@pytest.mark.parametrize("name", FAMILIES)
def test_template_tokens_are_single_ids(name: str) -> None:
    tokenizer = family_tokenizer(name)
    added = tokenizer.get_added_vocab()
    for token in TEMPLATE_TOKENS[name]:
        assert token in added, token
        token_id = added[token]
        assert tokenizer.encode(token, add_special_tokens=False) == [token_id], token
        in_context = tokenizer.encode(f"a{token}b", add_special_tokens=False)
        assert in_context.count(token_id) == 1, token
        assert tokenizer.decode(in_context) == f"a{token}b"


@pytest.mark.parametrize("name", ["qwen2_5", "qwen3", "qwen3_5_think", "qwen3_6"])
def test_qwen_tag_tokens_are_not_special(name: str) -> None:
    tokenizer = family_tokenizer(name)
    decoder = tokenizer.added_tokens_decoder
    flags = {str(token): token.special for token in decoder.values()}
    assert flags["<|im_end|>"] and flags["<|endoftext|>"] and flags["<|vision_start|>"]
    assert not flags["<tool_call>"] and not flags["<|file_sep|>"]
    if name != "qwen2_5":
        assert not flags["<think>"] and not flags["</tool_response>"]
        ids = tokenizer.encode("<|im_start|><think>x</think><|im_end|>", add_special_tokens=False)
        assert tokenizer.decode(ids, skip_special_tokens=True) == "<think>x</think>"


def test_phi3_control_tokens_absorb_the_following_whitespace() -> None:
    # rstrip=True on <|end|>, <|user|>, ... as in the real Phi-3 tokenizer.
    tokenizer = family_tokenizer("phi3")
    ids = tokenizer.encode("<|end|>\n<|user|>\nHi", add_special_tokens=False)
    assert ids[:2] == tokenizer.convert_tokens_to_ids(["<|end|>", "<|user|>"])
    assert tokenizer.decode(ids) == "<|end|><|user|>Hi"


@pytest.mark.parametrize("name", ["qwen2_5", "qwen3", "qwen3_5_think", "qwen3_6"])
def test_qwen_normalizes_to_nfc(name: str) -> None:
    # The real Qwen tokenizer.json has an NFC normalizer: a decomposed "é" decodes composed,
    # and the offsets of the composed character stop before the combining mark (a gap).
    tokenizer = family_tokenizer(name)
    text = "cafe\u0301 ok"
    encoded = tokenizer(text, return_offsets_mapping=True, add_special_tokens=False)
    assert tokenizer.decode(encoded["input_ids"]) == "caf\u00e9 ok"
    covered = {i for start, stop in encoded["offset_mapping"] for i in range(start, stop)}
    assert set(range(len(text))) - covered == {text.index("\u0301")}


@pytest.mark.parametrize("name", FAMILIES)
def test_original_template_renders(name: str) -> None:
    tokenizer = family_tokenizer(name)
    rendered = tokenizer.apply_chat_template(CONVERSATION, tokenize=False)
    assert isinstance(rendered, str)
    assert "What is 2+2?" in rendered and "The answer is 4." in rendered
    # Every control token written is one of the family's template tokens.
    ids = tokenizer.encode(rendered, add_special_tokens=False)
    added_ids = set(tokenizer.get_added_vocab().values())
    written = {tokenizer.convert_ids_to_tokens(i) for i in ids if i in added_ids}
    assert written <= set(TEMPLATE_TOKENS[name]), written - set(TEMPLATE_TOKENS[name])


@pytest.mark.parametrize("name", FAMILIES)
def test_training_template_masks_the_assistant_reply(name: str) -> None:
    tokenizer = family_tokenizer(name, training=True)
    encoded = tokenizer.apply_chat_template(
        CONVERSATION, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    ids, mask = encoded["input_ids"], encoded["assistant_masks"]
    assert len(mask) == len(ids) > 0
    assert set(mask) <= {0, 1} and 1 in mask
    assistant = tokenizer.decode([i for i, m in zip(ids, mask, strict=True) if m])
    prompt = tokenizer.decode([i for i, m in zip(ids, mask, strict=True) if not m])
    assert "The answer is 4." in assistant
    assert "What is 2+2?" in prompt and "What is 2+2?" not in assistant
    # The training template renders this conversation as the original does, except glm4moe's,
    # which ends the assistant turn with the next turn's role token (<|user|>) as its stop token.
    original = family_tokenizer(name).apply_chat_template(CONVERSATION, tokenize=False)
    training = tokenizer.apply_chat_template(CONVERSATION, tokenize=False)
    assert training == (original + "<|user|>" if name == "glm4moe" else original)


def _check_offsets(text: str, offsets: list[tuple[int, int]]) -> None:
    """Token spans tile ``text`` in order, with one documented exception: when byte-level BPE
    splits one code point's UTF-8 bytes over several tokens, each of them reports that whole
    code point, so a span may start one character before the previous one ended."""
    pieces, end = [], 0
    for start, stop in offsets:
        assert start <= end, f"gap {end}..{start}"
        if start < end:
            assert start == end - 1 and not text[start].isascii(), (start, stop, end)
        assert stop >= end
        pieces.append(text[end:stop])
        end = stop
    assert end == len(text)
    assert "".join(pieces) == text


@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize("kind", sorted(TEXTS))
def test_offsets_cover_the_text(name: str, kind: str) -> None:
    tokenizer = family_tokenizer(name)
    text = TEXTS[kind]
    encoded = tokenizer(text, return_offsets_mapping=True, add_special_tokens=False)
    assert len(encoded["offset_mapping"]) == len(encoded["input_ids"])
    _check_offsets(text, [tuple(span) for span in encoded["offset_mapping"]])


@pytest.mark.parametrize("name", FAMILIES)
def test_offsets_cover_a_rendered_conversation(name: str) -> None:
    tokenizer = family_tokenizer(name, training=True)
    text = tokenizer.apply_chat_template(CONVERSATION, tokenize=False)
    encoded = tokenizer(text, return_offsets_mapping=True, add_special_tokens=False)
    _check_offsets(text, [tuple(span) for span in encoded["offset_mapping"]])


def test_tokenizers_are_cached_on_disk_and_in_memory() -> None:
    assert family_tokenizer("qwen3") is family_tokenizer("qwen3")
    assert family_tokenizer("qwen3") is not family_tokenizer("qwen3", training=True)
    folders = {path.name.rsplit("-", 1)[0] for path in cache_root().iterdir() if (path / "tokenizer.json").is_file()}
    assert "qwen3" in folders


def test_unknown_family() -> None:
    with pytest.raises(ValueError, match="unknown model family"):
        family_tokenizer("gpt2")


# --------------------------------------------------------------------------- other vocabularies

# Plain text (no control tokens): the TEXTS, edge cases of SentencePiece's dummy prefix, and a real
# 17k-character system prompt recorded from Codex.
PLAIN = [
    *TEXTS.values(),
    " leading space",
    "\nnewline first",
    "two  spaces\n\n\nthree newlines\t",
    "▁ already escaped",
    (Path(__file__).parent / "data" / "recorded" / "codex" / "two-models.system.txt").read_text(encoding="utf-8"),
]
# Families whose tokenizer prepends bos with add_special_tokens=True, on every vocabulary.
PREPENDS_BOS = {"llama3", "gemma3"}
# Tekken (130k pieces, slower to load) is checked in the slow run, as the oracle runs on it there.
ON_VOCABULARIES = [
    pytest.param(vocabulary, id=vocabulary, marks=[pytest.mark.slow] if vocabulary == "tekken" else [])
    for vocabulary in VOCABULARIES
]


def _mistral_data(name: str) -> str:
    return str(importlib.metadata.distribution("mistral-common").locate_file(f"mistral_common/data/{name}"))


@pytest.mark.parametrize("name", ["qwen3", "phi3"])
def test_sentencepiece_pairing_encodes_plain_text_as_sentencepiece_does(name: str) -> None:
    """The reference is the ``sentencepiece`` library itself on Mistral's ``tokenizer.model.v1``."""
    import sentencepiece

    model = sentencepiece.SentencePieceProcessor(model_file=_mistral_data("tokenizer.model.v1"))
    tokenizer = family_tokenizer(name, vocabulary="sentencepiece")
    for text in PLAIN:
        assert tokenizer.encode(text, add_special_tokens=False) == model.encode(text), text[:40]
        if "▁" not in text:  # SentencePiece decodes a literal ▁ as a space
            assert tokenizer.decode(tokenizer.encode(text, add_special_tokens=False)) == text, text[:40]
    # the dummy prefix, a space, byte fallback for a character outside the 32k pieces
    assert tokenizer.tokenize(" a 𝔘") == ["▁", "▁a", "▁", "<0xF0>", "<0x9D>", "<0x94>", "<0x98>"]


@pytest.mark.slow
def test_tekken_pairing_encodes_plain_text_as_mistral_common_does() -> None:
    """The reference is mistral-common's own ``Tekkenizer``, whose ids are shifted by its 1,000 control ids."""
    from mistral_common.tokens.tokenizers.tekken import Tekkenizer

    tekken = Tekkenizer.from_file(_mistral_data("tekken_240911.json"))
    tokenizer = family_tokenizer("qwen3", vocabulary="tekken")
    for text in PLAIN:
        expected = [token - 1000 for token in tekken.encode(text, bos=False, eos=False)]
        assert tokenizer.encode(text, add_special_tokens=False) == expected, text[:40]
        assert tokenizer.decode(expected) == text, text[:40]


@pytest.mark.parametrize("vocabulary", ON_VOCABULARIES)
@pytest.mark.parametrize("name", FAMILIES)
def test_family_on_another_vocabulary(name: str, vocabulary: str) -> None:
    """The family's template, control tokens (same flags) and bos/eos/pad on the other vocabulary's pieces."""
    own, tokenizer = family_tokenizer(name), family_tokenizer(name, vocabulary=vocabulary)
    assert isinstance(tokenizer, PreTrainedTokenizerFast)
    assert tokenizer.chat_template == chat_template(name)
    training = family_tokenizer(name, training=True, vocabulary=vocabulary)
    assert training.chat_template == chat_template(name, training=True)
    assert (tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token) == IDENTITY[name][1:]
    flags = {str(t): (t.special, t.rstrip) for t in own.added_tokens_decoder.values()}
    assert {str(t): (t.special, t.rstrip) for t in tokenizer.added_tokens_decoder.values()} == flags
    base = {"sentencepiece": 32_000, "tekken": 130_072}[vocabulary]
    # Only SentencePiece's own <unk>, <s>, </s> (ids 0, 1, 2) are reused; every other token is new.
    reused = {"<unk>", "<s>", "</s>"} & set(flags) if vocabulary == "sentencepiece" else set()
    assert len(tokenizer) == base + len(flags) - len(reused)
    assert (tokenizer("x")["input_ids"][0] == tokenizer.bos_token_id) == (name in PREPENDS_BOS)
    added = tokenizer.get_added_vocab()
    for token in TEMPLATE_TOKENS[name]:
        assert tokenizer.encode(token, add_special_tokens=False) == [added[token]], token
        in_context = tokenizer.encode(f"a{token}b", add_special_tokens=False)
        if vocabulary == "sentencepiece":  # a dummy-prefix ▁ opens each segment, as in Llama 2's tokenizer.json
            assert tokenizer.convert_ids_to_tokens(in_context) == ["▁a", token, "▁b"], token
        else:
            assert tokenizer.decode(in_context) == f"a{token}b", token
    rendered = tokenizer.apply_chat_template(CONVERSATION, tokenize=False)
    assert rendered == own.apply_chat_template(CONVERSATION, tokenize=False) or name == "gptoss"  # today's date


def test_phi3_on_sentencepiece_has_the_real_phi3_ids() -> None:
    """Phi-3 is Llama 2's 32k SentencePiece model plus 11 added tokens: on Mistral's 32k model its
    control tokens take the ids they have in microsoft/Phi-3-mini-4k-instruct."""
    tokenizer = family_tokenizer("phi3", vocabulary="sentencepiece")
    real = {"<unk>": 0, "<s>": 1, "</s>": 2, "<|endoftext|>": 32000, "<|assistant|>": 32001}
    real |= {"<|placeholder1|>": 32002, "<|system|>": 32006, "<|end|>": 32007, "<|user|>": 32010}
    assert {token: tokenizer.convert_tokens_to_ids(token) for token in real} == real
    assert len(tokenizer) == 32_011


@pytest.mark.parametrize("name", FAMILIES)
def test_sentencepiece_offsets_of_a_rendered_conversation(name: str) -> None:
    """Token offsets tile the rendered text as on byte-level vocabularies, except SentencePiece's
    dummy-prefix ``▁``: a token of its own only where the segment after a control token opens with
    a character it cannot merge with (``\n``), carrying that character's offsets."""
    tokenizer = family_tokenizer(name, training=True, vocabulary="sentencepiece")
    text = tokenizer.apply_chat_template(CONVERSATION, tokenize=False)
    encoded = tokenizer(text, return_offsets_mapping=True, add_special_tokens=False)
    pieces, offsets = tokenizer.convert_ids_to_tokens(encoded["input_ids"]), encoded["offset_mapping"]
    added = set(tokenizer.get_added_vocab())
    prefixes = [i for i in range(len(pieces) - 1) if pieces[i] == "▁" and tuple(offsets[i]) == tuple(offsets[i + 1])]
    for i in prefixes:
        assert i == 0 or pieces[i - 1] in added, (i, pieces[i - 1 : i + 2])
        assert text[offsets[i][0]] == "\n" and pieces[i + 1] == "<0x0A>"
    _check_offsets(text, [tuple(span) for i, span in enumerate(offsets) if i not in prefixes])
    # no "\n" right after a control token in these renderings (phi3's rstrip tokens absorb it)
    assert (len(prefixes) > 0) == (name not in {"phi3", "deepseekv3", "gptoss"})


@pytest.mark.parametrize("vocabulary", ON_VOCABULARIES)
@pytest.mark.parametrize("kind", sorted(TEXTS))
def test_round_trip_on_other_vocabularies(vocabulary: str, kind: str) -> None:
    tokenizer = family_tokenizer("gemma3", vocabulary=vocabulary)
    assert tokenizer.decode(tokenizer.encode(TEXTS[kind], add_special_tokens=False)) == TEXTS[kind]


def test_other_vocabularies_are_cached_and_checked() -> None:
    pairing = family_tokenizer("qwen3", vocabulary="sentencepiece")
    assert pairing is family_tokenizer("qwen3", vocabulary="sentencepiece")
    assert pairing is not family_tokenizer("qwen3")
    assert family_tokenizer("qwen3") is family_tokenizer("qwen3", vocabulary=None)
    folders = {path.name.rsplit("-", 1)[0] for path in cache_root().iterdir() if (path / "tokenizer.json").is_file()}
    assert "qwen3-on-sentencepiece" in folders
    with pytest.raises(ValueError, match="unknown vocabulary 'gpt2'"):
        family_tokenizer("qwen3", vocabulary="gpt2")
