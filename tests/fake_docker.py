"""A stand-in for the ``docker`` CLI where no Docker engine runs: it records every call and runs
``docker run`` commands on the host as the container would (workdir, passed-through variables,
and a PATH standing in for the image's, from ``FAKE_DOCKER_PATH``); mounts, user, network and security
options are recorded, not applied.

State lives in ``$FAKE_DOCKER_STATE``: ``calls.jsonl`` (one argv per line) and ``images`` (built tags).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SWITCHES = ("--rm", "--read-only")  # the run flags that take no value


def main(argv: list[str]) -> int:
    state = Path(os.environ["FAKE_DOCKER_STATE"])
    state.mkdir(parents=True, exist_ok=True)
    with (state / "calls.jsonl").open("a") as log:
        log.write(json.dumps(argv) + "\n")
    images = state / "images"
    built = set(images.read_text().split()) if images.exists() else set()
    if argv[:1] == ["info"]:
        return 0
    if argv[:2] == ["image", "inspect"]:
        return 0 if argv[2] in built else 1
    if argv[:1] == ["build"]:
        images.write_text("\n".join(built | {argv[argv.index("--tag") + 1]}))
        return 0
    if argv[:1] == ["run"]:
        return run(argv[1:])
    print(f"fake docker: unsupported {argv}", file=sys.stderr)
    return 2


def run(argv: list[str]) -> int:
    env = {"PATH": os.environ["FAKE_DOCKER_PATH"]}
    workdir, index = "/", 0
    while argv[index].startswith("--"):
        flag, value = argv[index], argv[index + 1] if argv[index] not in SWITCHES else None
        if flag == "--env":
            env[value] = os.environ[value]
        elif flag == "--workdir":
            workdir = value
        index += 1 if flag in SWITCHES else 2
    command = argv[index + 1 :]  # after the image
    return subprocess.run(command, cwd=workdir, env=env, check=False).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
