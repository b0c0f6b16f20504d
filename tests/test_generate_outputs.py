"""``teich generate`` when its outputs are in danger: a full or read-only disk, two runs on one folder,
secrets echoed by a server, settings that cannot work, a Hub that cannot be reached. Each ends in one
clear line, and no answer already received is asked for again."""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import huggingface_hub.constants
import pytest
from openai_server import Fault, Reply, scripted_servers
from test_generate import make_project, rows_of, run

from teich.generate.output import LOCK_FILE

PROMPTS = ["a", "b", "c", "d", "e"]
SECRET = "sk-live-0123456789abcdef"


@pytest.fixture
def scripted_server():
    with scripted_servers() as make:
        yield make


@pytest.fixture(autouse=True)
def state_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A state folder of the test's own, where answers go that the output folder cannot take."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    return tmp_path / "state"


def asked(server) -> list[str]:
    """The prompts the server was asked, in order."""
    return [body["messages"][-1]["content"] for body in server.bodies]


def one_line(result) -> str:
    """The run's only line of output besides its progress bar; a traceback or a second line fails the test."""
    lines = [line for line in result.output.strip().splitlines() if not line.startswith(("starting ", "done "))]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


def full_disk(monkeypatch: pytest.MonkeyPatch, folder: Path, code: int) -> dict[str, bool]:
    """Make writes under ``folder`` fail with ``code`` while the returned switch is on: like a real full
    disk, the first write takes half its bytes and the next one fails."""
    switch = {"on": False}
    real_write, real_fsync = os.write, os.fsync

    def full(descriptor: int) -> bool:
        return switch["on"] and Path(os.readlink(f"/proc/self/fd/{descriptor}")).is_relative_to(folder)

    def write(descriptor: int, data) -> int:
        if full(descriptor) and not switch.get("partial"):
            switch["partial"] = True
            return real_write(descriptor, bytes(data[: len(data) // 2]))
        if full(descriptor):
            raise OSError(code, os.strerror(code))
        return real_write(descriptor, data)

    def fsync(descriptor: int) -> None:  # where a file written through a buffer finds the disk full
        if full(descriptor):
            raise OSError(code, os.strerror(code))
        real_fsync(descriptor)

    monkeypatch.setattr(os, "write", write)
    monkeypatch.setattr(os, "fsync", fsync)
    return switch


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS])
def test_full_disk_keeps_the_answers_and_resume_asks_only_for_the_rest(
    tmp_path, scripted_server, monkeypatch, state_home, code
):
    disk = full_disk(monkeypatch, tmp_path / "output", code)

    def script(body):
        prompt = body["messages"][-1]["content"]
        disk["on"] = prompt == "c"  # the disk fills while "c" is being answered
        return Reply(content=f"answer {prompt}")

    server = scripted_server(script)
    config = make_project(tmp_path, server, PROMPTS, concurrency=1)
    result = run("-c", str(config))
    assert result.exit_code == 1
    line = one_line(result)
    assert f"cannot write {tmp_path / 'output' / 'train.jsonl'}: {os.strerror(code)}" in line
    (spill,) = (state_home / "teich" / "unwritten").iterdir()
    assert f"; 1 answer received kept in {spill}; " in line and "rerun with --resume" in line
    assert asked(server) == ["a", "b", "c"]  # nothing was asked once the output failed
    assert (tmp_path / "output" / "train.jsonl").read_text().endswith("}\n")  # the partial line was cut off
    assert [row["prompt"] for row in rows_of(config)] == ["a", "b"]
    assert [json.loads(row)["response"] for row in spill.read_text().splitlines()] == ["answer c"]

    disk["on"] = False  # space is freed
    assert run("-c", str(config)).exit_code == 1  # the kept answer counts as output: --resume is needed
    result = run("-c", str(config), "--resume")
    assert result.exit_code == 0, result.output
    assert "2 done, 0 failed, 3 already done" in result.output
    assert asked(server) == PROMPTS  # "c" was not asked again
    assert sorted(row["prompt"] for row in rows_of(config)) == PROMPTS
    assert {row["prompt"]: row["response"] for row in rows_of(config)}["c"] == "answer c" and not spill.exists()


def test_resume_on_a_still_full_disk_asks_nothing(tmp_path, scripted_server, monkeypatch, state_home):
    disk = full_disk(monkeypatch, tmp_path / "output", errno.ENOSPC)
    server = scripted_server(lambda body: Reply(content="ok"))
    config = make_project(tmp_path, server, PROMPTS, concurrency=1)
    assert run("-c", str(config), "--limit", "1").exit_code == 0
    disk["on"] = True
    result = run("-c", str(config), "--resume")
    assert result.exit_code == 1 and "1 answer received kept in" in one_line(result)
    result = run("-c", str(config), "--resume")  # still full: the kept answer stays where it is
    assert result.exit_code == 1
    assert "No space left on device; 1 answer still kept in " in one_line(result)
    assert asked(server) == ["a", "b"]
    disk["on"] = False
    assert run("-c", str(config), "--resume").exit_code == 0
    assert asked(server) == PROMPTS and sorted(row["prompt"] for row in rows_of(config)) == PROMPTS


def test_unwritable_failures_folder_stops_the_run_with_one_line(tmp_path, scripted_server, monkeypatch):
    server = scripted_server(lambda body: Fault(status=400))
    config = make_project(tmp_path, server, PROMPTS, concurrency=1)
    full_disk(monkeypatch, tmp_path / "failures", errno.ENOSPC)["on"] = True
    result = run("-c", str(config))
    assert result.exit_code == 1
    assert f"cannot write {tmp_path / 'failures'}" in one_line(result) and "No space left on device" in result.output
    assert asked(server) == ["a"]


def test_output_folder_inside_a_file_fails_before_asking(tmp_path, scripted_server):
    server = scripted_server(lambda body: Reply(content="ok"))
    config = make_project(tmp_path, server, PROMPTS)
    (tmp_path / "blocker").write_text("a file, not a folder")
    result = run("-c", str(config), "--output", str(tmp_path / "blocker" / "output"))
    assert result.exit_code == 1
    assert f"cannot write to the output folder {tmp_path / 'blocker' / 'output'}: Not a directory" in one_line(result)
    assert asked(server) == []


def _can_mount_read_only(folder: Path) -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-m", "sh", "-c", f"mount --bind {folder} {folder} && mount -o remount,bind,ro {folder}"],
        capture_output=True,
    )
    return probe.returncode == 0


