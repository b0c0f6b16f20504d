"""``teich generate`` on a real Ray cluster started on this machine: 100 prompts against the scripted
server with a worker or the driver killed mid-run, exactly 100 rows, and the prompts visible as Ray tasks
in Ray's own state API. Every Ray address is on 127.0.0.1 (checked on the sockets of the head and the
driver), and the cluster takes only its own token (``RAY_AUTH_MODE=token``), so no other Ray on this
machine can join it or submit to it. Drivers run as ``teich generate`` subprocesses, as users run them."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml
from openai_server import Fault, Reply, ScriptedServer, scripted_servers
from typer.testing import CliRunner

from teich import load_traces
from teich.cli import app
from teich.generate.agents.provider import AgentCli, agent_clis
from teich.generate.config import Config
from teich.generate.providers import PROVIDERS, SplitProvider

ray = pytest.importorskip("ray", reason='needs Ray: pip install "teich[ray]"')
pytestmark = pytest.mark.skipif(shutil.which("ray") is None, reason="needs the ray command")
LOOPBACK = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}  # Ray advertises 127.0.0.1, not the interface address
PROMPTS = [f"prompt {i}" for i in range(100)]
RAY_SETTINGS = [*LOOPBACK, "RAY_AUTH_MODE", "RAY_AUTH_TOKEN"]


@dataclass(frozen=True)
class Cluster:
    """A Ray head on 127.0.0.1: its address, state API (dashboard) URL, process, and the environment a
    driver needs to join it (loopback, its token)."""

    address: str
    dashboard: str
    head: psutil.Process
    env: dict[str, str]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[Cluster]:
    """A Ray head on 127.0.0.1 taking only its own token; every port it opens is free or picked by Ray."""
    port, dashboard, client, agent = (_free_port() for _ in range(4))
    env = os.environ | LOOPBACK | {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16)}
    command = ["ray", "start", "--head", "--block", "--node-ip-address", "127.0.0.1", "--port", str(port)]
    command += ["--num-cpus", "2", "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dashboard)]
    command += ["--ray-client-server-port", str(client), "--dashboard-agent-listen-port", str(agent)]
    command += ["--disable-usage-stats", "--temp-dir", str(tmp_path_factory.mktemp("ray"))]
    log = tmp_path_factory.mktemp("ray-log") / "head.log"
    with log.open("wb") as out:
        head = subprocess.Popen(command, env=env, stdout=out, stderr=out, start_new_session=True)
    process = psutil.Process(head.pid)
    try:
        _wait_for(lambda: b"Ray runtime started" in log.read_bytes() or head.poll() is not None, 120)
        assert head.poll() is None, log.read_text()
        with _in_this_process(env):
            yield Cluster(f"127.0.0.1:{port}", f"http://127.0.0.1:{dashboard}", process, env)
    finally:
        _kill_tree(process)


@contextmanager
def _in_this_process(env: dict[str, str]) -> Iterator[None]:
    """``env``'s Ray settings for drivers run in this process too (``CliRunner``): Ray reads them when
    imported, so its config is reloaded now and again once they are restored."""
    saved = {name: os.environ.get(name) for name in RAY_SETTINGS}
    os.environ.update({name: env[name] for name in RAY_SETTINGS})
    ray._raylet.Config.initialize("")
    try:
        yield
    finally:
        for name, value in saved.items():
            os.environ.pop(name, None) if value is None else os.environ.__setitem__(name, value)
        ray._raylet.Config.initialize("")


def _kill_tree(process: psutil.Process) -> None:
    """SIGKILL ``process`` and everything under it (Ray's graceful stop drains for up to 30 s)."""
    for each in [*process.children(recursive=True), process]:
        try:
            each.kill()
        except psutil.Error:
            continue
    psutil.wait_procs([process], timeout=30)


def _wait_for(condition: Callable[[], object], seconds: float) -> None:
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


def _loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip.split("%")[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.is_loopback


class SocketWatch(threading.Thread):
    """Until stopped, records every inet socket of the given processes (and their descendants) that is
    bound to or connected to an address off loopback: a listener on 0.0.0.0 counts too."""

    def __init__(self, *roots: psutil.Process) -> None:
        super().__init__(daemon=True)
        self.roots, self.foreign, self.seen = roots, set[str](), 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(0.1):
            for process in self._processes():
                self._check(process)

    def _processes(self) -> list[psutil.Process]:
        found = list(self.roots)
        for root in self.roots:
            try:
                found += root.children(recursive=True)
            except psutil.Error:
                continue
        return found

    def _check(self, process: psutil.Process) -> None:
        try:
            connections = process.net_connections(kind="inet")
        except psutil.Error:
            return
        for connection in connections:
            self.seen += 1
            for end in (connection.laddr, connection.raddr):
                if end and not _loopback(end.ip):
                    self.foreign.add(f"{process.name()} {end.ip}:{end.port} ({connection.status})")

    def stop(self) -> SocketWatch:
        self._stop_event.set()
        self.join(10)
        return self


def _write_config(folder: Path, server: ScriptedServer, address: str) -> Path:
    (folder / "prompts.jsonl").write_text("".join(json.dumps(p) + "\n" for p in PROMPTS))
    config = {
        "model": {"model": "scripted-model"},
        "api": {"provider": "custom", "base_url": server.base_url, "api_key": "sk-ray"},
        "prompts_file": "prompts.jsonl",
        "concurrency": 8,
        "retry": {"max_attempts": 2, "backoff_seconds": 0.01},
        "execution": {"backend": "ray", "address": address},
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    return folder / "config.yaml"


def _answer(body) -> Reply | Fault:
    return Reply(content=f"answer to {body['messages'][-1]['content']}", delay=0.2)


def _generate(cluster: Cluster, config: Path, *options: str) -> subprocess.Popen[str]:
    """``teich generate`` as a subprocess joining ``cluster`` with its token; Teich itself keeps Ray on
    loopback for the address ``127.0.0.1:PORT``."""
    command = [sys.executable, "-m", "teich", "generate", "-c", str(config), *options]
    env = {name: value for name, value in cluster.env.items() if name not in LOOPBACK}
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(driver: subprocess.Popen[str], seconds: float = 300) -> str:
    output, _ = driver.communicate(timeout=seconds)
    assert driver.returncode == 0, output
    return output


def _rows(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "output" / "train.jsonl").read_text().splitlines()]


def _assert_exactly_the_prompts(folder: Path) -> None:
    rows = _rows(folder)
    assert sorted(row["prompt"] for row in rows) == sorted(PROMPTS)  # exactly 100 rows, no duplicates
    assert all(row["response"] == f"answer to {row['prompt']}" for row in rows)


def _finished_prompt_tasks(cluster: Cluster) -> dict[str, int]:
    """Per Ray job, how many distinct ``teich-prompt`` tasks Ray's state API (the head's dashboard) lists
    as FINISHED; asked from a subprocess holding the cluster's token."""
    ask = (
        "import collections, json, sys\n"
        "from ray.util.state import list_tasks\n"
        "tasks = list_tasks(address=sys.argv[1], filters=[('name', '=', 'teich-prompt')], limit=10000,"
        " raise_on_missing_output=False)\n"
        "done = {(t.job_id, t.task_id) for t in tasks if t.state == 'FINISHED'}\n"
        "print(json.dumps(collections.Counter(job for job, _ in done)))\n"
    )
    asked = subprocess.run(
        [sys.executable, "-c", ask, cluster.dashboard], env=cluster.env, capture_output=True, text=True, timeout=120
    )
    assert asked.returncode == 0, asked.stderr
    return dict(json.loads(asked.stdout.splitlines()[-1]))


@pytest.mark.slow
def test_a_hundred_prompts_on_ray_survive_a_killed_worker(cluster, tmp_path):
    with scripted_servers() as make:
        server = make(_answer)
        config = _write_config(tmp_path, server, cluster.address)
        driver = _generate(cluster, config)
        watch = SocketWatch(cluster.head, psutil.Process(driver.pid))
        watch.start()
        _wait_for(lambda: len(server.requests) >= 30, 240)
        killed = _kill_a_busy_worker(cluster.head)
        output = _finish(driver)
        watch.stop()
        assert killed and "100 done, 0 failed" in output
        _assert_exactly_the_prompts(tmp_path)
        # resuming finds nothing left to do
        again = _finish(_generate(cluster, config, "--resume"))
    assert "0 done, 0 failed, 100 already done" in again
    assert watch.seen and not watch.foreign, watch.foreign  # every Ray socket stayed on 127.0.0.1
    # the prompts ran as Ray tasks, as Ray's own state API shows: one job finished 100 of them
    finished: dict[str, int] = {}

    def listed() -> bool:
        finished.update(_finished_prompt_tasks(cluster))
        return 100 in finished.values()

    _wait_for(listed, 60)


@pytest.mark.slow
def test_a_killed_driver_loses_nothing_on_resume(cluster, tmp_path):
    with scripted_servers() as make:
        server = make(_answer)
        config = _write_config(tmp_path, server, cluster.address)
        driver = _generate(cluster, config)
        rows = tmp_path / "output" / "train.jsonl"
        _wait_for(lambda: rows.exists() and rows.read_bytes().count(b"\n") >= 20, 240)
        driver.send_signal(signal.SIGKILL)
        driver.wait(30)
        kept = rows.read_bytes().count(b"\n")
        assert kept < len(PROMPTS), "the run ended before it was killed"
        output = _finish(_generate(cluster, config, "--resume"))
    done = re.search(r"(\d+) done, 0 failed, (\d+) already done", output)
    assert done and int(done[1]) + int(done[2]) == len(PROMPTS) and int(done[2]) >= kept, output
    _assert_exactly_the_prompts(tmp_path)


@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        ("127.0.0.1:6379", True),
        ("localhost:6379", True),
        ("[::1]:6379", True),
        ("ray://127.0.0.2:10001", True),
        ("10.0.0.5:6379", False),
        ("head.example:6379", False),
        ("auto", False),
        (None, False),
    ],
)
def test_a_loopback_address_keeps_the_driver_on_loopback(address, loopback, monkeypatch):
    """Ray would swap a loopback address for the interface address unless told not to, at import or after."""
    from ray._private import ray_constants

    from teich.generate.distributed import _stay_on_loopback

    monkeypatch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "1")
    monkeypatch.setattr(ray_constants, "ENABLE_RAY_CLUSTER", True)
    _stay_on_loopback(address)
    assert os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] == ("0" if loopback else "1")
    assert ray_constants.ENABLE_RAY_CLUSTER is not loopback


