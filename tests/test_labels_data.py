"""Labels are data: a policy applied at prepare time or by ``relabel`` survives saving, loading,
shuffling and every TRL packing strategy in another process; no module keeps state; datasets
carry no tokenizer.

Expected labels are computed from the ``spans`` column's token positions by ``test_mask``'s
independent helpers, never by ``teich.training.labels``.
"""

# ruff: noqa: F811 (test_mask's fixtures are imported, and requested by name)

from __future__ import annotations

import collections
import copy
import gc
import importlib
import inspect
import json
import pickle
import pkgutil
import re
import subprocess
import sys
import tracemalloc
import types
import warnings
import weakref
from collections import Counter
from pathlib import Path
from typing import Any

import datasets
import pyarrow as pa
import pytest
from model_families import FAMILIES, family_tokenizer
from sft_batches import IGNORE, SETUPS, collated_rows, make_trainer, tiny_model
from test_mask import (
    DEFAULT_FLAGS,
    NON_DEFAULT,
    agent_row,
    assert_audit,
    audit_of,
    expected_labels,
    kinds_of,
    prepared,  # noqa: F401 (a fixture)
    rows_file,  # noqa: F401 (a fixture)
    tok,  # noqa: F401 (a fixture)
    trained_mask,
    write_rows,
)

import teich
from teich import Policy, TeichError, audit, mask_data, prepare_data, preview, preview_sft_example, relabel
from teich.training.templates import profile_template

TESTS = Path(__file__).resolve().parent
POLICY = {**NON_DEFAULT, "max_supervised_tokens": 40}  # the cap bites on the agent rows (42), not the plain ones
CUT = 180  # packed max_length: inside the agent rows (226 tokens), past the plain rows' end


def expected_rows(dataset, policy: dict[str, Any]) -> dict[tuple[int, ...], list[int]]:
    cap = policy.get("max_supervised_tokens")
    kinds = kinds_of({k: v for k, v in policy.items() if k != "max_supervised_tokens"})
    return {tuple(r["input_ids"]): expected_labels(r["input_ids"], r["spans"], kinds, cap) for r in dataset}


def loss_tokens(sequences) -> Counter:
    """The sequences as a multiset, each sequence's first label masked: no token predicts it, and the
    padding-free collator masks it so that the previous sequence does not either."""
    return Counter((tuple(ids), (IGNORE, *labels[1:])) for ids, labels in sequences)


def chunks(ids: list[int], labels: list[int], size: int) -> list[tuple[list[int], list[int]]]:
    return [(ids[i : i + size], labels[i : i + size]) for i in range(0, len(ids), size)]


def expected_sequences(setup: str, order: list[list[int]], expected) -> list[tuple[list[int], list[int]]]:
    """What each set-up feeds the model, from the rows in the order the trainer saw them."""
    rows = [(ids, expected[tuple(ids)]) for ids in order]
    if setup == "unpacked":
        return rows
    if setup == "bfd":  # each sequence cut at max_length
        return [(ids[:CUT], labels[:CUT]) for ids, labels in rows]
    if setup == "bfd_split":  # each sequence split into max_length pieces
        return [piece for ids, labels in rows for piece in chunks(ids, labels, CUT)]
    stream = [pair for ids, labels in rows for pair in zip(ids, labels, strict=True)]  # wrapped: one stream, cut
    return chunks([i for i, _ in stream], [label for _, label in stream], CUT)


# ---------------------------------------------------------------------------------------------
# 1. Another process, any packing
# ---------------------------------------------------------------------------------------------


