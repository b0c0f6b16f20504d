"""A new generation project (``teich init``): a commented ``config.yaml`` and example prompts."""

from __future__ import annotations

from pathlib import Path

from teich.errors import TeichError
from teich.files import write_text_atomic

CONFIG_FILE = "config.yaml"
PROMPTS_FILE = "prompts.csv"

CONFIG_TEMPLATE = """\
# A Teich generation project. Relative paths are resolved against this file's folder.
#
# Environment overrides, handy for local OpenAI-compatible servers (LM Studio, Ollama, vLLM):
#   TEICH_PROVIDER  agent.provider
#   TEICH_MODEL     model.model
#   TEICH_BASE_URL  api.base_url, and api.provider becomes custom
#   TEICH_API_KEY   the API key when api.api_key and api.api_key_env give none
# e.g. TEICH_BASE_URL=http://localhost:1234/v1 TEICH_MODEL=qwen3-8b (a local server needs no key)

agent:
  provider: chat              # chat (the model answers directly), codex, pi or claude-code (coding agents)

model:
  model: gpt-4.1-mini         # the model name the API expects
  temperature: 0.7            # sampling temperature, 0 to 2; empty: the server's default
  max_tokens:                 # most tokens per reply; empty: the server's default
  reasoning_effort:           # minimal, low, medium or high for reasoning models; empty: not sent
  approval_policy:            # agent providers: untrusted, on-failure, on-request or never
  sandbox:                    # codex's own sandbox: read-only, workspace-write or danger-full-access (empty: off,
                              # as Teich's sandbox contains the agent)

api:
  provider: openai            # openai, openrouter or custom (any OpenAI-compatible server)
  wire_api: chat              # chat (Chat Completions) or responses (Responses API)
  stream: false               # stream replies (keeps long generations alive behind proxies)
  base_url:                   # empty: the provider's default; required for custom
  api_key_env:                # the variable holding the key; empty: TEICH_API_KEY, then OPENAI_API_KEY
                              # (or OPENROUTER_API_KEY for openrouter)
  # api_key: sk-...           # the key itself: avoid, so it never lands in version control

prompts_file: prompts.csv     # .csv, .jsonl (recommended for long or multi-line prompts), .ndjson, .json or .txt
system_prompt:                # the system prompt of prompts that have none of their own

output:
  traces_dir: output          # where the generated rows, dataset card and tools.json go
  sandbox_dir: sandbox        # agent providers: the working folders of the agents
  failures_dir: failures      # prompts that failed after every retry, one JSON file each
  pretty_name:                # the dataset's name on its card; empty: model and provider

publish:
  repo_id:                    # a Hugging Face dataset id (you/name) to upload to; empty: no upload
  private: true               # create that dataset repository as private
  # hf_token: hf_...          # avoid: set HF_TOKEN (or HUGGINGFACE_HUB_TOKEN, TEICH_HF_TOKEN) instead

concurrency: 4                # prompts in flight at once

execution:
  backend: local              # local: prompts run in this process; ray: Ray tasks (pip install "teich[ray]")
  address:                    # ray: the cluster's address; empty: RAY_ADDRESS, else a cluster started on this machine

sandbox:
  backend: auto               # agent providers: docker, bwrap (bubblewrap) or none; auto: docker, else bwrap
  network: endpoint           # endpoint: the agent reaches only the model endpoint; full: the host's network

retry:
  max_attempts: 3             # attempts per request before the prompt counts as failed
  backoff_seconds: 1.0        # wait before the first retry; doubled before each further one
  timeout_seconds: 600        # the limit for one request (for the agents: one whole agent run)
"""

PROMPTS_TEMPLATE = """\
prompt,category,follow_up_prompts
"Write a Python function that merges overlapping intervals, with a few tests.",coding,
"Explain the difference between a process and a thread.",concepts,"[""When would you pick threads over processes?""]"
"Compare SQLite and PostgreSQL for a small web app, and recommend one.",databases,
"""


def init_project(folder: str | Path, *, force: bool = False) -> list[Path]:
    """Write ``config.yaml`` and ``prompts.csv`` into ``folder``; refuse a non-empty folder unless ``force``."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise TeichError(f"{folder} exists and is not a folder")
    if folder.is_dir() and any(folder.iterdir()) and not force:
        raise TeichError(f"{folder} is not empty; pass --force to overwrite its {CONFIG_FILE} and {PROMPTS_FILE}")
    written = [folder / CONFIG_FILE, folder / PROMPTS_FILE]
    for path, text in zip(written, (CONFIG_TEMPLATE, PROMPTS_TEMPLATE), strict=True):
        write_text_atomic(path, text)
    return written