@pytest.mark.parametrize("auth_mode", [None, "token"])
def test_a_refused_connection_names_token_auth(auth_mode, tmp_path, monkeypatch):
    """Ray 2.60 answers a driver without the head's token only "Failed to connect" (after ~20 s of retries,
    seen against a real head): the one error line says what may be missing, unless the token is set."""

    def refuse(**_: object) -> None:
        raise ConnectionError("Failed to connect to Ray cluster at 127.0.0.1:6399")

    if auth_mode:
        monkeypatch.setenv("RAY_AUTH_MODE", auth_mode)
    else:
        monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    monkeypatch.setattr(ray, "init", refuse)
    (tmp_path / "prompts.jsonl").write_text('"hi"\n')
    config = {
        "model": {"model": "m"},
        "api": {"provider": "custom", "base_url": "http://127.0.0.1:9/v1", "api_key": "sk-x"},
        "prompts_file": "prompts.jsonl",
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    result = CliRunner().invoke(app, ["generate", "-c", str(tmp_path / "config.yaml"), "--ray", "127.0.0.1:6399"])
    assert result.exit_code == 1
    line = (
        "error: cannot connect to the Ray cluster at 127.0.0.1:6399: Failed to connect to Ray cluster at 127.0.0.1:6399"
    )
    assert line in result.output
    assert ("RAY_AUTH_MODE=token and its RAY_AUTH_TOKEN" in result.output) is (auth_mode is None)
    assert not (tmp_path / "output" / "train.jsonl").exists()


def test_ray_needs_a_split_provider(tmp_path):
    """A provider whose runs do not split is refused on Ray with one line, before any prompt runs; every
    agent provider splits, so it runs there."""
    from test_registries import EchoProvider

    (tmp_path / "prompts.jsonl").write_text('"hi"\n')
    config = {
        "agent": {"provider": "echo"},
        "model": {"model": "m"},
        "api": {"provider": "custom", "base_url": "http://127.0.0.1:9/v1"},
        "prompts_file": "prompts.jsonl",
        "sandbox": {"backend": "none"},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    with PROVIDERS.registered(EchoProvider):
        result = CliRunner().invoke(app, ["generate", "-c", str(tmp_path / "config.yaml"), "--ray", "127.0.0.1:9"])
    assert result.exit_code == 1
    assert "error: the echo provider cannot run on Ray" in result.output
    assert not (tmp_path / "output" / "echo.jsonl").exists()
    for cli in agent_clis():
        config["agent"] = {"provider": cli.name}
        (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
        assert isinstance(cli(Config.from_yaml(tmp_path / "config.yaml")), SplitProvider), cli.name


# The toy agent: answers a prompt in a Pi session in its home, writes the prompt and the process that
# started it (the Ray worker) into its workspace; "unfinished" leaves the session on the user's turn,
# "crash" exits non-zero.
TOY_AGENT = """
import json, os, sys
prompt = sys.argv[1]
if prompt == "crash":
    sys.exit("boom: the toy agent crashed")
with open(f"/proc/{os.getppid()}/cmdline", "rb") as parent:
    started_by = parent.read().split(b"\\0")[0].decode().strip()
with open("answer.txt", "w") as answer, open("started_by.txt", "w") as runner:
    answer.write(prompt), runner.write(started_by)
at = "2026-01-01T00:00:00.000Z"
user = {"role": "user", "content": [{"type": "text", "text": prompt}], "timestamp": 1}
usage = {"input": 10, "output": 3, "cacheRead": 0, "cacheWrite": 0, "totalTokens": 13}
reply = {"role": "assistant", "content": [{"type": "text", "text": "echo: " + prompt}], "api": "openai-completions",
         "provider": "toy", "model": "toy-model", "usage": usage, "stopReason": "stop", "timestamp": 2}
records = [{"type": "session", "version": 3, "id": "toy-" + prompt, "timestamp": at, "cwd": os.getcwd()},
           {"type": "message", "id": "u1", "parentId": None, "timestamp": at, "message": user}]
if prompt != "unfinished":
    records.append({"type": "message", "id": "a1", "parentId": "u1", "timestamp": at, "message": reply})
with open(os.path.join(os.environ["HOME"], "toy-session.jsonl"), "w") as session:
    session.writelines(json.dumps(record) + "\\n" for record in records)
"""


class ToyCli(AgentCli):
    """The toy agent as an agent CLI; ``package`` is the folder holding its script (its "install")."""

    def install(self) -> Path:
        return Path(self.package)

    def offered_tools(self) -> list[dict[str, Any]]:
        return []

    def setup(self, home: Path, config: Config, base_url: str) -> dict[str, str]:
        return {}

    def command(self, executable: str, prompt: str, workspace: Path, session: str | None, config: Config) -> list[str]:
        return [sys.executable, executable, prompt]

    def session_id(self, stdout: str, home: Path) -> str | None:
        return "toy"

    def session_file(self, home: Path, session: str | None) -> Path | None:
        return home / "toy-session.jsonl"


@pytest.mark.slow
def test_an_agent_provider_runs_on_ray(cluster, tmp_path):
    """Each prompt's agent runs in its sandbox on a Ray worker; its session lands in the output, its
    workspace in the sandbox folder, and an unfinished session or a crash in failures."""
    from ray import cloudpickle

    (tmp_path / "toy").mkdir()
    (tmp_path / "toy" / "toy-agent.py").write_text(TOY_AGENT)
    toy = ToyCli("toy-agent", str(tmp_path / "toy"), "1.0", "toy-agent.py")
    prompts = ["alpha", "beta", "unfinished", "crash"]
    (tmp_path / "prompts.jsonl").write_text("".join(json.dumps(p) + "\n" for p in prompts))
    config = {
        "agent": {"provider": "toy-agent"},
        "model": {"model": "toy-model"},
        "api": {"provider": "custom", "base_url": "http://127.0.0.1:9/v1", "api_key": "sk-toy"},
        "prompts_file": "prompts.jsonl",
        "sandbox": {"backend": "none"},
        "retry": {"max_attempts": 1, "timeout_seconds": 60},
        "execution": {"backend": "ray", "address": cluster.address},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import this test module
    try:
        with PROVIDERS.registered(toy):  # the driver runs in this process, where the toy is registered
            result = CliRunner().invoke(app, ["generate", "-c", str(tmp_path / "config.yaml")])
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    assert result.exit_code == 1, result.output  # two prompts failed
    assert "2 done, 2 failed" in result.output
    sessions = sorted((tmp_path / "output").glob("*.jsonl"))
    assert len(sessions) == 2
    rows = {row["prompt"]: row for row in load_traces(tmp_path / "output")}
    assert {prompt: row["messages"][-1]["content"] for prompt, row in rows.items()} == {
        "alpha": "echo: alpha",
        "beta": "echo: beta",
    }
    for session in sessions:
        first = json.loads(session.read_text().splitlines()[0])
        snapshot = tmp_path / "sandbox" / session.stem
        assert (snapshot / "answer.txt").read_text() == first["id"].removeprefix("toy-")
        assert (snapshot / "started_by.txt").read_text() == "ray::teich-prompt"  # a Ray task ran the agent
    assert sorted(p.name for p in (tmp_path / "sandbox").iterdir()) == sorted(s.stem for s in sessions)
    records = {json.loads(p.read_text())["prompt"]: p for p in (tmp_path / "failures").glob("*.json")}
    assert set(records) == {"unfinished", "crash"}
    crash = json.loads(records["crash"].read_text())
    assert "exited with code 1" in crash["error"] and "boom: the toy agent crashed" in crash["agent_output"]
    unfinished = json.loads(records["unfinished"].read_text())
    assert "incomplete trace" in unfinished["error"]
    kept = records["unfinished"].with_suffix(".session.jsonl")  # the unfinished session, carried back
    assert [json.loads(line)["type"] for line in kept.read_text().splitlines()] == ["session", "message"]
