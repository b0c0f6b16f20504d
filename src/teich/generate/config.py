"""The ``config.yaml`` of a generation project: typed, validated, with secrets kept out of logs and cards.

Unknown keys are errors, so typos are caught. Relative paths are resolved against the config file's
folder. ``TEICH_PROVIDER``, ``TEICH_MODEL`` and ``TEICH_BASE_URL`` override the file (the last also
sets ``api.provider`` to ``custom``), so one project can be pointed at a local server (LM Studio,
Ollama, vLLM) without editing it; ``TEICH_API_KEY`` is a fallback for the key (see :meth:`Config.api_key`).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    SerializationInfo,
    ValidationError,
    ValidationInfo,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from teich.errors import ConfigError, TeichError, first_line
from teich.files import read_text
from teich.generate.agents.sandbox import BACKENDS
from teich.generate.providers import PROVIDERS

DEFAULT_BASE_URLS = MappingProxyType({"openai": "https://api.openai.com/v1", "openrouter": "https://openrouter.ai/api/v1"})
PROVIDER_KEY_ENVS = MappingProxyType({"openai": "OPENAI_API_KEY", "openrouter": "OPENROUTER_API_KEY"})
HF_TOKEN_ENVS = ("HF_TOKEN", "HUGGINGFACE_HUB_TOKEN", "TEICH_HF_TOKEN")
LOCAL_PLACEHOLDER_KEY = "not-needed"  # local servers ignore the key, but the OpenAI SDK insists on one
MAX_CONCURRENCY = 1024  # more prompts in flight than any server takes; far more would exhaust sockets
MIN_SECRET_LENGTH = 4  # shorter keys are placeholders; redacting them would garble messages
REDACTED = "[redacted]"
ENV_OVERRIDES = MappingProxyType({"TEICH_PROVIDER": ("agent", "provider"), "TEICH_MODEL": ("model", "model")})
_SECRETS = (("api", "api_key"), ("publish", "hf_token"))  # (section, key) left out of what is written


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _empty_is_default(cls, data: Any) -> Any:
        return {} if data is None else data  # a section whose keys are all commented out


class AgentConfig(_Section):
    provider: str = "chat"

    @field_validator("provider")
    @classmethod
    def _registered(cls, name: str) -> str:
        return _one_of(name, PROVIDERS.names())


class SandboxConfig(_Section):
    backend: str = "auto"
    network: Literal["endpoint", "full"] = "endpoint"

    @field_validator("backend")
    @classmethod
    def _registered(cls, name: str) -> str:
        return _one_of(name, ("auto", *BACKENDS.names()))


class ModelConfig(_Section):
    model: str = Field(min_length=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=1)
    reasoning_effort: Literal["minimal", "low", "medium", "high"] | None = None
    approval_policy: Literal["untrusted", "on-failure", "on-request", "never"] | None = None
    sandbox: Literal["read-only", "workspace-write", "danger-full-access"] | None = None


class ApiConfig(_Section):
    provider: Literal["openai", "openrouter", "custom"] = "openai"
    wire_api: Literal["chat", "responses"] = "chat"
    stream: bool = False
    base_url: str | None = Field(default=None, validate_default=True)
    api_key: SecretStr | None = None
    api_key_env: str | None = None

    @field_validator("base_url")
    @classmethod
    def _default_base_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            if info.data.get("provider") == "custom":
                raise PydanticCustomError("missing_base_url", "required when api.provider is custom")
            return DEFAULT_BASE_URLS.get(info.data.get("provider", ""))
        if not value.startswith(("http://", "https://")):
            raise PydanticCustomError("bad_base_url", "should start with http:// or https://")
        problem = _url_problem(value)
        if problem:
            raise PydanticCustomError("bad_base_url", problem)
        return value


class OutputConfig(_Section):
    traces_dir: Path = Field(default=Path("output"), validate_default=True)
    sandbox_dir: Path = Field(default=Path("sandbox"), validate_default=True)
    failures_dir: Path = Field(default=Path("failures"), validate_default=True)
    pretty_name: str | None = None

    @field_validator("traces_dir", "sandbox_dir", "failures_dir")
    @classmethod
    def _folder_under_root(cls, path: Path, info: ValidationInfo) -> Path:
        """The folder, resolved against the project folder; refused when a file stands where it would be."""
        root = (info.context or {}).get("root")
        path = _under(root, path) if root is not None else path
        blocker = next((p for p in (path, *path.parents) if p.exists()), None)
        if blocker is not None and not blocker.is_dir():
            raise PydanticCustomError("not_a_folder", "{file} exists and is not a folder", {"file": str(blocker)})
        return path

    @field_serializer("traces_dir", "sandbox_dir", "failures_dir", when_used="json")
    def _show_paths(self, path: Path, info: SerializationInfo) -> str:
        return _shown(path, info)


class PublishConfig(_Section):
    repo_id: str | None = None
    hf_token: SecretStr | None = None
    private: bool = True


class RetryConfig(_Section):
    max_attempts: int = Field(default=3, ge=1)
    backoff_seconds: float = Field(default=1.0, ge=0)
    timeout_seconds: float = Field(default=600, gt=0)


class ExecutionConfig(_Section):
    """Where prompts run: ``local`` (this process) or ``ray`` (tasks on the Ray cluster at ``address``;
    none: the ``RAY_ADDRESS`` variable, else a cluster started on this machine)."""

    backend: Literal["local", "ray"] = "local"
    address: str | None = None


class Config(_Section):
    """A generation project's settings; load it with :meth:`from_yaml`."""

    agent: AgentConfig = Field(default_factory=AgentConfig)
    model: ModelConfig
    api: ApiConfig = Field(default_factory=ApiConfig)
    prompts_file: Path = Path("prompts.csv")
    system_prompt: str | None = None
    output: OutputConfig = Field(default_factory=dict, validate_default=True)  # validated: paths resolve
    publish: PublishConfig = Field(default_factory=PublishConfig)
    concurrency: int = Field(default=4, ge=1, le=MAX_CONCURRENCY)
    retry: RetryConfig = Field(default_factory=RetryConfig)
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig)
    execution: ExecutionConfig = Field(default_factory=ExecutionConfig)
    _environ: Mapping[str, str] = PrivateAttr(default_factory=lambda: os.environ)
    _root: Path | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _resolve_paths(self, info: ValidationInfo) -> Config:
        root = (info.context or {}).get("root")
        if root is not None:
            self.prompts_file = _under(root, self.prompts_file)
        return self

    @field_serializer("prompts_file", when_used="json")
    def _show_prompts_file(self, path: Path, info: SerializationInfo) -> str:
        return _shown(path, info)

    @classmethod
    def from_yaml(cls, path: str | Path, environ: Mapping[str, str] = os.environ) -> Config:
        """Read and validate ``path``, applying the ``TEICH_*`` overrides in ``environ``."""
        path = Path(path)
        data = _read_yaml(path)
        overridden = _apply_overrides(data, environ)
        root = path.parent.resolve()
        try:
            config = cls.model_validate(data, context={"root": root})
        except ValidationError as error:
            raise ConfigError("; ".join(_messages(path, error, overridden))) from None
        config._environ, config._root = environ, root
        return config

    @property
    def base_url(self) -> str:
        """The API base URL: ``api.base_url``, or the provider's default."""
        assert self.api.base_url is not None  # set by validation for every provider but custom, which requires it
        return self.api.base_url

    def api_key(self) -> str:
        """The first key found: ``api.api_key``, the variable ``api.api_key_env`` names, ``TEICH_API_KEY``,
        then ``OPENAI_API_KEY`` or ``OPENROUTER_API_KEY`` by provider; a placeholder for a local server."""
        candidates = (self.api.api_key_env, "TEICH_API_KEY", PROVIDER_KEY_ENVS.get(self.api.provider))
        names = [name for name in candidates if name]
        key = _secret(self.api.api_key) or _first_set(self._environ, names)
        if key:
            return key
        if _is_local(self.base_url):
            return LOCAL_PLACEHOLDER_KEY
        raise ConfigError(f"no API key for {self.base_url}: set {' or '.join(names)}, or api.api_key in config.yaml")

    def for_worker(self) -> Config:
        """A copy to send to another machine: of this process's environment it carries only the key."""
        copy = self.model_copy()
        copy._environ, copy._root = {"TEICH_API_KEY": self.api_key()}, self._root
        return copy

    def hf_token(self) -> str | None:
        """The Hugging Face token: ``publish.hf_token``, else the first of :data:`HF_TOKEN_ENVS` that is set."""
        return _secret(self.publish.hf_token) or _first_set(self._environ, HF_TOKEN_ENVS)

    def secrets(self) -> list[str]:
        """Every key and token a run may use, from the file and the environment, longest first."""
        names = [self.api.api_key_env, "TEICH_API_KEY", *PROVIDER_KEY_ENVS.values(), *HF_TOKEN_ENVS]
        values = [_secret(self.api.api_key), _secret(self.publish.hf_token)]
        values += [self._environ.get(name, "").strip() for name in names if name]
        return sorted({v for v in values if v and len(v) >= MIN_SECRET_LENGTH}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        """``text`` with every one of :meth:`secrets` replaced by ``[redacted]``."""
        for secret in self.secrets():
            text = text.replace(secret, REDACTED)
        return text

    @contextmanager
    def redacting(self) -> Iterator[None]:
        """Within the block, a :class:`TeichError`'s message leaves with the secrets redacted."""
        try:
            yield
        except TeichError as error:
            error.args = (self.redact(str(error)), *error.args[1:])
            raise

    def public_dict(self) -> dict[str, Any]:
        """The settings as JSON-ready data for logs and dataset cards: no secrets, paths relative to the project."""
        secrets = {section: {key} for section, key in _SECRETS}
        return self.model_dump(mode="json", exclude=secrets, context={"root": self._root})


def _read_yaml(path: Path) -> dict[str, Any]:
    text = read_text(path)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(error, "problem", None) or first_line(error)
        raise ConfigError(f"{where}: invalid YAML: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: should be a mapping of settings, not a {type(data).__name__}")
    return data


def _apply_overrides(data: dict[str, Any], environ: Mapping[str, str]) -> dict[tuple[str, ...], str]:
    """Write the ``TEICH_*`` settings in ``environ`` into ``data``; return which keys came from which variable."""
    overrides = dict(ENV_OVERRIDES)
    if environ.get("TEICH_BASE_URL"):
        overrides["TEICH_BASE_URL"] = ("api", "base_url")
        _set(data, ("api", "provider"), "custom")
    overridden: dict[tuple[str, ...], str] = {}
    for variable, (section, key) in overrides.items():
        if environ.get(variable) and _set(data, (section, key), environ[variable]):
            overridden[(section, key)] = variable
    return overridden


def _set(data: dict[str, Any], location: tuple[str, str], value: str) -> bool:
    section, key = location
    if data.get(section) is None:
        data[section] = {}
    if not isinstance(data[section], dict):
        return False  # validation reports the section itself
    data[section][key] = value
    return True


def _messages(path: Path, error: ValidationError, overridden: dict[tuple[str, ...], str]) -> list[str]:
    """One line per problem, naming the key: ``config.yaml: model.temperature: Input should be a valid number``."""
    lines = []
    for problem in error.errors(include_url=False):
        location = tuple(str(part) for part in problem["loc"])
        key = ".".join(location) or "(top level)"
        if location in overridden:
            key += f" (from {overridden[location]})"
        lines.append(f"{path}: {key}: {_message(problem, location)}")
    return lines


def _message(problem: Any, location: tuple[str, ...]) -> str:
    if problem["type"] == "extra_forbidden":
        return f"unknown key (known keys: {', '.join(_known_keys(location[:-1]))})"
    if problem["type"] == "model_type":
        return f"should be a mapping of keys, not a {type(problem['input']).__name__}"
    return str(problem["msg"])


def _known_keys(location: tuple[str, ...]) -> list[str]:
    model: type[BaseModel] = Config
    for part in location:
        model = model.model_fields[part].annotation  # type: ignore[assignment]  # a section's model
    return list(model.model_fields)


def _one_of(name: str, allowed: Sequence[str]) -> str:
    """``name``, if it is one of ``allowed`` (a registry's names); else pydantic's own message listing them."""
    if name not in allowed:
        quoted = [repr(each) for each in allowed]
        expected = f"{', '.join(quoted[:-1])} or {quoted[-1]}" if len(quoted) > 1 else quoted[0]
        raise PydanticCustomError("literal_error", "Input should be {expected}", {"expected": expected})
    return name


def _under(root: Path, path: Path) -> Path:
    path = path.expanduser()
    return path if path.is_absolute() else (root / path).resolve()


def _shown(path: Path, info: SerializationInfo) -> str:
    """A path as logs and cards show it: relative to the project folder when inside it, so no home folder leaks."""
    root = (info.context or {}).get("root")
    return path.relative_to(root).as_posix() if root is not None and path.is_relative_to(root) else str(path)


def _secret(value: SecretStr | None) -> str | None:
    if value is None:
        return None
    return value.get_secret_value().strip() or None


def _first_set(environ: Mapping[str, str], names: Sequence[str]) -> str | None:
    return next((environ[name].strip() for name in names if environ.get(name, "").strip()), None)


def _url_problem(url: str) -> str | None:
    """Why the SDK could not connect to ``url`` at all, or ``None``."""
    if any(character.isspace() for character in url):
        return "should not contain spaces"
    parts = urlsplit(url)
    if not parts.hostname:
        return "has no host name"
    try:
        parts.hostname.encode("idna")
    except UnicodeError:
        return f"has an invalid host name {parts.hostname!r}"
    try:
        port_ok = parts.port != 0
    except ValueError:  # out of range, or not a number
        port_ok = False
    return None if port_ok else "has an invalid port: should be a number from 1 to 65535"


def _is_local(url: str) -> bool:
    """Whether ``url`` points at this machine or a private network, where servers usually need no key."""
    host = urlsplit(url).hostname or ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:  # a name; one without dots is a machine on the local network, such as a Docker service
        return host == "localhost" or host.endswith((".localhost", ".local")) or "." not in host
    return address.is_loopback or address.is_private or address.is_link_local
