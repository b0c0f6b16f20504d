"""Agent conversations for oracle tests: the shared real traces, the recorded CLI sessions, and
synthetic rows that stress what agent traces hold (reasoning beside calls, parallel calls answered
out of order or not at all, several results in a row, failed calls, long outputs with template
markers inside, tool-call turns after a new user turn, text before calls, images in results).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RECORDED = Path(__file__).resolve().parent / "data" / "recorded"
AGENT_ROWS = 40


def _tool(name: str, **properties: str) -> dict[str, Any]:
    schema = {"type": "object", "properties": {k: {"type": v} for k, v in properties.items()}}
    return {"type": "function", "function": {"name": name, "description": f"{name} tool", "parameters": schema}}


TOOLS = [
    _tool("bash", command="string", timeout="integer"),
    _tool("read_file", path="string"),
    _tool("write_file", path="string", content="string"),
    _tool("search", query="string", paths="array", options="object"),
]


def _call(call_id: str, name: str, **arguments: Any) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def _user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


def _turn(content: str = "", reasoning: str | None = None, *calls: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if reasoning:
        message["reasoning_content"] = reasoning
    if calls:
        message["tool_calls"] = list(calls)
    return message


def _result(call_id: str, content: Any, error: bool = False) -> dict[str, Any]:
    message = {"role": "tool", "tool_call_id": call_id, "content": content}
    return message | {"is_error": True} if error else message


def _bash_steps(prefix: str, *steps: tuple[str, str]) -> list[dict[str, Any]]:
    """A bare bash call turn and its result for each ``(command, output)``."""
    return [
        message
        for n, (command, output) in enumerate(steps)
        for message in (
            _turn("", None, _call(f"{prefix}{n}", "bash", command=command)),
            _result(f"{prefix}{n}", output),
        )
    ]


_LOG = "\n".join(f'[{i:04d}] step {i}: ok <|end|> <|im_end|> <｜end▁of▁sentence｜> {{"k": "v\\n"}}' for i in range(120))
_SYSTEM = "You are a coding agent. Use the tools; be brief.\nAlways run the tests."


def _synthetic() -> list[list[dict[str, Any]]]:
    """Synthetic agent conversations (messages only; every row offers :data:`TOOLS`)."""
    return [
        # reasoning, text and three parallel calls answered out of order, then a reasoned answer
        [
            {"role": "system", "content": _SYSTEM},
            _user("Find where `parse` is defined and how many tests cover it."),
            _turn(
                "Searching in parallel.",
                "Three lookups at once.",
                _call("p1", "search", query="def parse", paths=["src"], options={"regex": False}),
                _call("p2", "bash", command="grep -rn 'parse(' tests | wc -l"),
                _call("p3", "read_file", path="src/parse.py"),
            ),
            _result("p3", "def parse(text: str) -> Tree:\n    ..."),
            _result("p1", "src/parse.py:1:def parse(text: str) -> Tree:"),
            _result("p2", "14"),
            _turn("`parse` is in src/parse.py; 14 test lines call it.", "All three came back."),
        ],
        # a chain of reasoned calls with failures and retries, no text before calls
        [
            _user("Run the test suite and fix what fails."),
            _turn("", "Run them first.", _call("c1", "bash", command="pytest -q", timeout=600)),
            _result("c1", "E   ModuleNotFoundError: No module named 'yaml'\n1 error in 0.21s", error=True),
            _turn("", "Missing dependency.", _call("c2", "bash", command="pip install pyyaml")),
            _result("c2", "error: externally-managed-environment", error=True),
            _turn("", "Use the venv.", _call("c3", "bash", command=".venv/bin/pip install pyyaml")),
            _result("c3", "Successfully installed PyYAML-6.0.2"),
            _turn("", None, _call("c4", "bash", command="pytest -q")),
            _result("c4", "42 passed in 3.10s"),
            _turn("All 42 tests pass after installing PyYAML into the venv.", "Done."),
        ],
        # text before every call, over several turns
        [
            _user("Create hello.py that prints hi, then run it."),
            _turn("I'll write the file.", None, _call("w1", "write_file", path="hello.py", content='print("hi")\n')),
            _result("w1", "wrote 12 bytes"),
            _turn("Now running it.", None, _call("w2", "bash", command="python hello.py")),
            _result("w2", "hi\n"),
            _turn("Checking the file once more.", None, _call("w3", "read_file", path="hello.py")),
            _result("w3", 'print("hi")\n'),
            _turn('hello.py prints "hi".'),
        ],
        # a long log full of template markers, JSON-looking and quoted results in a row
        [
            _user("Why does the build fail?"),
            _turn(
                "",
                "Look at the log and the config together.",
                _call("l1", "bash", command="cat build.log"),
                _call("l2", "read_file", path="config.json"),
                _call("l3", "bash", command='echo "quote \\" backslash \\\\ tab\t"'),
            ),
            _result("l1", _LOG),
            _result("l2", json.dumps({"target": "x86_64", "flags": ["-O2", "-g"], "nested": {"a": None}})),
            _result("l3", 'quote " backslash \\ tab\t'),
            _turn("The log shows 120 ok steps; the config targets x86_64 with -O2 -g."),
        ],
        # a tool-call turn after a new user turn, twice
        [
            _user("What is in the current folder?"),
            _turn("", None, _call("u1", "bash", command="ls")),
            _result("u1", "README.md\nsrc\ntests"),
            _turn("README.md, src and tests."),
            _user("And in src?"),
            _turn("", "List src.", _call("u2", "bash", command="ls src")),
            _result("u2", "main.py"),
            _turn("Only main.py."),
            _user("Show it."),
            _turn("Reading it.", None, _call("u3", "read_file", path="src/main.py")),
            _result("u3", "print('main')"),
            _turn("It prints 'main'."),
        ],
        # text that repeats the command, empty, whitespace-only and tiny results, results equal to arguments
        [
            _user("Touch a file and check it is empty."),
            _turn("touch empty.txt && ls", None, _call("e1", "bash", command="touch empty.txt && ls")),
            _result("e1", "empty.txt"),
            *_bash_steps("step", ("true", ""), ("wc -c < empty.txt", "0\n"), ("echo ls", "ls")),
            _turn("", None, _call("e4", "read_file", path="empty.txt")),
            _result("e4", "   \n"),
            _turn("empty.txt exists and is 0 bytes."),
        ],
        # arguments of every JSON type, non-ASCII, no arguments
        [
            _user("Search for the café config, 設定 included."),
            _turn(
                "",
                "Use every option.",
                _call(
                    "a1",
                    "search",
                    query="café 設定 🎉",
                    paths=["src", "docs/ü"],
                    options={"depth": 3, "exact": True, "ratio": 0.5, "skip": None, "tags": []},
                ),
            ),
            _result("a1", "docs/ü/café.md:3: 設定 = 1 🎉"),
            _turn("", None, _call("a2", "bash")),
            _result("a2", "usage: bash COMMAND", error=True),
            _turn("Found it in docs/ü/café.md (設定 = 1 🎉)."),
        ],
        # a parallel call with one call never answered, then an answer
        [
            _user("Read both files."),
            _turn("", None, _call("m1", "read_file", path="a.txt"), _call("m2", "read_file", path="b.txt")),
            _result("m2", "bee"),
            _turn("b.txt says bee; a.txt could not be read."),
        ],
        # reasoning only on the last turn; developer and late system messages
        [
            {"role": "system", "content": _SYSTEM},
            {"role": "developer", "content": "Prefer read_file over cat."},
            _user("How long is README.md?"),
            _turn("", None, _call("d1", "bash", command="wc -l README.md")),
            _result("d1", "12 README.md"),
            {"role": "system", "content": "The user is in a hurry."},
            _user("Quick."),
            _turn("12 lines.", "The tool said 12."),
        ],
        # a run the user redirects after a result, with text and reasoning beside each call
        [
            _user("Start the server."),
            _turn("Starting it.", "Run in the background.", _call("s1", "bash", command="./serve &")),
            _result("s1", "listening on :8080"),
            _user("Use port 9000 instead."),
            _turn("Restarting on 9000.", "Kill and restart.", _call("s2", "bash", command="./serve --port 9000 &")),
            _result("s2", "listening on :9000"),
            _turn("The server now listens on :9000."),
        ],
        # a conversation that ends on a reasoned tool call (killed before the result)
        [
            _user("Deploy."),
            _turn("", "Check first.", _call("k1", "bash", command="git status")),
            _result("k1", "nothing to commit"),
            _turn("Clean tree, deploying.", "Deploy now.", _call("k2", "bash", command="make deploy")),
        ],
        # answers that start on a new line, reasoning with code, several users
        [
            _user("Write a one-line fizzbuzz."),
            _turn("\nprint(*('Fizz'*(i%3<1)+'Buzz'*(i%5<1) or i for i in range(1,16)))", "```python\nx = 1\n```"),
            _user("Test it."),
            _turn(
                "", None, _call("f1", "bash", command="python -c \"print(*('Fizz'*(i%3<1) or i for i in (1,2,3)))\"")
            ),
            _result("f1", "1 2 Fizz"),
            _turn("It prints 1 2 Fizz for the first three."),
        ],
        # an image in a tool result and in the user turn
        [
            _user([{"type": "text", "text": "What does this screenshot show?"}, {"type": "image", "image": "x"}]),
            _turn("", None, _call("i1", "read_file", path="shot.png")),
            _result("i1", [{"type": "text", "text": "PNG 640x480"}, {"type": "image", "image": "y"}]),
            _turn("A 640x480 PNG of a login form."),
        ],
        # many short steps
        [
            _user("Count to five with the tool."),
            *[
                message
                for n in range(1, 6)
                for message in (
                    _turn("", f"Step {n}.", _call(f"n{n}", "bash", command=f"echo {n}")),
                    _result(f"n{n}", str(n)),
                )
            ],
            _turn("1 2 3 4 5", "Counted."),
        ],
    ]


def synthetic_rows() -> list[dict[str, Any]]:
    """The synthetic agent conversations as OpenAI-style rows."""
    return [{"messages": messages, "tools": TOOLS} for messages in _synthetic()]


def agent_sources(shared_traces: Path, folder: Path) -> list[Path]:
    """Every agent conversation as trace files: the shared traces, the recorded sessions, and the
    synthetic rows (written to ``folder``); :data:`AGENT_ROWS` rows in all."""
    synthetic = folder / "synthetic_agents.jsonl"
    synthetic.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in synthetic_rows()), "utf-8")
    return [*sorted(shared_traces.glob("*.jsonl")), *sorted(RECORDED.glob("*/*.jsonl")), synthetic]