def test_policy_survives_saving_and_every_packing_in_a_fresh_process(rows_file, tok, tmp_path):
    with_policy = prepare_data(rows_file, tok, **POLICY)
    expected = expected_rows(with_policy, POLICY)
    assert {tuple(r["input_ids"]): r["labels"] for r in with_policy} == expected  # the first process's labels
    supervisable = [sum(trained_mask(len(r["input_ids"]), r["spans"], kinds_of(NON_DEFAULT))) for r in with_policy]
    assert max(supervisable) > POLICY["max_supervised_tokens"]  # the cap bites
    with_policy.save_to_disk(tmp_path / "with_policy")
    prepare_data(rows_file, tok).save_to_disk(tmp_path / "default")
    job = {
        "family": "qwen3",
        "policy": POLICY,
        "seed": 7,
        "workdir": str(tmp_path / "work"),
        "max_length": {setup: 512 if setup == "unpacked" else CUT for setup in SETUPS},
        "sources": {
            "prepared_with_policy": {"path": str(tmp_path / "with_policy"), "relabel": False},
            "relabelled_there": {"path": str(tmp_path / "default"), "relabel": True},
        },
    }
    (tmp_path / "job.json").write_text(json.dumps(job))
    script = [sys.executable, str(TESTS / "sft_batches.py"), str(tmp_path / "job.json"), str(tmp_path / "out.json")]
    run = subprocess.run(script, cwd=TESTS, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-4000:]
    results = json.loads((tmp_path / "out.json").read_text())
    for source, result in results.items():
        assert sorted(map(tuple, result["order"])) == sorted(expected)
        assert result["order"] != with_policy[:]["input_ids"]  # really shuffled
        for setup in SETUPS:
            want = loss_tokens(expected_sequences(setup, result["order"], expected))
            got = result[setup]
            assert loss_tokens(got["before"]) == want, (source, setup)  # the plain trainer
            assert loss_tokens(got["after"]) == want, (source, setup)  # mask_data with the same policy
            refusal = got["default_policy_refusal"]
            if setup == "unpacked":
                assert refusal is None  # unpacked rows keep their spans: relabelled
            else:
                assert refusal.startswith("the trainer packed the train rows and dropped their spans"), refusal
                assert "not training final_answer, reasoning, tool_call as asked" in refusal


# ---------------------------------------------------------------------------------------------
# 2. relabel is preparing with the policy
# ---------------------------------------------------------------------------------------------


def single_flag_policies() -> list[dict[str, Any]]:
    return [{flag: not on} for flag, on in DEFAULT_FLAGS.items()] + [{"max_supervised_tokens": 100}]


def arrow(dataset) -> pa.Table:
    return dataset.with_format("arrow")[:]


@pytest.mark.parametrize("family", FAMILIES)
def test_relabel_equals_preparing_with_the_policy(family, shared_traces):
    tokenizer = family_tokenizer(family)
    default = prepare_data(shared_traces, tokenizer, strict=False)
    assert len(default) >= 1  # Llama 3 renders only the trace without tool calls
    for policy in single_flag_policies():
        try:
            direct = prepare_data(shared_traces, tokenizer, strict=False, **policy)
        except TeichError as error:  # e.g. no final answer on Llama 3's one row: nothing left to train
            assert "fully masked" in str(error)
            with pytest.raises(TeichError, match="fully masked"):
                relabel(default, **policy)
            continue
        relabelled = relabel(default, **policy)
        assert arrow(relabelled).equals(arrow(direct)), (family, policy)
        assert relabelled.info.description == direct.info.description
        assert relabelled.features == direct.features


def test_relabel_after_map_shuffle_select_save_and_load(prepared, tmp_path):
    changed = prepared.map(lambda row: {"note": len(row["text"])}).shuffle(seed=3).select([4, 0, 2])
    changed.save_to_disk(tmp_path / "saved")
    loaded = datasets.load_from_disk(tmp_path / "saved")
    relabelled = relabel(loaded, **POLICY)
    rows, before = relabelled[:], changed[:]
    assert relabelled.column_names == loaded.column_names and rows["note"] == before["note"]
    assert rows["input_ids"] == before["input_ids"]
    expected = expected_rows(prepared, POLICY)
    assert rows["labels"] == [expected[tuple(ids)] for ids in rows["input_ids"]]
    assert audit(relabelled).supervised == sum(label != IGNORE for row in rows["labels"] for label in row)


