"""Sandboxes for agent runs.

Whoever runs Teich (root included), the agent runs as an unprivileged user (``AGENT_UID``, 65532,
or for docker run by a normal user that user) with no capabilities and ``no_new_privs``, and sees:

- ``bwrap`` (bubblewrap): a user namespace in which the agent is ``AGENT_UID`` (mapped onto the
  invoker outside), and a fresh root of its own: the system directories (``/usr``, ``/bin``, ``/lib*``)
  and a short list of harmless ``/etc`` files read-only (never ``/etc/shadow``, ``/etc/ssl/private``
  or ssh keys), account files naming only itself, the agent's own CLI install and the node and python3
  it runs on read-only, the workspace and its home writable, a private ``/tmp``, ``/dev`` and a
  read-only ``/proc`` of its own PID namespace; nothing of ``/root``, ``/home``, ``/run`` or other
  projects. Its own IPC, UTS and cgroup namespaces, no further user namespaces where bwrap supports
  that, and the process killed with its parent.
- ``docker``: an image built from the ``Dockerfile`` shipped beside this module (built on first use,
  rebuilt when it or a pinned version changes); a read-only root with a private ``/tmp``, only the
  workspace and the agent's home mounted writable, all capabilities dropped, ``no-new-privileges``.
- ``none``: the agent runs as is; it must be chosen explicitly (``sandbox.network`` does not apply).

``sandbox.network``: ``endpoint`` (the default) gives the sandbox no network but its own loopback,
where the relay (:mod:`teich.generate.agents.relay`) leads to the model endpoint and nowhere else;
``full`` shares the host's network (bwrap) or uses ``--network host`` (docker), for tasks that
install packages. ``auto`` picks docker when a Docker engine answers, else bwrap when installed,
else refuses.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from importlib.resources import files
from pathlib import Path

from teich.errors import SandboxError
from teich.generate.agents.relay import forwarded, relay

DOCKERFILE = files("teich.generate.agents") / "Dockerfile"
AGENT_UID = AGENT_GID = 65532  # the agent's user: unprivileged, and owning nothing on a usual host
SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
ETC = (
    "alternatives", "bash.bashrc", "ca-certificates", "ca-certificates.conf", "crypto-policies", "gai.conf",
    "gitconfig", "host.conf", "hosts", "inputrc", "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "locale.alias",
    "localtime", "mime.types", "nsswitch.conf", "os-release", "pki/ca-trust", "pki/tls/certs", "profile",
    "profile.d", "protocols", "resolv.conf", "services", "ssl/certs", "ssl/openssl.cnf", "terminfo", "timezone",
)  # fmt: skip
TOOLS = ("node", "python3")  # bound read-only from wherever the invoker's PATH finds them
PROXIES = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")  # useless where only the relay leads out


def choose_backend(requested: str) -> str:
    """The sandbox backend for ``sandbox.backend`` (``auto``, ``docker``, ``bwrap`` or ``none``)."""
    if requested in ("docker", "auto") and _docker_answers():
        return "docker"
    if requested == "docker":
        raise SandboxError("sandbox.backend is docker, but no Docker engine answers (docker info failed)")
    if requested in ("bwrap", "auto") and shutil.which("bwrap"):
        return "bwrap"
    if requested == "none":
        return "none"
    raise SandboxError(
        "no sandbox for agent runs: start Docker or install bubblewrap (apt-get install bubblewrap), "
        "or set sandbox.backend: none to run agents unsandboxed"
    )


def _docker_answers() -> bool:
    if not shutil.which("docker"):
        return False
    try:
        done = subprocess.run(["docker", "info"], capture_output=True, timeout=20, check=False)
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0


@dataclass(frozen=True)
class Sandbox:
    """How agent commands are sandboxed: the backend, for docker the image, and the network allowed."""

    backend: str
    image: str | None = None
    network: str = "endpoint"

    @contextmanager
    def run(self, base_url: str) -> Iterator[Run]:
        """A fresh run folder, removed afterwards; under network ``endpoint`` (docker or bwrap) the relay
        to ``base_url`` serves it meanwhile."""
        with tempfile.TemporaryDirectory(prefix="teich-agent-") as root:
            run = Run(self, Path(root), base_url)
            for folder in (run.workspace, run.home, run.own):
                folder.mkdir()
            _write_accounts(run.own, *self.user(), run.home)
            if self.backend == "none" or self.network == "full":
                yield run
                return
            socket = run.own / "relay.sock"
            with relay(base_url, socket) as inside:
                yield replace(run, base_url=inside, relay=socket)

    def user(self) -> tuple[int, int]:
        """The agent's uid and gid: the invoker's under docker unless that is root, else ``AGENT_UID``."""
        if self.backend == "docker" and not _root_runs():
            return os.getuid(), os.getgid()
        return AGENT_UID, AGENT_GID


@dataclass(frozen=True)
class Run:
    """One run's folder on the host: the agent's ``workspace`` and ``home``, the sandbox's own files
    (account files, the relay's socket) in ``own``; ``base_url`` is the endpoint as the agent reaches it."""

    sandbox: Sandbox
    root: Path
    base_url: str
    relay: Path | None = None

    @property
    def workspace(self) -> Path:
        return self.root / "workspace"

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def own(self) -> Path:
        return self.root / "sandbox"

    def command(self, argv: list[str], *, install: Path | None, env: list[str]) -> list[str]:
        """``argv`` run from the workspace inside the sandbox; ``env`` names variables passed through.
        For docker run by root, the run folder is first handed to the agent's user."""
        if self.sandbox.backend == "docker":
            if _root_runs():
                _hand_over(self.root)
            return _docker(self.sandbox.image or "", argv, run=self, env=env)
        if self.sandbox.backend == "bwrap":
            return _bwrap(argv, run=self, install=install)
        return argv

    def inner(self, argv: list[str]) -> list[str]:
        """``argv``, started behind the relay's forwarder when there is one."""
        return forwarded(argv, self.relay) if self.relay else argv


def _root_runs() -> bool:
    return hasattr(os, "getuid") and os.getuid() == 0


def _write_accounts(own: Path, uid: int, gid: int, home: Path) -> None:
    """``passwd`` and ``group`` naming only the agent (and root and nobody, which own nothing it sees)."""
    nologin = "/usr/sbin/nologin"
    users = [f"root:x:0:0:root:/root:{nologin}", f"teich:x:{uid}:{gid}:Teich agent:{home}:/bin/bash"]
    users.append(f"nobody:x:65534:65534:nobody:/nonexistent:{nologin}")
    (own / "passwd").write_text("\n".join(users) + "\n")
    (own / "group").write_text(f"root:x:0:\nteich:x:{gid}:\nnogroup:x:65534:\n")


def _hand_over(root: Path) -> None:
    """Give the run folder to ``AGENT_UID`` (docker run by root: the container runs as that user)."""
    os.chown(root, AGENT_UID, AGENT_GID)
    for folder, dirs, names in os.walk(root):
        for name in dirs + names:
            os.chown(os.path.join(folder, name), AGENT_UID, AGENT_GID, follow_symlinks=False)


def _docker(image: str, argv: list[str], *, run: Run, env: list[str]) -> list[str]:
    uid, gid = run.sandbox.user()
    mounts = [flag for path in (run.workspace, run.home) for flag in ("--volume", f"{path}:{path}")]
    for source, target in ((run.own, run.own), (run.own / "passwd", "/etc/passwd"), (run.own / "group", "/etc/group")):
        mounts += ["--volume", f"{source}:{target}:ro"]
    passed = [flag for name in env for flag in ("--env", name)]  # values come from our environment, not argv
    return [
        "docker", "run", "--rm",
        "--network", "none" if run.relay else "host",
        "--user", f"{uid}:{gid}",
        "--cap-drop", "ALL",
        "--security-opt", "no-new-privileges",
        "--read-only", "--tmpfs", "/tmp:exec,mode=1777",
        *mounts,
        "--workdir", str(run.workspace),
        *passed,
        image,
        *run.inner(argv),
    ]  # fmt: skip


def _bwrap(argv: list[str], *, run: Run, install: Path | None) -> list[str]:
    tools, path = _tools()
    bound = ["--ro-bind", str(install), str(install)] if install else []
    network = [flag for name in PROXIES for flag in ("--unsetenv", name)] if run.relay else ["--share-net"]
    return [
        "bwrap",
        "--unshare-all", "--unshare-user", "--uid", str(AGENT_UID), "--gid", str(AGENT_GID),
        *_no_more_userns(), "--cap-drop", "ALL",
        *_system(), *_etc(),
        "--ro-bind", str(run.own / "passwd"), "/etc/passwd",
        "--ro-bind", str(run.own / "group"), "/etc/group",
        "--proc", "/proc", "--remount-ro", "/proc",  # the agent is the invoker outside: no sysctl writes
        "--dev", "/dev",
        "--tmpfs", "/tmp",
        *tools, *bound,
        "--ro-bind", str(run.own), str(run.own),
        "--bind", str(run.workspace), str(run.workspace),
        "--bind", str(run.home), str(run.home),
        "--remount-ro", "/",
        "--die-with-parent", "--new-session",
        "--chdir", str(run.workspace),
        "--setenv", "HOME", str(run.home),
        "--setenv", "TMPDIR", "/tmp",
        "--setenv", "PATH", path,
        *network,
        "--",
        *run.inner(argv),
    ]  # fmt: skip


def _system() -> list[str]:
    """The system directories read-only; those that are symlinks (merged ``/usr``) as the same symlinks."""
    flags = []
    for path in SYSTEM:
        if os.path.islink(path):
            flags += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            flags += ["--ro-bind", path, path]
    return flags


def _etc() -> list[str]:
    return [flag for name in ETC for flag in ("--ro-bind-try", f"/etc/{name}", f"/etc/{name}")]


def _tools() -> tuple[list[str], str]:
    """Binds for ``TOOLS`` installed outside the system directories (read-only), and the sandbox's
    ``PATH``: their folders first, then the system's."""
    prefixes, folders = [], []
    for tool in TOOLS:
        found = shutil.which(tool)
        real = Path(found).resolve() if found else None
        if real and not any(real.is_relative_to(system) for system in SYSTEM):
            prefixes.append(str(_install_prefix(real)))
            folders.append(str(real.parent))
    binds = [flag for prefix in dict.fromkeys(prefixes) for flag in ("--ro-bind", prefix, prefix)]
    system = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]
    return binds, ":".join(dict.fromkeys(folders + system))


