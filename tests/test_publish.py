"""``teich publish`` and ``publish()`` against a stand-in for the Hub's HTTP API (``hub_server.py``): one
commit of the folder with its card, the secret gate (file and line named, the value never shown),
``--allow-secrets``, ``--private``, ``teich generate``'s publishing through the same gate, and Hub
errors as one line."""

from __future__ import annotations

import gzip
import json
import random
import shutil
import string
from pathlib import Path

import pyarrow
import pyarrow.parquet
import pytest
from hub_server import TOKEN, HubRepo, serving_hub
from openai_server import Reply, scripted_servers
from test_generate import make_project
from typer.testing import CliRunner

from teich import PublishError, publish, write_folder_card
from teich.cli import app
from teich.privacy.card import render_folder_card
from teich.privacy.publish import Leak, find_secrets

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "traces"
_RANDOM = random.Random(13)
# Credentials in their real formats, random (no placeholder a detector may rightly let through).
GITHUB_TOKEN = "ghp_" + "".join(_RANDOM.choices(string.ascii_letters + string.digits, k=36))
AWS_KEY = "AKIA" + "".join(_RANDOM.choices(string.ascii_uppercase + string.digits, k=16))


@pytest.fixture
def hub(monkeypatch):
    with serving_hub(monkeypatch) as server:
        yield server


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """The example sessions and rows in a layout of their own, with hidden files that stay home."""
    root = tmp_path / "share"
    for name, sub in (("codex-hello.jsonl", "codex"), ("claude-code-count.jsonl", "claude"), ("chat-rows.jsonl", "")):
        (root / sub).mkdir(parents=True, exist_ok=True)
        shutil.copy(EXAMPLES / name, root / sub / name)
    (root / ".cache").mkdir()
    (root / ".cache" / "state.json").write_text("{}")
    (root / ".teich-generate.lock").write_text("")
    return root


def cli(*args: str):
    return CliRunner().invoke(app, ["publish", *args])


def one_line(result) -> str:
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


def plant(path: Path, line: int, value: str) -> None:
    """Put ``value`` into JSON line ``line`` (1-based) of ``path``, as a note the session carries."""
    lines = path.read_text().splitlines(keepends=True)
    record = json.loads(lines[line - 1])
    record["note"] = f"export SECRET={value}"
    lines[line - 1] = json.dumps(record) + "\n"
    path.write_text("".join(lines))


def files_on_disk(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
    }


def test_a_clean_folder_is_one_commit_with_its_card(folder, hub):
    result = cli(str(folder), "--repo", "me/agent-sessions")
    assert result.exit_code == 0, result.output
    assert f"to {hub.endpoint}/datasets/me/agent-sessions" in result.output
    repo = hub.repos["me/agent-sessions"]
    (commit,) = repo.commits
    expected = files_on_disk(folder)  # hidden files (.cache, the lock) stay home
    assert set(expected) == {"codex/codex-hello.jsonl", "claude/claude-code-count.jsonl", "chat-rows.jsonl"}
    card = commit.files.pop("README.md").decode()
    assert commit.files == expected and repo.private is False
    assert not (folder / "README.md").exists()  # the card is uploaded, not written into the folder
    # one codex session, one Claude Code session, two chat rows (one per line)
    assert card.startswith("---\npretty_name: agent-sessions\n")
    assert "| `codex` | 1 | 1 |" in card and "| `claude_code` | 1 | 1 |" in card
    assert "| `teich_chat` | 1 | 2 |" in card and "| all | 3 | 4 |" in card
    creates = [r for r in hub.requests if r.path == "/api/repos/create"]
    assert [r.body["type"] for r in creates] == ["dataset"]
    repo_calls = [r for r in hub.requests if r.path.startswith(("/api/repos/", "/api/datasets/"))]
    assert {r.headers.get("authorization") for r in repo_calls} == {f"Bearer {TOKEN}"}
    assert hub.errors == []


def test_secrets_stop_the_upload_naming_file_and_line_never_the_value(folder, hub):
    plant(folder / "codex" / "codex-hello.jsonl", 3, GITHUB_TOKEN)
    with gzip.open(folder / "notes.txt.gz", "wt") as out:
        out.write(f"line one\naws_access_key_id = {AWS_KEY}\n")
    rows = pyarrow.Table.from_pylist([{"text": "ok"}, {"text": GITHUB_TOKEN}])
    pyarrow.parquet.write_table(rows, folder / "r.parquet")
    (folder / "shot.png").write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR")
    result = cli(str(folder), "--repo", "me/data")
    assert result.exit_code == 1
    line = one_line(result)
    assert line.startswith("error: not publishing to me/data: 4 secrets remain: ")
    for where in ("codex/codex-hello.jsonl:3 (github_token)", "notes.txt.gz:2 (aws_access_key)", "r.parquet:2"):
        assert where in line
    assert "shot.png (binary file, cannot be checked)" in line and "--allow-secrets" in line
    assert GITHUB_TOKEN not in result.output and AWS_KEY not in result.output
    assert hub.requests == []  # nothing was sent, not even the repo


def test_personal_data_does_not_stop_the_upload(folder, hub):
    plant(folder / "chat-rows.jsonl", 1, "mail jane.doe@example.org")
    assert find_secrets(folder) == []
    assert cli(str(folder), "--repo", "me/data").exit_code == 0


def test_allow_secrets_uploads_them(folder, hub):
    plant(folder / "codex" / "codex-hello.jsonl", 2, GITHUB_TOKEN)
    result = cli(str(folder), "--repo", "me/data", "--allow-secrets")
    assert result.exit_code == 0, result.output
    (commit,) = hub.repos["me/data"].commits
    assert GITHUB_TOKEN.encode() in commit.files["codex/codex-hello.jsonl"]