def test_audit_and_preview_of_a_loaded_dataset(prepared, tok, tmp_path):
    prepared.save_to_disk(tmp_path / "saved")
    loaded = datasets.load_from_disk(tmp_path / "saved")
    kinds = kinds_of(NON_DEFAULT)
    assert_audit(audit(loaded), audit_of(prepared, kinds_of({})))
    assert_audit(audit(loaded, **NON_DEFAULT), audit_of(prepared, kinds))
    assert_audit(audit(loaded, **NON_DEFAULT), audit(relabel(loaded, **NON_DEFAULT)))
    capped = audit(loaded, **POLICY)
    assert capped.capped_rows == 3 and capped == audit(relabel(loaded, **POLICY))
    row = loaded[1]
    shown = preview(loaded, 1, tok, color=False)
    assert shown == preview_sft_example(tok, row["input_ids"], row["labels"], color=False) and "[[" in shown


def test_mask_data_refuses_packed_labels_of_mixed_policies(prepared, tok, tmp_path):
    """Concatenated datasets of two policies record none: packed, their labels cannot be vouched for."""
    mixed = datasets.concatenate_datasets([prepared, relabel(prepared, **NON_DEFAULT)])
    trainer = make_trainer(tiny_model(tok), tok, mixed, tmp_path, packing=True)
    with pytest.raises(TeichError, match="dropped their spans, .* and their labels record no teich policy to keep"):
        mask_data(trainer, audit=False)


def test_policy_options_are_checked(rows_file, tok, prepared):
    with pytest.raises(TeichError, match="unknown option train_on_tool; the policy options are"):
        relabel(prepared, train_on_tool=False)
    with pytest.raises(TeichError, match="needs tokenize=True"):
        prepare_data(rows_file, tok, tokenize=False, train_on_user=True)
    with pytest.raises(TeichError, match="max_supervised_tokens must be"):
        Policy(max_supervised_tokens=-1)
    with pytest.raises(TeichError, match="every row of the prepared dataset is fully masked"):
        prepare_data(rows_file, tok, **dict.fromkeys(DEFAULT_FLAGS, False))


def test_tokenize_is_the_default_and_text_only_warns(rows_file, tok):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dataset = prepare_data(rows_file, tok)
    assert {"input_ids", "labels", "num_tokens"} <= set(dataset.column_names)
    with pytest.warns(UserWarning, match="pass tokenize=True, or call teich.mask_data"):
        assert prepare_data(rows_file, tok, tokenize=False).column_names == ["text", "spans"]


# ---------------------------------------------------------------------------------------------
# 3. No hidden state, no tokenizer inside datasets
# ---------------------------------------------------------------------------------------------


def package_modules() -> list[types.ModuleType]:
    """Every module of the teich package (``__main__`` would run the CLI)."""
    found = pkgutil.walk_packages(teich.__path__, "teich.")
    return [importlib.import_module(info.name) for info in found if not info.name.endswith("__main__")]


@pytest.mark.parametrize("module", package_modules(), ids=lambda module: module.__name__)
def test_no_module_level_mutable_state(module):
    """Module-level values are constants (tuples, frozensets, read-only mappings) or registries
    (:class:`teich.registry.Registry`, filled once on first use); a cache is bounded (``maxsize``) and
    keyed by value. ``datasets.Features``, a dict, is the one constant that must have a mutable type."""
    mutable = (dict, list, set, bytearray, collections.deque)
    own = {n: v for n, v in vars(module).items() if not n.startswith("__") and not isinstance(v, types.ModuleType)}
    names = [n for n, v in own.items() if isinstance(v, mutable) and not isinstance(v, datasets.Features)]
    assert not names, f"{module.__name__} keeps module-level state: {names}"
    caches = [n for n, v in own.items() if hasattr(v, "cache_info") and v.__module__.startswith("teich")]
    assert not [n for n in caches if own[n].cache_info().maxsize is None], f"{module.__name__}: unbounded {caches}"
    assert not re.search(r"^\s*global\s", inspect.getsource(module), re.MULTILINE), module.__name__


