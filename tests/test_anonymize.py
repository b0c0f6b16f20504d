"""teich anonymize: secrets and personal data out, everything training needs kept, every file still valid."""

from __future__ import annotations

import gzip
import json
import sqlite3
from pathlib import Path

import pytest
from planted import RECORDED, build_corpus, corpus_text, measure
from typer.testing import CliRunner

from teich import AnonymizeReport, TeichError, anonymize, load_traces
from teich.cli import app
from teich.privacy import anonymize as module
from teich.privacy.anonymize import Placeholders, anonymize_text, report_path
from teich.privacy.detect import find_sensitive, scan_path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "traces"
GITHUB_TOKEN = "ghp_" + "R8s2Xk4qPz7LmN3vB6wT1yH9cJ5dF0gA2e" + "Wq"  # split: no push-protection scanner trips
AWS_KEY = "AKIA" + "Q3EXAMPLKT7ZR2MW"
PRIVATE_KEY = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEAx7Fq2\nk9Zt0Wq==\n-----END RSA PRIVATE KEY-----"


@pytest.fixture(autouse=True)
def no_machine_names(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whoever runs the tests, their own names are not part of what the tests expect."""
    monkeypatch.setattr(module, "machine_names", lambda: ([], []))


def _jsonl(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# -- the planted corpus: the targets ------------------------------------------------------


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("planted")
    corpus = build_corpus(root / "in", seed=13, sessions=sorted(RECORDED.rglob("*.jsonl")))
    report = anonymize(root / "in", root / "out", own_names=[corpus.own_name], return_report=True)
    return corpus, root, report


def test_planted_secrets_and_personal_data_are_caught_and_look_alikes_kept(planted):
    corpus, root, _ = planted
    figures = measure(corpus, corpus_text(root / "in"), corpus_text(root / "out"))
    assert len({p.kind for p in corpus.secrets}) >= 30
    assert figures.secret_recall >= 0.99, [p.kind for p in figures.missed]
    assert figures.personal_recall >= 0.95, [p.kind for p in figures.missed]
    assert figures.negatives_altered_rate <= 0.01, [p.text for p in figures.altered]


def test_planted_files_keep_their_records_and_load(planted):
    corpus, root, report = planted
    sources = sorted((root / "in").rglob("*.jsonl"))
    assert report.files == len(sources) and not report.skipped
    assert report.records == sum(len(path.read_text().splitlines()) for path in sources)
    for source in sources:
        copy = root / "out" / source.relative_to(root / "in")
        assert len(_records(copy)) == len(_records(source))
        assert len(load_traces(copy)) == len(load_traces(source))


def test_the_report_counts_redactions_by_kind(planted):
    _, _, report = planted
    data = report.to_dict()
    assert data["report"] == "anonymize"
    assert data["counts"]["secrets"] == report.secrets >= 60
    assert {"secret:github_token", "secret:private_key", "email", "home_user", "phone", "ip_address"} <= set(
        data["reasons"]["redacted"]
    )
    assert "secrets" in report.summary()


# -- placeholders ---------------------------------------------------------------------------------


def test_the_same_value_gets_the_same_placeholder_throughout_a_session():
    placeholders = Placeholders()
    first, _ = anonymize_text(f"token {GITHUB_TOKEN}, mail ana.lima@proton.me", placeholders)
    second, found = anonymize_text(f"again {GITHUB_TOKEN} and bo.chen@proton.me, ana.lima@proton.me", placeholders)
    assert first == "token <SECRET:github_token_1>, mail <EMAIL_1>"
    assert second == "again <SECRET:github_token_1> and <EMAIL_2>, <EMAIL_1>"
    assert found == {"secret:github_token": 1, "email": 2}


def test_home_folders_keep_their_shape_and_the_user_name_goes_everywhere(tmp_path):
    lines = [
        "cd /home/mkowalski/src && ls",
        "/Users/mkowalski/Library",
        r"C:\Users\mkowalski\code",
        "-rw-r--r--  1 mkowalski  staff  997 notes.md",
    ]
    source = _jsonl(tmp_path / "s.jsonl", [{"text": line} for line in lines] + [{"text": r"C:\\Users\\J Doe\\x"}])
    anonymize(source, tmp_path / "out.jsonl")
    texts = [r["text"] for r in _records(tmp_path / "out.jsonl")]
    assert texts == [
        "cd /home/user/src && ls",
        "/Users/user/Library",
        r"C:\Users\user\code",
        "-rw-r--r--  1 user  staff  997 notes.md",
        r"C:\\Users\\user\\x",
    ]


def test_own_names_are_redacted_in_any_case(tmp_path):
    source = _jsonl(tmp_path / "s.jsonl", [{"text": "Signed-off-by: Ingrid Holm"}, {"text": "thanks, INGRID  HOLM"}])
    anonymize(source, tmp_path / "out.jsonl", own_names=["Ingrid Holm"])
    assert [r["text"] for r in _records(tmp_path / "out.jsonl")] == ["Signed-off-by: <NAME_1>", "thanks, <NAME_2>"]


# -- what must not be damaged ---------------------------------------------------------------------

LOOK_ALIKES = [
    "commit 9fceb02d0ae598e95dc970b74767f19372d61af8",
    "session 3f2b8c1e-4a5d-4e6f-9a7b-1c2d3e4f5a6b",
    '"integrity": "sha512-Dv8t5Q3yGVh0aFqW0ZJ2Y3Tn8rXo6o2cM0bD8bqj+KQ3sT1kZt3rj5nEo6oRz1zJ2k3v0x9YbLdN0mQ5sC7w=="',
    "image@sha256:4b3c7a1f9e2d8c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b",
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==",
    'export OPENAI_API_KEY="sk-..."',
    "api_key = YOUR_API_KEY",
    "ANTHROPIC_API_KEY=<your-key>",
    'client = OpenAI(api_key=os.environ["OPENAI_API_KEY"])',
    'curl -H "Authorization: Bearer $OPENAI_API_KEY" https://api.openai.com/v1/models',
    "token: ${{ secrets.GITHUB_TOKEN }}",
    "aws_access_key_id = AKIAIOSFODNN7EXAMPLE",
    "ssh pi@192.168.1.23; curl http://127.0.0.1:3000; ping 8.8.8.8",
    "fe80::1%eth0, ::1, 2001:db8::5, std::vector<int>, a::b, 12:30:45, 00:1a:2b:3c:4d:5e",
    "Installed version 4.2.1.7; Chrome/120.0.0.0",
    "Co-Authored-By: Claude <noreply@anthropic.com>",
    '"timestamp": 1716312345678, "input_tokens": 52344',
    "password: SecretStr",
    "refresh_token=refresh_token",
    "Enter your password to continue",
]


@pytest.mark.parametrize("text", LOOK_ALIKES)
def test_look_alikes_are_left_alone(text):
    assert find_sensitive(text) == []


def test_a_base64_image_block_is_left_alone(tmp_path):
    image = "iVBORw0KGgo" + "QUJDRGVmZ2hpams0NTY3" * 40
    record = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": image}}
    source = _jsonl(tmp_path / "s.jsonl", [record])
    anonymize(source, tmp_path / "out.jsonl")
    assert (tmp_path / "out.jsonl").read_bytes() == source.read_bytes()


# -- structure ------------------------------------------------------------------------------------


def test_json_inside_strings_stays_valid_json(tmp_path):
    arguments = {"command": f"git push https://x:{GITHUB_TOKEN}@github.com/a/b", "key": PRIVATE_KEY}
    nested = json.dumps({"config": json.dumps({"api_key": "Zq8rT2vX9mK4pL7nB3wY6cH1"})})
    records = [
        {"type": "function_call", "arguments": json.dumps(arguments)},
        {"type": "tool_result", "content": nested},
        {AWS_KEY: "a key that is a secret"},
    ]
    source = _jsonl(tmp_path / "s.jsonl", records)
    anonymize(source, tmp_path / "out.jsonl")
    out = _records(tmp_path / "out.jsonl")
    redacted = json.loads(out[0]["arguments"])
    assert redacted == {
        "command": "git push https://x:<SECRET:github_token_1>@github.com/a/b",
        "key": "<SECRET:private_key_1>",
    }
    assert json.loads(json.loads(out[1]["content"])["config"]) == {"api_key": "<SECRET:secret_1>"}
    assert out[2] == {"<SECRET:aws_access_key_1>": "a key that is a secret"}


def test_json_in_a_string_is_redacted_value_by_value_where_text_redaction_would_break_it(tmp_path):
    inner = {"begin": "-----BEGIN RSA PRIVATE KEY-----", "body": "MIIEpAIBAAK", "end": "-----END RSA PRIVATE KEY-----"}
    source = _jsonl(tmp_path / "s.jsonl", [{"content": json.dumps(inner)}])
    report = anonymize(source, tmp_path / "out.jsonl", return_report=True)
    (record,) = _records(tmp_path / "out.jsonl")
    assert json.loads(record["content"]) == {**inner, "begin": "<SECRET:private_key_1>"}
    assert report.redactions == {"secret:private_key": 1}


def test_unchanged_lines_are_kept_byte_for_byte(tmp_path):
    source = tmp_path / "s.jsonl"
    source.write_text('{"a":  1,"b":"\\u00e9"}\n{"text": "mail bo.chen@proton.me"}\nnot json, bo.chen@proton.me\n')
    anonymize(source, tmp_path / "out.jsonl")
    lines = (tmp_path / "out.jsonl").read_text().splitlines()
    assert lines == ['{"a":  1,"b":"\\u00e9"}', '{"text": "mail <EMAIL_1>"}', "not json, <EMAIL_1>"]


def test_anonymizing_twice_changes_nothing_more(planted, tmp_path):
    _, root, _ = planted
    anonymize(root / "out", tmp_path / "again")
    for path in sorted((root / "out").rglob("*.jsonl")):
        assert (tmp_path / "again" / path.relative_to(root / "out")).read_bytes() == path.read_bytes()


# -- folders, formats, bad input ------------------------------------------------------------------


def test_a_hub_bound_folder_is_copied_whole_with_binary_files_skipped(tmp_path):
    folder = tmp_path / "dataset"
    _jsonl(folder / "data" / "train.jsonl", [{"messages": [{"role": "user", "content": f"key {AWS_KEY}"}]}])
    (folder / "README.md").write_text("Contact: ana.lima@proton.me\n")
    (folder / "tools.json").write_text(json.dumps([{"name": "bash", "description": "runs a command"}], indent=2))
    (folder / "rows.jsonl.gz").write_bytes(gzip.compress(b'{"content": "ana.lima@proton.me"}\n'))
    (folder / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    sqlite3.connect(folder / "state.db").execute("create table t (x)").connection.commit()
    (folder / ".git").mkdir()
    (folder / ".git" / "config").write_text("[core]\n")

    report = anonymize(folder, tmp_path / "out", return_report=True)

    out = tmp_path / "out"
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "README.md",
        "data/train.jsonl",
        "rows.jsonl.gz",
        "tools.json",
    ]
    assert (out / "README.md").read_text() == "Contact: <EMAIL_1>\n"
    assert (out / "tools.json").read_text() == (folder / "tools.json").read_text()
    assert gzip.decompress((out / "rows.jsonl.gz").read_bytes()) == b'{"content": "<EMAIL_1>"}\n'
    assert _records(out / "data" / "train.jsonl")[0]["messages"][0]["content"] == "key <SECRET:aws_access_key_1>"
    assert sorted(report.skipped) == [
        f"{folder / 'image.png'}: binary file",
        f"{folder / 'state.db'}: SQLite database; extract its sessions first (teich extract)",
    ]
    assert report.files == 4


def test_parquet_rows_are_redacted_in_place(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"id": 1, "messages": [{"role": "user", "content": "mail ana.lima@proton.me"}]}]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "rows.parquet")
    anonymize(tmp_path / "rows.parquet", tmp_path / "out.parquet")
    assert pq.read_table(tmp_path / "out.parquet").to_pylist() == [
        {"id": 1, "messages": [{"role": "user", "content": "mail <EMAIL_1>"}]}
    ]


def test_converted_rows_stay_loadable(tmp_path):
    source = EXAMPLES / "chat-rows.jsonl"
    anonymize(source, tmp_path / "rows.jsonl")
    assert len(load_traces(tmp_path / "rows.jsonl")) == len(load_traces(source))


def test_sub_agent_transcripts_share_their_session_placeholders(tmp_path):
    folder = tmp_path / "project"
    _jsonl(folder / "s1.jsonl", [{"text": "bo.chen@proton.me"}, {"text": "ana.lima@proton.me"}])
    _jsonl(folder / "s1" / "subagents" / "agent-a.jsonl", [{"text": "ana.lima@proton.me"}])
    _jsonl(folder / "s2.jsonl", [{"text": "ana.lima@proton.me"}])
    anonymize(folder, tmp_path / "out")
    assert _records(tmp_path / "out" / "s1" / "subagents" / "agent-a.jsonl") == [{"text": "<EMAIL_2>"}]
    assert _records(tmp_path / "out" / "s2.jsonl") == [{"text": "<EMAIL_1>"}]


def test_files_spread_over_processes_come_out_the_same(planted, tmp_path):
    _, root, _ = planted
    anonymize(root / "in", tmp_path / "forked", own_names=["Ingrid Vasquez-Holm"], num_proc=2)
    for path in sorted((root / "out").rglob("*.jsonl")):
        assert (tmp_path / "forked" / path.relative_to(root / "out")).read_bytes() == path.read_bytes()


def test_bad_input_is_one_line_naming_it(tmp_path):
    with pytest.raises(TeichError, match="missing: not found"):
        anonymize(tmp_path / "missing", tmp_path / "out")
    folder = tmp_path / "in"
    _jsonl(folder / "a.jsonl", [{"text": "x"}])
    with pytest.raises(TeichError, match="may not be, or lie inside"):
        anonymize(folder, folder / "redacted")
    with pytest.raises(TeichError, match="would replace the input"):
        anonymize(folder / "a.jsonl", folder / "a.jsonl")


def test_a_file_that_cannot_be_read_is_skipped_and_the_rest_goes_on(tmp_path):
    folder = tmp_path / "in"
    _jsonl(folder / "a.jsonl", [{"text": "bo.chen@proton.me"}])
    (folder / "b.jsonl").write_bytes(b"\xff\xfe not utf-8")
    (folder / "c.jsonl.gz").write_bytes(b"not gzip at all")
    report = anonymize(folder, tmp_path / "out", return_report=True)
    assert report.files == 1
    assert [line.split(": ", 1)[1] for line in report.skipped] == [
        "not UTF-8 text",
        "cannot be read (Not a gzipped file (b'no'))",
    ]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.jsonl"]


def test_an_interrupted_run_leaves_nothing(tmp_path, monkeypatch):
    folder = tmp_path / "in"
    _jsonl(folder / "a.jsonl", [{"text": "x"}])
    _jsonl(folder / "b.jsonl", [{"text": "y"}])

    def broken(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(module, "_count", broken)
    with pytest.raises(KeyboardInterrupt):
        anonymize(folder, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


# -- scanning, and the command line ---------------------------------------------------------------


def test_scan_path_names_the_line(tmp_path):
    path = _jsonl(tmp_path / "s.jsonl", [{"text": "hello"}, {"text": f"here: {GITHUB_TOKEN}"}])
    with path.open("a") as out:
        out.write(PRIVATE_KEY + "\n")
    assert [(line, f.kind, f.secret) for line, f in scan_path(path)] == [
        (2, "github_token", True),
        (3, "private_key", True),
    ]


def test_cli_writes_the_copy_and_its_report(tmp_path):
    source = _jsonl(tmp_path / "in" / "s.jsonl", [{"text": f"{GITHUB_TOKEN} from Ingrid Holm"}])
    result = CliRunner().invoke(app, ["anonymize", str(source.parent), "--out", str(tmp_path / "out"), "--name",
                                      "Ingrid Holm"])
    assert result.exit_code == 0, result.output
    assert _records(tmp_path / "out" / "s.jsonl") == [{"text": "<SECRET:github_token_1> from <NAME_1>"}]
    saved = json.loads(report_path(tmp_path / "out").read_text())
    assert saved["counts"] == {"files": 1, "records": 1, "secrets": 1, "personal": 1}
    assert "anonymize" in result.output


def test_cli_bad_input_exits_1_with_one_line(tmp_path):
    result = CliRunner().invoke(app, ["anonymize", str(tmp_path / "nothing"), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [f"error: {tmp_path / 'nothing'}: not found"]


def test_report_is_a_report():
    report = AnonymizeReport(files=2, records=3)
    report.redactions.update({"secret:jwt": 2, "email": 1})
    assert (report.secrets, report.personal) == (2, 1)
    assert report.to_dict()["reasons"]["redacted"] == {"secret:jwt": 2, "email": 1}


# -- the real sessions ----------------------------------------------------------------------------


def test_real_sessions_stay_loadable_with_the_same_rows(shared_traces, tmp_path):
    report = anonymize(shared_traces, tmp_path / "out", return_report=True, num_proc=2)
    assert report.files == len(list(shared_traces.glob("*.jsonl"))) and not report.skipped
    for source in sorted(shared_traces.glob("*.jsonl")):
        copy = tmp_path / "out" / source.name
        assert len(_records(copy)) == len(_records(source))
        assert len(load_traces(copy)) == len(load_traces(source))
    assert "calebfahlgren" not in "".join(p.read_text() for p in (tmp_path / "out").glob("*.jsonl"))