def test_read_only_output_folder_fails_before_asking(tmp_path, scripted_server):
    """A real read-only mount (root ignores file modes): refused before any request, then finished."""
    output = tmp_path / "output"
    output.mkdir()
    if not _can_mount_read_only(output):
        pytest.skip("needs unshare and mount (root in a mount namespace)")
    server = scripted_server(lambda body: Reply(content="ok"))
    config = make_project(tmp_path, server, PROMPTS)
    mount = f"mount --bind {output} {output} && mount -o remount,bind,ro {output}"
    command = f'{mount} && exec "$0" -m teich generate -c {config}'
    process = subprocess.run(["unshare", "-m", "sh", "-c", command, sys.executable], capture_output=True, text=True)
    assert process.returncode == 1
    assert process.stderr.strip() == f"error: cannot write to the output folder {output}: Read-only file system"
    assert asked(server) == []
    result = run("-c", str(config), "--resume")
    assert result.exit_code == 0, result.output
    assert sorted(asked(server)) == PROMPTS and sorted(row["prompt"] for row in rows_of(config)) == PROMPTS


def test_two_runs_at_once_on_one_folder(tmp_path, scripted_server):
    server = scripted_server(lambda body: Reply(content="ok " + body["messages"][-1]["content"], delay=0.5))
    prompts = [f"prompt {i}" for i in range(8)]
    config = make_project(tmp_path, server, prompts, concurrency=2)
    command = [sys.executable, "-m", "teich", "generate", "-c", str(config)]
    processes = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in "ab"]
    stderrs = [process.communicate(timeout=120)[1] for process in processes]
    codes = [process.returncode for process in processes]
    assert sorted(codes) == [0, 1], stderrs
    holder, refused = processes[codes.index(0)], stderrs[codes.index(1)]
    assert refused.strip() == (
        f"error: another teich generate (pid {holder.pid}) is writing to {tmp_path / 'output'}: "
        "wait for it to finish, or pass another --output"
    )
    written = [row["prompt"] for row in rows_of(config)]
    assert sorted(written) == sorted(prompts) and len(written) == len(set(written))
    assert sorted(asked(server)) == sorted(prompts)  # no prompt was asked twice
    assert (tmp_path / "output" / LOCK_FILE).exists()  # left in place; the lock itself died with its process


