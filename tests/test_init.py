"""``teich init``: a project that loads as is, and no overwriting without ``--force``."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from teich.cli import app
from teich.generate import Config
from teich.generate.config import ApiConfig, ModelConfig, OutputConfig, PublishConfig, RetryConfig
from teich.generate.project import CONFIG_TEMPLATE
from teich.generate.prompts import read_prompts


def init(*args: str):
    result = CliRunner().invoke(app, ["init", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    return result


def test_init_creates_a_project_that_loads(tmp_path: Path) -> None:
    project = tmp_path / "demo"
    result = init(str(project))
    assert result.exit_code == 0
    assert "JSONL is recommended" in result.output
    config = Config.from_yaml(project / "config.yaml", environ={})
    assert (config.agent.provider, config.model.model, config.api.provider) == ("chat", "gpt-4.1-mini", "openai")
    assert config.prompts_file == project.resolve() / "prompts.csv"
    specs, problems = read_prompts(config.prompts_file, default_system=config.system_prompt)
    assert problems == [] and 2 <= len(specs) <= 3
    assert any(spec.follow_up_prompts for spec in specs)


def test_config_template_mentions_every_key() -> None:
    sections = {"model": ModelConfig, "api": ApiConfig, "output": OutputConfig, "publish": PublishConfig}
    keys = [f"{name}:" for model in [*sections.values(), RetryConfig] for name in model.model_fields]
    keys += [f"{name}:" for name in Config.model_fields]
    assert [key for key in keys if key not in CONFIG_TEMPLATE] == []
    for variable in ("TEICH_PROVIDER", "TEICH_MODEL", "TEICH_BASE_URL", "TEICH_API_KEY"):
        assert variable in CONFIG_TEMPLATE


def test_init_refuses_a_non_empty_folder_without_force(tmp_path: Path) -> None:
    project = tmp_path / "demo"
    project.mkdir()
    (project / "config.yaml").write_text("mine", encoding="utf-8")
    (project / "notes.md").write_text("keep", encoding="utf-8")
    result = init(str(project))
    assert result.exit_code == 1
    assert "is not empty; pass --force" in result.output
    assert (project / "config.yaml").read_text(encoding="utf-8") == "mine"
    assert init(str(project), "--force").exit_code == 0
    assert Config.from_yaml(project / "config.yaml", environ={}).model.model == "gpt-4.1-mini"
    assert (project / "notes.md").read_text(encoding="utf-8") == "keep"


def test_init_into_an_empty_folder_or_onto_a_file(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert init(str(tmp_path / "empty")).exit_code == 0
    (tmp_path / "file").write_text("x", encoding="utf-8")
    result = init(str(tmp_path / "file"))
    assert result.exit_code == 1 and "exists and is not a folder" in result.output
