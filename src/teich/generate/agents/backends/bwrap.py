"""``sandbox.backend: bwrap`` (bubblewrap): a user namespace in which the agent is ``AGENT_UID`` (mapped
onto the invoker outside), and a fresh root of its own: the system directories (``/usr``, ``/bin``,
``/lib*``) and a short list of harmless ``/etc`` files read-only (never ``/etc/shadow``,
``/etc/ssl/private`` or ssh keys), account files naming only itself, the agent's own CLI install and
the node and python3 it runs on read-only, the workspace and its home writable, a private ``/tmp``,
``/dev`` and a read-only ``/proc`` of its own PID namespace; nothing of ``/root``, ``/home``, ``/run``
or other projects. Its own IPC, UTS and cgroup namespaces, no further user namespaces where bwrap
supports that, and the process killed with its parent.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from teich.generate.agents.sandbox import AGENT_GID, AGENT_UID, Run

SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
ETC = (
    "alternatives", "bash.bashrc", "ca-certificates", "ca-certificates.conf", "crypto-policies", "gai.conf",
    "gitconfig", "host.conf", "hosts", "inputrc", "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "locale.alias",
    "localtime", "mime.types", "nsswitch.conf", "os-release", "pki/ca-trust", "pki/tls/certs", "profile",
    "profile.d", "protocols", "resolv.conf", "services", "ssl/certs", "ssl/openssl.cnf", "terminfo", "timezone",
)  # fmt: skip
TOOLS = ("node", "python3")  # bound read-only from wherever the invoker's PATH finds them
PROXIES = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")  # useless where only the relay leads out


class Bubblewrap:
    """Each run in namespaces of its own, seeing only what it needs."""

    name = "bwrap"
    priority = 20
    contains = True
    missing = "install bubblewrap (apt-get install bubblewrap)"

    def available(self) -> bool:
        return shutil.which("bwrap") is not None

    def prepare(self) -> None:
        """Nothing: runs use the CLI installed on the host, bound read-only."""
        return None

    def user(self) -> tuple[int, int]:
        return AGENT_UID, AGENT_GID

    def command(self, argv: list[str], *, run: Run, install: Path | None, env: list[str]) -> list[str]:
        """``bwrap`` around ``argv``; ``env`` needs no passing: bwrap keeps the environment it is given."""
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


def _no_more_userns() -> tuple[str, ...]:
    """``--disable-userns`` where this bwrap has it (0.8 and newer); asked each run (milliseconds), not cached."""
    done = subprocess.run(["bwrap", "--help"], capture_output=True, text=True, check=False)
    return ("--disable-userns",) if "--disable-userns" in done.stdout else ()


BACKEND = Bubblewrap()
