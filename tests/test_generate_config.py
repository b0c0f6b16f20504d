"""``config.yaml``: validation messages naming the key, defaults, paths, env overrides and secrets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from teich import TeichError
from teich.generate import Config

MINIMAL = "model:\n  model: gpt-4.1-mini\n"


def load(tmp_path: Path, text: str, **environ: str) -> Config:
    path = tmp_path / "project" / "config.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return Config.from_yaml(path, environ=environ)


def load_error(tmp_path: Path, text: str, **environ: str) -> str:
    with pytest.raises(TeichError) as caught:
        load(tmp_path, text, **environ)
    return str(caught.value)


def test_defaults(tmp_path: Path) -> None:
    config = load(tmp_path, MINIMAL)
    assert config.agent.provider == "chat"
    assert config.model.model == "gpt-4.1-mini"
    assert config.model.temperature is None and config.model.reasoning_effort is None
    assert (config.api.provider, config.api.wire_api) == ("openai", "chat")
    assert config.base_url == "https://api.openai.com/v1"
    assert config.concurrency == 4
    assert (config.retry.max_attempts, config.retry.backoff_seconds, config.retry.timeout_seconds) == (3, 1.0, 600)
    assert config.publish.private is True and config.publish.repo_id is None
    assert config.system_prompt is None


def test_relative_paths_resolve_against_the_config_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # not the project folder
    absolute = tmp_path / "elsewhere"
    config = load(
        tmp_path, MINIMAL + f"prompts_file: data/p.jsonl\noutput:\n  traces_dir: out\n  failures_dir: {absolute}\n"
    )
    project = (tmp_path / "project").resolve()
    assert config.prompts_file == project / "data" / "p.jsonl"
    assert config.output.traces_dir == project / "out"
    assert config.output.sandbox_dir == project / "sandbox"
    assert config.output.failures_dir == absolute
    assert load(tmp_path, MINIMAL).prompts_file == project / "prompts.csv"


def test_openrouter_base_url_and_sections_left_empty(tmp_path: Path) -> None:
    config = load(tmp_path, MINIMAL + "api:\n  provider: openrouter\npublish:\noutput:\n")
    assert config.base_url == "https://openrouter.ai/api/v1"
    assert config.publish.private is True


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (MINIMAL + "  temperature: hot\n", "config.yaml: model.temperature: Input should be a valid number"),
        ("model:\n  temperature: 0.5\n", "config.yaml: model.model: Field required"),
        ("agent:\n  provider: chat\n", "config.yaml: model: Field required"),
        (MINIMAL + "  temprature: 0.2\n", "config.yaml: model.temprature: unknown key (known keys: model, temperature"),
        (MINIMAL + "concurency: 2\n", "config.yaml: concurency: unknown key (known keys: agent, model, api,"),
        (
            MINIMAL + "agent:\n  provider: claude\n",
            "config.yaml: agent.provider: Input should be 'chat', 'claude-code', 'codex', 'hermes' or 'pi'",
        ),
        (MINIMAL + "concurrency: 0\n", "config.yaml: concurrency: Input should be greater than or equal to 1"),
        (MINIMAL + "  reasoning_effort: extreme\n", "config.yaml: model.reasoning_effort: Input should be 'minimal'"),
        (MINIMAL + "api:\n  provider: custom\n", "config.yaml: api.base_url: required when api.provider is custom"),
        (MINIMAL + "api:\n  base_url: localhost:1234\n", "config.yaml: api.base_url: should start with http://"),
        (MINIMAL + "api:\n  base_url: http://127.0.0.1:99999/v1\n", "config.yaml: api.base_url: has an invalid port"),
        (MINIMAL + "api:\n  base_url: 'http://'\n", "config.yaml: api.base_url: has no host name"),
        (MINIMAL + "api:\n  base_url: http://my server/v1\n", "config.yaml: api.base_url: should not contain spaces"),
        (MINIMAL + "concurrency: 1000000000000\n", "config.yaml: concurrency: Input should be less than or equal to"),
        (
            MINIMAL + "api:\n  wire_api: completions\n",
            "config.yaml: api.wire_api: Input should be 'chat' or 'responses'",
        ),
        (MINIMAL + "retry:\n  max_attempts: 0\n", "config.yaml: retry.max_attempts: Input should be greater than"),
        ("model: gpt-4.1-mini\n", "config.yaml: model: should be a mapping of keys, not a str"),
    ],
)
def test_validation_messages_name_the_key(tmp_path: Path, text: str, expected: str) -> None:
    message = load_error(tmp_path, text)
    assert expected in message
    assert "\n" not in message and "Traceback" not in message


def test_every_problem_is_reported_on_one_line(tmp_path: Path) -> None:
    message = load_error(tmp_path, "model:\n  temperature: hot\nconcurrency: many\n")
    assert message.count("config.yaml: ") == 3
    for key in ("model.model", "model.temperature", "concurrency"):
        assert f"config.yaml: {key}: " in message
    assert "\n" not in message


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    message = load_error(tmp_path, "model:\n  model: gpt\n  temperature: 0.5\n bad: indent\n")
    assert "config.yaml:4: invalid YAML" in message


@pytest.mark.parametrize(("text", "expected"), [("- a\n- b\n", "should be a mapping of settings, not a list")])
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in load_error(tmp_path, text)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(TeichError, match="config.yaml: not found"):
        Config.from_yaml(tmp_path / "config.yaml", environ={})


def test_env_overrides(tmp_path: Path) -> None:
    text = MINIMAL + "agent:\n  provider: chat\napi:\n  provider: openrouter\n"
    config = load(
        tmp_path, text, TEICH_PROVIDER="pi", TEICH_MODEL="qwen3-8b", TEICH_BASE_URL="http://localhost:1234/v1"
    )
    assert config.agent.provider == "pi"
    assert config.model.model == "qwen3-8b"
    assert config.api.provider == "custom"
    assert config.base_url == "http://localhost:1234/v1"
    assert load(tmp_path, "api:\n  wire_api: responses\n", TEICH_MODEL="llama3").model.model == "llama3"


def test_invalid_override_names_its_variable(tmp_path: Path) -> None:
    message = load_error(tmp_path, MINIMAL, TEICH_PROVIDER="claude")
    assert "config.yaml: agent.provider (from TEICH_PROVIDER): Input should be" in message
    message = load_error(tmp_path, MINIMAL, TEICH_BASE_URL="http://localhost:1234 /v1")
    assert "config.yaml: api.base_url (from TEICH_BASE_URL): should not contain spaces" in message


KEY_SOURCES = {
    "api.api_key": "from-file",
    "MY_KEY": "from-named-env",
    "TEICH_API_KEY": "from-teich",
    "OPENAI_API_KEY": "from-openai",
}


@pytest.mark.parametrize("first", range(len(KEY_SOURCES)))
def test_api_key_resolution_order(tmp_path: Path, first: int) -> None:
    sources = dict(list(KEY_SOURCES.items())[first:])
    text = MINIMAL + "api:\n  api_key_env: MY_KEY\n"
    if "api.api_key" in sources:
        text += f"  api_key: {sources.pop('api.api_key')}\n"
    config = load(tmp_path, text, OPENROUTER_API_KEY="from-openrouter", **sources)
    assert config.api_key() == list(KEY_SOURCES.values())[first]


def test_provider_key_variable_follows_the_provider(tmp_path: Path) -> None:
    environ = {"OPENAI_API_KEY": "from-openai", "OPENROUTER_API_KEY": "from-openrouter"}
    assert load(tmp_path, MINIMAL + "api:\n  provider: openrouter\n", **environ).api_key() == "from-openrouter"
    custom = MINIMAL + "api:\n  provider: custom\n  base_url: https://llm.example.com/v1\n"
    with pytest.raises(TeichError, match=r"no API key for https://llm.example.com/v1: set TEICH_API_KEY"):
        load(tmp_path, custom, **environ).api_key()


def test_missing_key_names_what_to_set(tmp_path: Path) -> None:
    config = load(tmp_path, MINIMAL + "api:\n  api_key_env: MY_KEY\n", MY_KEY="  ")
    with pytest.raises(TeichError, match="set MY_KEY or TEICH_API_KEY or OPENAI_API_KEY"):
        config.api_key()


@pytest.mark.parametrize(
    "url",
    ["http://localhost:1234/v1", "http://127.0.0.1:11434/v1", "http://192.168.1.20:8000/v1", "http://vllm:8000/v1"],
)
def test_local_server_gets_a_placeholder_key(tmp_path: Path, url: str) -> None:
    assert load(tmp_path, MINIMAL, TEICH_BASE_URL=url, OPENAI_API_KEY="real").api_key() == "not-needed"
    assert load(tmp_path, MINIMAL, TEICH_BASE_URL=url, TEICH_API_KEY="local").api_key() == "local"


def test_hf_token_resolution_order(tmp_path: Path) -> None:
    environ = {"HF_TOKEN": "hf-env", "HUGGINGFACE_HUB_TOKEN": "hub-env", "TEICH_HF_TOKEN": "teich-env"}
    assert load(tmp_path, MINIMAL + "publish:\n  hf_token: hf-file\n", **environ).hf_token() == "hf-file"
    for name in list(environ):
        assert load(tmp_path, MINIMAL, **environ).hf_token() == environ.pop(name)
    assert load(tmp_path, MINIMAL).hf_token() is None


def test_secrets_never_appear_in_logs(tmp_path: Path) -> None:
    text = MINIMAL + "api:\n  api_key: sk-file-secret\npublish:\n  hf_token: hf_file_secret\n  repo_id: me/traces\n"
    config = load(tmp_path, text, OPENAI_API_KEY="sk-env-secret", HF_TOKEN="hf_env_secret")
    public = config.public_dict()
    shown = [repr(config), str(config), str(config.model_dump()), config.model_dump_json(), json.dumps(public)]
    for text in shown:
        for secret in ("sk-file-secret", "hf_file_secret", "sk-env-secret", "hf_env_secret"):
            assert secret not in text
    assert "api_key" not in public["api"] and "hf_token" not in public["publish"]
    assert public["publish"]["repo_id"] == "me/traces"
    assert config.api_key() == "sk-file-secret" and config.hf_token() == "hf_file_secret"


def test_output_folders_where_a_file_stands_are_refused(tmp_path: Path) -> None:
    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "output").write_text("a file")
    message = load_error(tmp_path, MINIMAL)  # the default traces_dir
    assert f"config.yaml: output.traces_dir: {tmp_path / 'project' / 'output'} exists and is not a folder" in message
    message = load_error(tmp_path, MINIMAL + "output:\n  traces_dir: ok\n  sandbox_dir: output/sandbox\n")
    assert "config.yaml: output.sandbox_dir: " in message and "output.traces_dir" not in message


def test_redact_hides_every_configured_secret(tmp_path: Path) -> None:
    text = MINIMAL + "api:\n  api_key: sk-file-secret\n  api_key_env: MY_KEY\npublish:\n  hf_token: hf_file_secret\n"
    environ = {"MY_KEY": "sk-named", "OPENROUTER_API_KEY": "sk-router", "HF_TOKEN": "hf_env_secret", "OTHER": "public"}
    config = load(tmp_path, text, **environ, TEICH_API_KEY="x")  # too short to be a real key: left alone
    shown = config.redact("sk-file-secret sk-named sk-router hf_file_secret hf_env_secret public x")
    assert shown == "[redacted] [redacted] [redacted] [redacted] [redacted] public x"


def test_public_dict_shows_project_paths_relative(tmp_path: Path) -> None:
    public = load(tmp_path, MINIMAL + f"output:\n  failures_dir: {tmp_path / 'fails'}\n").public_dict()
    assert public["prompts_file"] == "prompts.csv"
    assert public["output"]["traces_dir"] == "output"
    assert public["output"]["failures_dir"] == str(tmp_path / "fails")
    assert public["model"]["model"] == "gpt-4.1-mini" and public["api"]["base_url"] == "https://api.openai.com/v1"
