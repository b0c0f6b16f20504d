"""Publishing a folder of sessions or rows to a Hugging Face dataset repo in one commit, behind a secret gate.

Before anything is sent, every file to upload is scanned with :func:`~teich.privacy.detect.scan_path`
(compressed files decompressed, Parquet rows read as JSON lines); while a credential remains, nothing
is uploaded and the refusal names each file and line, never the value.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import CommitOperationAdd, HfApi, get_token
from huggingface_hub.errors import HfHubHTTPError, HTTPError  # type: ignore[attr-defined]  # the HTTP library's own
from huggingface_hub.utils import validate_repo_id  # type: ignore[attr-defined]  # exported lazily

from teich.errors import PublishError, first_line
from teich.generate.card import CARD
from teich.generate.config import HF_TOKEN_ENVS
from teich.parallel import can_fork, fork_map
from teich.privacy.card import render_folder_card
from teich.privacy.detect import scan_path
from teich.traces.reader import COMPRESSED_SUFFIXES, open_decompressed

MAX_LEAKS_NAMED = 5
_SNIFF_BYTES = 8192  # a NUL byte in a file's first 8 KiB: binary, not text the detector can read


@dataclass(frozen=True)
class Leak:
    """A secret in a file to publish: the file (relative to the folder), the line (``None``: the whole
    file, which cannot be checked) and the kind of secret; never the value."""

    file: str
    line: int | None
    kind: str

    def __str__(self) -> str:
        return f"{self.file}{'' if self.line is None else f':{self.line}'} ({self.kind})"


def publish(
    folder: str | Path,
    repo_id: str,
    *,
    files: Sequence[str] | None = None,
    token: str | None = None,
    private: bool = False,
    allow_secrets: bool = False,
    num_proc: int | None = None,
) -> str:
    """Upload ``folder`` to the Hugging Face dataset repo ``repo_id`` in one commit; return the repo's URL.

    ``files`` are the names to upload, relative to ``folder`` (those missing are skipped); by default
    every file in it but hidden ones (``.git``, caches, lock and spill files). A folder without a card
    (``README.md``) gets one from :func:`~teich.privacy.card.render_folder_card` (the folder itself is
    not changed). Unless ``allow_secrets``, every file is first checked with :func:`find_secrets` (in
    ``num_proc`` forked processes, where the platform forks), and nothing is uploaded while any secret
    remains. The repo is created when missing, ``private`` or public; an existing repo keeps its
    visibility, and with ``private`` an existing public one is refused.
    ``token`` is a Hub token with write access (default: ``HF_TOKEN``, ``HUGGINGFACE_HUB_TOKEN``,
    ``TEICH_HF_TOKEN``, then the one saved by ``hf auth login``). Raises
    :class:`~teich.errors.PublishError` when secrets remain, there is no token, or the Hub refuses or
    cannot be reached."""
    root = Path(folder)
    _check_repo_id(repo_id)
    token = _token(token)
    names = _publishable(root, files)
    if not names:
        raise PublishError(f"{root}: nothing to publish")
    if not allow_secrets:
        _refuse_leaks(repo_id, find_secrets(root, names, num_proc=num_proc))
    card = None if (root / CARD).exists() else render_folder_card(root, pretty_name=repo_id.rsplit("/", 1)[-1])
    return _upload(root, names, card, repo_id, token=token, private=private)


def find_secrets(folder: str | Path, files: Sequence[str] | None = None, *, num_proc: int | None = None) -> list[Leak]:
    """The secrets (credentials, not personal data) in ``files`` of ``folder`` (default: every file
    :func:`publish` would upload), in file and line order; files are spread over ``num_proc`` forked
    processes where the platform forks. A file that cannot be read as text counts as one
    :class:`Leak` for the whole file."""
    root = Path(folder)
    names = _publishable(root, files)
    if num_proc and num_proc > 1 and len(names) > 1 and can_fork():
        per_file = fork_map(lambda i: _file_leaks(root, names[i]), len(names), min(num_proc, len(names)))
    else:
        per_file = [_file_leaks(root, name) for name in names]
    return [leak for leaks in per_file for leak in leaks]


def _check_repo_id(repo_id: str) -> None:
    try:
        validate_repo_id(repo_id)
    except ValueError:
        raise PublishError(f"{repo_id!r} is not a Hugging Face repo id (OWNER/NAME)") from None


def _token(token: str | None) -> str:
    from_env = next((os.environ[name].strip() for name in HF_TOKEN_ENVS if os.environ.get(name, "").strip()), None)
    found = token or from_env or get_token()
    if not found:
        names = ", ".join(HF_TOKEN_ENVS)
        raise PublishError(f"publishing needs a Hugging Face token with write access: {names} or `hf auth login`")
    return found


def _publishable(root: Path, files: Sequence[str] | None) -> list[str]:
    """Those of ``files`` that ``root`` holds, or by default every file under it whose path holds no
    hidden part, as sorted POSIX paths relative to it."""
    if not root.is_dir():
        raise PublishError(f"{root}: not a folder")
    if files is not None:
        return [name for name in files if (root / name).is_file()]
    relative = (path.relative_to(root) for path in root.rglob("*") if path.is_file())
    return sorted(path.as_posix() for path in relative if not any(part.startswith(".") for part in path.parts))


def _refuse_leaks(repo_id: str, leaks: list[Leak]) -> None:
    if not leaks:
        return
    named = ", ".join(map(str, leaks[:MAX_LEAKS_NAMED]))
    more = f" and {len(leaks) - MAX_LEAKS_NAMED} more" if len(leaks) > MAX_LEAKS_NAMED else ""
    raise PublishError(
        f"not publishing to {repo_id}: {len(leaks)} secrets remain: {named}{more}; "
        "redact them (teich anonymize) or publish anyway (teich publish --allow-secrets)"
    )


def _file_leaks(root: Path, name: str) -> list[Leak]:
    try:
        with _as_text(root / name) as text:
            if text is None:
                return [Leak(name, None, "binary file, cannot be checked")]
            return [Leak(name, line, finding.kind) for line, finding in scan_path(text) if finding.secret]
    except Exception as error:  # unreadable, or a damaged archive or Parquet file (each library raises its own)
        reason = error.strerror if isinstance(error, OSError) and error.strerror else type(error).__name__
        return [Leak(name, None, f"cannot be checked: {reason}")]  # never the library's text: it may quote the file


@contextmanager
def _as_text(path: Path) -> Iterator[Path | None]:
    """``path`` as a plain text file for the detector: itself, or a decompressed copy, or its Parquet
    rows as JSON lines (line N: row N); ``None`` for a binary file."""
    if path.suffix in COMPRESSED_SUFFIXES or path.suffix == ".parquet":
        with tempfile.TemporaryDirectory(prefix="teich-publish-") as scratch:
            plain = Path(scratch) / "plain.txt"
            _write_plain(path, plain)
            yield None if _is_binary(plain) else plain
    else:
        yield None if _is_binary(path) else path


def _write_plain(path: Path, plain: Path) -> None:
    if path.suffix == ".parquet":
        import pyarrow.parquet as parquet

        with plain.open("w", encoding="utf-8") as out:
            for batch in parquet.ParquetFile(path).iter_batches():
                out.writelines(json.dumps(row, ensure_ascii=False, default=str) + "\n" for row in batch.to_pylist())
    else:
        with open_decompressed(path) as stream, plain.open("wb") as out:
            shutil.copyfileobj(stream, out)


def _is_binary(path: Path) -> bool:
    with path.open("rb") as stream:
        return b"\0" in stream.read(_SNIFF_BYTES)


def _upload(root: Path, names: list[str], card: str | None, repo_id: str, *, token: str, private: bool) -> str:
    """Create (or reuse) the repo and commit ``names`` (and ``card``, when given, as ``README.md``) at once."""
    api = HfApi(token=token)
    try:
        operations = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=root / name) for name in names]
        if card is not None:
            operations.append(CommitOperationAdd(path_in_repo=CARD, path_or_fileobj=card.encode()))
        url = api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        if private and api.repo_info(repo_id, repo_type="dataset").private is False:
            raise PublishError(f"not publishing to {repo_id}: private was asked, but the repo is public on the Hub")
        message = f"teich publish: {len(operations)} files"
        api.create_commit(repo_id, operations, commit_message=message, repo_type="dataset")
    except HfHubHTTPError as error:
        raise PublishError(f"publishing to {repo_id} failed: {_hub_reason(error)}") from None
    except (HTTPError, OSError) as error:  # no answer at all (offline, refused, timed out), or a file unread
        raise PublishError(f"publishing to {repo_id} at {api.endpoint} failed: {first_line(error)}") from None
    except ValueError as error:  # what huggingface_hub checks before it sends (the card's metadata)
        raise PublishError(f"publishing to {repo_id} failed: {first_line(error)}") from None
    return str(url)


def _hub_reason(error: HfHubHTTPError) -> str:
    """The Hub's own reason with its status (``403: You don't have the rights...``), else the error's first line."""
    reason = (error.server_message or "").strip().splitlines()
    status = error.response.status_code if error.response is not None else None
    return f"{status}: {reason[0]}" if reason and status else first_line(error)