def test_private_creates_a_private_repo_and_refuses_a_public_one(folder, hub):
    assert cli(str(folder), "--repo", "me/private-data", "--private").exit_code == 0
    assert hub.repos["me/private-data"].private is True and len(hub.repos["me/private-data"].commits) == 1
    hub.repos["me/public-data"] = HubRepo(private=False)
    result = cli(str(folder), "--repo", "me/public-data", "--private")
    assert result.exit_code == 1
    refused = "not publishing to me/public-data: private was asked, but the repo is public on the Hub"
    assert one_line(result) == f"error: {refused}"
    assert hub.repos["me/public-data"].commits == []


def test_an_existing_repo_gets_a_new_commit_and_keeps_its_visibility(folder, hub):
    hub.repos["me/data"] = HubRepo(private=True)
    assert cli(str(folder), "--repo", "me/data").exit_code == 0
    assert hub.repos["me/data"].private is True and len(hub.repos["me/data"].commits) == 1


@pytest.mark.parametrize(
    ("endpoint", "status", "message"),
    [
        ("create", 403, 'You don\'t have the rights to create a dataset under the namespace "me"'),
        ("commit", 422, "Invalid path in commit: ../x"),
    ],
)
def test_a_hub_error_is_one_line(folder, hub, endpoint, status, message):
    hub.fail[endpoint] = (status, message)
    result = cli(str(folder), "--repo", "me/data")
    assert result.exit_code == 1
    assert one_line(result) == f"error: publishing to me/data failed: {status}: {message}"


def test_generate_publishes_through_the_same_gate(tmp_path, hub):
    with scripted_servers() as make:
        clean = make_project(tmp_path / "clean", make([Reply(content="Hi!")]), ["Hello"], publish={"repo_id": "me/ok"})
        assert CliRunner().invoke(app, ["generate", "-c", str(clean)]).exit_code == 0
        leaky = make([Reply(content=f"Use this token: {GITHUB_TOKEN}")])
        config = make_project(tmp_path / "leaky", leaky, ["Which token?"], publish={"repo_id": "me/leaky"})
        result = CliRunner().invoke(app, ["generate", "-c", str(config)])
    (commit,) = hub.repos["me/ok"].commits
    assert sorted(commit.files) == ["README.md", "train.jsonl"]
    assert result.exit_code == 1
    assert "error: not publishing to me/leaky: " in result.output and "train.jsonl:1 (github_token)" in result.output
    assert GITHUB_TOKEN not in result.output and "me/leaky" not in hub.repos
    assert GITHUB_TOKEN in (tmp_path / "leaky" / "output" / "train.jsonl").read_text()  # the rows are kept


def test_from_python_a_written_card_is_uploaded_as_it_is(folder, hub):
    write_folder_card(folder, pretty_name="Mine")
    card = (folder / "README.md").read_text().replace("# Mine", "# Mine\n\nRedacted by hand.")
    (folder / "README.md").write_text(card)
    url = publish(folder, "me/data", files=["README.md", "chat-rows.jsonl", "missing.jsonl"])
    assert url == f"{hub.endpoint}/datasets/me/data"
    (commit,) = hub.repos["me/data"].commits
    assert commit.files == {"README.md": card.encode(), "chat-rows.jsonl": (folder / "chat-rows.jsonl").read_bytes()}


def test_find_secrets_lists_each_one(folder):
    plant(folder / "claude" / "claude-code-count.jsonl", 4, GITHUB_TOKEN)
    plant(folder / "chat-rows.jsonl", 2, AWS_KEY)
    expected = [Leak("chat-rows.jsonl", 2, "aws_access_key"), Leak("claude/claude-code-count.jsonl", 4, "github_token")]
    assert find_secrets(folder) == expected
    assert find_secrets(folder, num_proc=2) == expected  # files spread over forked processes, same order
    with pytest.raises(PublishError, match=r"^not publishing to me/x: 2 secrets remain: chat-rows.jsonl:2 "):
        publish(folder, "me/x", token="hf_x")


def test_a_file_that_cannot_be_read_stops_the_upload_too(folder):
    (folder / "broken.jsonl.gz").write_bytes(b"not gzip at all")
    assert find_secrets(folder) == [Leak("broken.jsonl.gz", None, "cannot be checked: BadGzipFile")]


def test_what_cannot_be_published_is_one_clear_error(folder, tmp_path, monkeypatch):
    for name in ("HF_TOKEN", "HUGGINGFACE_HUB_TOKEN", "TEICH_HF_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("teich.privacy.publish.get_token", lambda: None)
    with pytest.raises(PublishError, match="needs a Hugging Face token with write access: HF_TOKEN, "):
        publish(folder, "me/data")
    with pytest.raises(PublishError, match="is not a Hugging Face repo id"):
        publish(folder, "me/da ta", token="hf_x")
    with pytest.raises(PublishError, match="not a folder"):
        publish(tmp_path / "nowhere", "me/data", token="hf_x")
    (tmp_path / "empty").mkdir()
    with pytest.raises(PublishError, match="nothing to publish"):
        publish(tmp_path / "empty", "me/data", token="hf_x")


def test_the_card_counts_each_shared_session(shared_traces, tmp_path):
    card = render_folder_card(shared_traces)
    formats = ("claude_code", "codex", "cursor", "droid", "hermes", "openclaw", "pi")  # ../shared/README.md
    for name in formats:
        assert f"| `{name}` | 1 | 1 |" in card
    assert f"| all | {len(formats)} | {len(formats)} |" in card
    assert str(Path.home()) not in card and str(shared_traces) not in card  # no local path goes out
