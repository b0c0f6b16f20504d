"""``teich generate`` on a real Ray cluster started on this machine (every address on 127.0.0.1): 100
prompts against the scripted server, a worker killed mid-run, exactly 100 rows, and the prompts visible
as Ray tasks in Ray's own state API."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator

import psutil
import pytest
import yaml
from openai_server import Fault, Reply, scripted_servers
from typer.testing import CliRunner

from teich.cli import app

ray = pytest.importorskip("ray", reason='needs Ray: pip install "teich[ray]"')
pytestmark = pytest.mark.skipif(shutil.which("ray") is None, reason="needs the ray command")
LOOPBACK = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}  # Ray advertises 127.0.0.1, not the interface address


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[tuple[str, psutil.Process]]:
    """A Ray head on 127.0.0.1 (its dashboard serves the state API); yields its address and process."""
    port, dashboard = _free_port(), _free_port()
    command = ["ray", "start", "--head", "--block", "--node-ip-address", "127.0.0.1", "--port", str(port)]
    command += ["--num-cpus", "2", "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dashboard)]
    command += ["--disable-usage-stats", "--temp-dir", str(tmp_path_factory.mktemp("ray"))]
    log = tmp_path_factory.mktemp("ray-log") / "head.log"
    with log.open("wb") as out:
        head = subprocess.Popen(command, env=os.environ | LOOPBACK, stdout=out, stderr=out, start_new_session=True)
    address = f"127.0.0.1:{port}"
    try:
        _wait_for(lambda: b"Ray runtime started" in log.read_bytes() or head.poll() is not None, 120)
        assert head.poll() is None, log.read_text()
        yield address, psutil.Process(head.pid)
    finally:
        os.killpg(head.pid, signal.SIGTERM)  # the group this fixture started: the head and its workers
        try:
            head.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)


def _wait_for(condition, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def _kill_a_busy_worker(head: psutil.Process) -> int:
    """Kill (SIGKILL) one worker of this cluster while it runs a prompt; its pid."""
    for process in head.children(recursive=True):
        try:
            if process.cmdline()[:1] == ["ray::teich-prompt"]:
                process.kill()
                return process.pid
        except psutil.Error:
            continue
    raise AssertionError("no worker running a prompt")


@pytest.mark.slow
@pytest.mark.skip(reason="unfinished: under pytest the driver waits on a GCS at the interface address (issue 15)")
def test_a_hundred_prompts_on_ray_survive_a_killed_worker(cluster, tmp_path, monkeypatch):
    address, head = cluster
    monkeypatch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    prompts = [f"prompt {i}" for i in range(100)]

    def reply(body) -> Reply | Fault:
        return Reply(content=f"answer to {body['messages'][-1]['content']}", delay=0.2)

    with scripted_servers() as make:
        server = make(reply)
        (tmp_path / "prompts.jsonl").write_text("".join(json.dumps(p) + "\n" for p in prompts))
        config = {
            "model": {"model": "scripted-model"},
            "api": {"provider": "custom", "base_url": server.base_url, "api_key": "sk-ray"},
            "prompts_file": "prompts.jsonl",
            "concurrency": 8,
            "retry": {"max_attempts": 2, "backoff_seconds": 0.01},
            "execution": {"backend": "ray", "address": address},
        }
        (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
        killed: list[int] = []

        def kill_midway() -> None:
            _wait_for(lambda: len(server.requests) >= 30, 120)
            killed.append(_kill_a_busy_worker(head))

        killer = threading.Thread(target=kill_midway, daemon=True)
        killer.start()
        result = CliRunner().invoke(app, ["generate", "-c", str(tmp_path / "config.yaml")])
        killer.join(5)
    assert result.exit_code == 0, result.output
    assert killed, "the worker was not killed mid-run"
    rows = [json.loads(line) for line in (tmp_path / "output" / "train.jsonl").read_text().splitlines()]
    assert sorted(row["prompt"] for row in rows) == sorted(prompts)  # exactly 100 rows, no duplicates
    assert all(row["response"] == f"answer to {row['prompt']}" for row in rows)
    assert "100 done, 0 failed" in result.output
    # resuming finds nothing left to do
    again = CliRunner().invoke(app, ["generate", "-c", str(tmp_path / "config.yaml"), "--resume"])
    assert again.exit_code == 0 and "0 done, 0 failed, 100 already done" in again.output
    # the prompts ran as Ray tasks, as Ray's own state API shows
    from ray.util.state import list_tasks

    tasks = list_tasks(
        address=address, filters=[("name", "=", "teich-prompt")], limit=1000, raise_on_missing_output=False
    )
    finished = {task.task_id for task in tasks if task.state == "FINISHED"}
    assert len(finished) >= 100


def test_ray_needs_a_split_provider(tmp_path):
    """An agent provider is refused on Ray with one line, before any prompt runs."""
    (tmp_path / "prompts.jsonl").write_text('"hi"\n')
    config = {
        "agent": {"provider": "pi"},
        "model": {"model": "m"},
        "api": {"provider": "custom", "base_url": "http://127.0.0.1:9/v1"},
        "prompts_file": "prompts.jsonl",
        "sandbox": {"backend": "none"},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    result = CliRunner().invoke(app, ["generate", "-c", str(tmp_path / "config.yaml"), "--ray", "127.0.0.1:9"])
    assert result.exit_code == 1
    assert "error: the pi provider cannot run on Ray" in result.output
    assert not (tmp_path / "output" / "train.jsonl").exists()
