"""Publishing generated rows, the card and ``tools.json`` to a Hugging Face dataset repo."""

from __future__ import annotations

from pathlib import Path

from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError, HTTPError  # HTTPError: the HTTP library's own, as the Hub uses

from teich.errors import TeichError


def publish(folder: Path, files: list[str], repo_id: str, token: str | None, private: bool) -> str:
    """Create (or reuse) the dataset repo and upload ``files`` from ``folder``; return the repo URL."""
    if not token:
        raise TeichError("publishing needs a Hugging Face token: publish.hf_token, HF_TOKEN or TEICH_HF_TOKEN")
    api = HfApi(token=token)
    try:
        url = api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        for name in files:
            if (folder / name).exists():
                api.upload_file(
                    path_or_fileobj=str(folder / name),
                    path_in_repo=name,
                    repo_id=repo_id,
                    repo_type="dataset",
                    commit_message=f"teich: update {name}",
                )
    except HfHubHTTPError as error:
        raise TeichError(f"publishing to {repo_id} failed: {str(error).splitlines()[0]}") from None
    except (HTTPError, OSError) as error:  # no answer at all (offline, refused, timed out), or a file unread
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise TeichError(f"publishing to {repo_id} at {api.endpoint} failed: {reason}") from None
    return str(url)