def test_template_profiles_keep_no_tokenizer_alive():
    """The profile cache is keyed by the template's values: a tokenizer profiled once can be freed."""
    tokenizer = copy.copy(family_tokenizer("llama3"))
    tokenizer.chat_template += "{#- a template of its own, so a profile of its own #}"
    profile_template(tokenizer)
    alive = weakref.ref(tokenizer)
    del tokenizer
    gc.collect()
    assert alive() is None


def test_preparing_again_does_not_grow_memory(tok, tmp_path):
    """Three preparations of 150 agent rows of the same shape leave Python's heap as the first left it.
    The rows differ from run to run, so that state keyed by content (a registry of token spans by
    digest of the ids, as there was) is not merely overwritten: such a registry grows by about
    0.85 kB a row, 250 kB over the two later runs (measured). The tolerance, 64 kB, is four times
    the growth measured without one (about 16 kB: CPython and pyarrow caches that level off)."""
    files = [write_rows(tmp_path / f"{n}.jsonl", [agent_row(150 * n + i) for i in range(150)]) for n in range(4)]
    prepare_data(files[0], tok)  # warm-up: template profile, lazy imports
    tracemalloc.start()
    try:
        current = []
        for path in files[1:]:
            dataset = prepare_data(path, tok)
            del dataset
            gc.collect()
            current.append(tracemalloc.get_traced_memory()[0])
    finally:
        tracemalloc.stop()
    assert current[2] - current[0] < 64_000, current


def test_datasets_carry_no_tokenizer(prepared, tok, tmp_path):
    tokenizer_size = len(pickle.dumps(tok))
    trainer = mask_data(make_trainer(tiny_model(tok), tok, prepared, tmp_path), audit=False, **NON_DEFAULT)
    for dataset in (prepared, relabel(prepared, **NON_DEFAULT), trainer.train_dataset):
        size = len(pickle.dumps(dataset))
        assert size < 200_000 < tokenizer_size, (size, tokenizer_size)
        assert not [v for v in vars(dataset).values() if v is tok]


def test_skip_prepare_dataset_trains_exactly_the_prepared_labels(rows_file, tok, tmp_path):
    """The documented fast path: a prepared dataset needs none of TRL's passes."""
    dataset = prepare_data(rows_file, tok, **NON_DEFAULT)
    trainer = make_trainer(tiny_model(tok), tok, dataset, tmp_path, dataset_kwargs={"skip_prepare_dataset": True})
    sequences = collated_rows(trainer)
    assert sorted(map(tuple, (ids for ids, _ in sequences))) == sorted(map(tuple, dataset["input_ids"]))
    by_ids = {tuple(row["input_ids"]): row["labels"] for row in dataset}
    assert all(labels == by_ids[tuple(ids)] for ids, labels in sequences)


@pytest.mark.parametrize("family", ["qwen3_6", "gptoss", "deepseekv3"])
def test_forked_workers_prepare_the_same_dataset(shared_traces, tmp_path, family):
    """``num_proc`` renders and tokenizes in forked processes: the dataset (every column, row order)
    and the report are those of one process, rows dropped, trimmed and kept alike."""
    from agent_rows import agent_sources

    tokenizer = family_tokenizer(family)
    sources = agent_sources(shared_traces, tmp_path)
    options = {"strict": False, "max_length": 700, "oversized_policy": "trim_followups", "return_report": True}
    one, one_report = prepare_data(sources, tokenizer, **options, **POLICY)
    forked, forked_report = prepare_data(sources, tokenizer, num_proc=2, **options, **POLICY)
    assert one_report.trimmed and one_report.kept_row_ids  # the case exercises trimming
    assert forked.to_dict() == one.to_dict()
    assert forked_report.summary() == one_report.summary()
    assert (forked_report.dropped, forked_report.trimmed) == (one_report.dropped, one_report.trimmed)
