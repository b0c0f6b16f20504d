"""An agent run split in two, as on Ray: what ``produce`` packs (the session's bytes, the workspace as a
bounded tar) crosses a pickle, and ``keep`` writes it where the output is (no CLI, no sandbox); CLI
installs on one machine wait for each other."""

from __future__ import annotations

import os
import pickle
import threading
from pathlib import Path

import pytest
import yaml

from teich.errors import GenerationError, OutputError
from teich.generate.agents.install import installing
from teich.generate.agents.provider import AgentRun, _pack
from teich.generate.config import Config
from teich.generate.prompts import PromptSpec
from teich.generate.providers import PROVIDERS

PI_SESSION = Path(__file__).parent / "data" / "recorded" / "pi" / "bash-execution.jsonl"
SPEC = PromptSpec(prompt="What did my two commands show?")


@pytest.fixture
def provider(tmp_path):
    config = {
        "agent": {"provider": "pi"},
        "model": {"model": "m"},
        "api": {"provider": "custom", "base_url": "http://127.0.0.1:9/v1"},
        "prompts_file": "prompts.jsonl",
        "sandbox": {"backend": "none"},
    }
    (tmp_path / "prompts.jsonl").write_text('"hi"\n')
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    return PROVIDERS["pi"](Config.from_yaml(tmp_path / "config.yaml"))


def _workspace(folder: Path) -> Path:
    """5 + 100 + 5 bytes of files, two symlinks (one absolute) and an empty folder."""
    (folder / "b").mkdir(parents=True)
    (folder / "a.txt").write_text("alpha")
    (folder / "b" / "big.bin").write_bytes(b"x" * 100)
    (folder / "c.sh").write_text("gamma")
    (folder / "c.sh").chmod(0o755)
    (folder / "empty").mkdir()
    (folder / "to-a").symlink_to("a.txt")
    (folder / "to-etc").symlink_to("/etc/hostname")
    return folder


def test_a_packed_run_crosses_a_pickle_and_is_kept(tmp_path, provider):
    packed, omitted, unreadable = _pack(_workspace(tmp_path / "workspace"), limit=20)
    assert omitted == ("b/big.bin",) and unreadable == ""  # 5 + 100 > 20: left out; 5 + 5 fit
    produced = pickle.loads(pickle.dumps(AgentRun("1700000000_abc.jsonl", PI_SESSION.read_bytes(), packed, omitted)))
    metadata = provider.keep(SPEC, produced)
    assert metadata["usage"]["output"] == 25 + 7  # the recorded session's two answers
    assert (tmp_path / "output" / f"{SPEC.key}.jsonl").read_bytes() == PI_SESSION.read_bytes()
    snapshot = tmp_path / "sandbox" / SPEC.key
    assert (snapshot / "a.txt").read_text() == "alpha" and (snapshot / "c.sh").read_text() == "gamma"
    assert os.access(snapshot / "c.sh", os.X_OK)
    assert os.readlink(snapshot / "to-a") == "a.txt" and os.readlink(snapshot / "to-etc") == "/etc/hostname"
    assert (snapshot / "empty").is_dir() and not (snapshot / "b" / "big.bin").exists()
    assert (tmp_path / "sandbox" / f"{SPEC.key}.omitted").read_text() == "b/big.bin\n"
    # kept again under a larger limit: the whole workspace, and no list of omissions
    packed, omitted, _ = _pack(tmp_path / "workspace")
    provider.keep(SPEC, AgentRun("1700000000_abc.jsonl", PI_SESSION.read_bytes(), packed, omitted))
    assert (snapshot / "b" / "big.bin").read_bytes() == b"x" * 100
    assert not (tmp_path / "sandbox" / f"{SPEC.key}.omitted").exists()


def test_an_unfinished_session_is_carried_to_failures(tmp_path, provider):
    unfinished = b"".join(PI_SESSION.read_bytes().splitlines(keepends=True)[:6])  # ends on the user's turn
    packed, _, _ = _pack(_workspace(tmp_path / "workspace"))
    with pytest.raises(GenerationError, match="incomplete trace"):
        provider.keep(SPEC, AgentRun("s.jsonl", unfinished, packed))
    assert (tmp_path / "failures" / f"{SPEC.key}.session.jsonl").read_bytes() == unfinished
    assert not list((tmp_path / "output").glob("*.jsonl")) and not (tmp_path / "sandbox").exists()


def test_a_workspace_packed_in_part_keeps_the_session_and_stops_the_run(tmp_path, provider):
    packed, _, _ = _pack(_workspace(tmp_path / "workspace"))
    denied = "[Errno 13] Permission denied: 'secret'"
    with pytest.raises(OutputError) as raised:
        provider.keep(SPEC, AgentRun("s.jsonl", PI_SESSION.read_bytes(), packed, (), denied))
    assert str(raised.value).startswith(f"cannot write {tmp_path / 'sandbox' / SPEC.key}: {denied}; ")
    assert (tmp_path / "output" / f"{SPEC.key}.jsonl").read_bytes() == PI_SESSION.read_bytes()


def test_installs_wait_for_each_other(tmp_path, monkeypatch):
    monkeypatch.setenv("TEICH_AGENTS_DIR", str(tmp_path / "agents"))
    entered = threading.Event()

    def second() -> None:
        with installing():
            entered.set()

    with installing():
        waiting = threading.Thread(target=second)
        waiting.start()
        assert not entered.wait(0.5)  # held: the second install waits
    assert entered.wait(10)
    waiting.join(10)