def test_a_killed_run_leaves_no_lock_behind(tmp_path, scripted_server):
    server = scripted_server(lambda body: Reply(content="ok", delay=0.3))
    config = make_project(tmp_path, server, PROMPTS, concurrency=1)
    command = [sys.executable, "-m", "teich", "generate", "-c", str(config)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not server.bodies and time.monotonic() < deadline:
        time.sleep(0.02)
    process.kill()  # mid-request, holding the lock
    process.wait(timeout=10)
    result = run("-c", str(config), "--resume")
    assert result.exit_code == 0, result.output
    assert sorted(row["prompt"] for row in rows_of(config)) == PROMPTS


def test_secrets_echoed_by_the_server_are_redacted(tmp_path, scripted_server, monkeypatch):
    monkeypatch.setenv("MY_LLM_KEY", SECRET)
    monkeypatch.setenv("HF_TOKEN", "hf_token_0123456789")

    def script(body):
        prompt = body["messages"][-1]["content"]
        if prompt == "a":
            return Fault(status=401, body={"error": {"message": f"Incorrect API key provided: {SECRET}"}})
        if prompt == "b":
            echo = f"upstream rejected Bearer {SECRET} (and hf_token_0123456789)"
            return Fault(status=500, body={"error": {"message": echo}}, headers={"retry-after-ms": "1"})
        return Reply(content="fine")

    server = scripted_server(script)
    config = make_project(tmp_path, server, ["a", "b", "c"], api={"api_key": None, "api_key_env": "MY_LLM_KEY"})
    result = run("-c", str(config))
    assert result.exit_code == 1 and "1 done, 2 failed" in result.output
    assert server.requests[0].headers["authorization"] == f"Bearer {SECRET}"  # the key was used
    records = [json.loads(path.read_text()) for path in sorted((tmp_path / "failures").glob("*.json"))]
    assert all("[redacted]" in record["error"] for record in records), records
    assert "[redacted]" in result.output
    for text in [result.output, result.stderr, result.stdout]:
        assert SECRET not in text and "hf_token_0123456789" not in text
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert SECRET not in path.read_text(errors="replace"), path


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"api": {"base_url": "http://127.0.0.1:99999/v1"}}, "api.base_url: has an invalid port"),
        ({"api": {"base_url": "http://127.0.0.1:port/v1"}}, "api.base_url: has an invalid port"),
        ({"api": {"base_url": "http://"}}, "api.base_url: has no host name"),
        ({"api": {"base_url": "http://local host:1234/v1"}}, "api.base_url: should not contain spaces"),
        ({"api": {"base_url": "https://api..example.com/v1"}}, "api.base_url: has an invalid host name"),
        ({"concurrency": 10**12}, "concurrency: Input should be less than or equal to 1024"),
        ({"output": {"traces_dir": "blocker"}}, "output.traces_dir: {tmp}/blocker exists and is not a folder"),
        ({"output": {"failures_dir": "blocker/failures"}}, "output.failures_dir: {tmp}/blocker exists and is not"),
        ({"output": {}}, "output.traces_dir: {tmp}/output exists and is not a folder"),  # the default
    ],
)
def test_settings_that_cannot_work_are_refused_up_front(tmp_path, scripted_server, overrides, expected):
    server = scripted_server(lambda body: Reply(content="ok"))
    config = make_project(tmp_path, server, PROMPTS, **overrides)
    (tmp_path / ("output" if overrides == {"output": {}} else "blocker")).write_text("a file")
    result = run("-c", str(config))
    assert result.exit_code == 1
    assert f"config.yaml: {expected.format(tmp=tmp_path)}" in one_line(result)
    assert asked(server) == []


def test_publishing_to_an_unreachable_hub_is_one_line(tmp_path, scripted_server, monkeypatch):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{probe.getsockname()[1]}"
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", endpoint)
    monkeypatch.setenv("HF_TOKEN", "hf_token_0123456789")
    server = scripted_server(lambda body: Reply(content="ok"))
    config = make_project(tmp_path, server, ["a"], publish={"repo_id": "me/data"})
    result = run("-c", str(config))
    assert result.exit_code == 1
    assert f"error: publishing to me/data at {endpoint} failed: " in result.output
    assert "ConnectError" not in result.output and "Traceback" not in result.output
    assert [row["prompt"] for row in rows_of(config)] == ["a"]  # the rows are kept for another try