def _install_prefix(executable: Path) -> Path:
    """The install holding ``executable`` (``.../bin/node``: ``...``), or just its folder where that
    would hold a home (``/``, ``/home``, the home itself) or be ``~/.local``."""
    prefix, home = executable.parents[1], Path.home()
    too_broad = home.is_relative_to(prefix) or prefix == home / ".local"
    return executable.parent if too_broad else prefix


@functools.cache
def _no_more_userns() -> tuple[str, ...]:
    """``--disable-userns`` where this bwrap has it (0.8 and newer)."""
    done = subprocess.run(["bwrap", "--help"], capture_output=True, text=True, check=False)
    return ("--disable-userns",) if "--disable-userns" in done.stdout else ()


def ensure_image(build_args: dict[str, str]) -> str:
    """The agents image tag for these pins, built from the shipped Dockerfile if missing."""
    recipe = DOCKERFILE.read_text() + repr(sorted(build_args.items()))
    tag = f"teich-agents:{hashlib.sha256(recipe.encode()).hexdigest()[:12]}"
    if subprocess.run(["docker", "image", "inspect", tag], capture_output=True, check=False).returncode == 0:
        return tag
    arguments = [flag for key, value in build_args.items() for flag in ("--build-arg", f"{key}={value}")]
    folder = Path(str(DOCKERFILE)).parent
    command = ["docker", "build", "--tag", tag, *arguments, "--file", str(folder / "Dockerfile"), str(folder)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800, check=False)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise SandboxError(f"docker could not build the agents image: {last}")
    return tag
