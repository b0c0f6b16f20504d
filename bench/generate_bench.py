"""``teich generate`` with the local backend against the Ray backend on this machine.

The same prompts go to the scripted OpenAI-compatible server (``tests/openai_server.py``) answering
each request after a fixed latency, at the same concurrency; ``teich generate`` runs as a subprocess,
as users run it. The Ray backend joins a one-node cluster the bench starts on 127.0.0.1 (its own token,
``RAY_AUTH_MODE=token``). For each backend: the wall time of the whole run, prompts/s, and the start-up
(a run of one wave, ``--limit CONCURRENCY``); then the ratio, and the per-prompt overhead Ray adds once
started: ``((ray - ray start-up) - (local - local start-up)) * concurrency / (prompts - concurrency)``.

    python bench/generate_bench.py                       # 200 prompts, 0.5 s a request, concurrency 8
    python bench/generate_bench.py --repeat 3            # the median of 3 runs of each
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the scripted OpenAI-compatible server

from openai_server import Reply, ScriptedServer  # noqa: E402


def _port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def ray_head(folder: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """A one-node Ray cluster on 127.0.0.1 for the block: its address and the environment to join it."""
    env = os.environ | {
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(16),
    }
    port = _port()
    command = ["ray", "start", "--head", "--block", "--node-ip-address", "127.0.0.1", "--port", str(port)]
    command += ["--dashboard-host", "127.0.0.1", "--dashboard-port", str(_port()), "--disable-usage-stats"]
    command += ["--ray-client-server-port", str(_port()), "--dashboard-agent-listen-port", str(_port())]
    log = folder / "head.log"
    with log.open("wb") as out:
        head = psutil.Popen([*command, "--temp-dir", str(folder / "ray")], env=env, stdout=out, stderr=out)
    try:
        while b"Ray runtime started" not in log.read_bytes():
            if head.poll() is not None:
                raise SystemExit(f"ray start failed:\n{log.read_text()}")
            time.sleep(0.2)
        yield f"127.0.0.1:{port}", env
    finally:
        for process in [*head.children(recursive=True), head]:
            try:
                process.kill()
            except psutil.Error:
                continue


def write_config(folder: Path, base_url: str, prompts: int, concurrency: int, address: str | None) -> Path:
    """A project in ``folder``: ``prompts`` distinct prompts, the local backend or Ray at ``address``."""
    folder.mkdir(parents=True)
    (folder / "prompts.jsonl").write_text("".join(json.dumps(f"prompt {i}") + "\n" for i in range(prompts)))
    config = {
        "model": {"model": "scripted-model"},
        "api": {"provider": "custom", "base_url": base_url, "api_key": "sk-bench"},
        "prompts_file": "prompts.jsonl",
        "concurrency": concurrency,
        "execution": {"backend": "ray", "address": address} if address else {"backend": "local"},
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    return folder / "config.yaml"


def timed_run(config: Path, env: dict[str, str], expected: int, *options: str) -> float:
    """Seconds one ``teich generate`` subprocess takes; it must write ``expected`` rows."""
    start = time.perf_counter()
    command = [sys.executable, "-m", "teich", "generate", "-c", str(config), *options]
    done = subprocess.run(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seconds = time.perf_counter() - start
    counted = re.search(r"(\d+) done, 0 failed", done.stdout)
    if done.returncode or not counted or int(counted[1]) != expected:
        raise SystemExit(f"{config}: run failed:\n{done.stdout}")
    return seconds


def measure(
    folder: Path, base_url: str, args: argparse.Namespace, address: str | None, env: dict[str, str]
) -> tuple[float, float]:
    """Median wall seconds of the whole run and of one wave (start-up), each in a fresh project."""
    whole, wave = [], []
    for attempt in range(args.repeat):
        full = write_config(folder / f"full-{attempt}", base_url, args.prompts, args.concurrency, address)
        whole.append(timed_run(full, env, args.prompts))
        one = write_config(folder / f"wave-{attempt}", base_url, args.prompts, args.concurrency, address)
        wave.append(timed_run(one, env, args.concurrency, "--limit", str(args.concurrency)))
    return statistics.median(whole), statistics.median(wave)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=200)
    parser.add_argument("--latency", type=float, default=0.5, help="seconds the server takes per request")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=1, help="runs of each backend; the median is printed")
    args = parser.parse_args()
    server = ScriptedServer(lambda body: Reply(content="an answer", delay=args.latency)).start()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        local = measure(folder / "local", server.base_url, args, None, dict(os.environ))
        with ray_head(folder) as (address, env):
            on_ray = measure(folder / "ray", server.base_url, args, address, env)
    server.close()
    floor = args.prompts / args.concurrency * args.latency
    print(f"{args.prompts} prompts, {args.latency} s a request, concurrency {args.concurrency}: floor {floor:.1f} s")
    for name, (whole, wave) in (("local", local), ("ray", on_ray)):
        print(f"{name:>6}: {whole:6.1f} s  {args.prompts / whole:6.1f} prompts/s  start-up (one wave) {wave:5.1f} s")
    print(f" ratio: ray/local wall time {on_ray[0] / local[0]:.2f}")
    marginal = (on_ray[0] - on_ray[1]) - (local[0] - local[1])
    overhead = marginal * args.concurrency / (args.prompts - args.concurrency)
    print(f"ray overhead once started: {overhead * 1000:.0f} ms a prompt; start-up {on_ray[1] - local[1]:.1f} s more")


if __name__ == "__main__":
    main()
