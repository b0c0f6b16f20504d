#!/usr/bin/env python3
"""Re-create the corpus of real agent session files described by tests/data/real/MANIFEST.json.

Each manifest entry names a public repository, a commit and a path in it. This script reads those
bytes out of local git mirrors (bare git directories, as the `fetch` tool leaves them:
<mirrors>/<owner>+<name>/repo or <mirrors>/<owner>+<name>), writes them under the target folder at
the entry's `path`, and checks each file's sha256 and size against the manifest. It copies data
only; nothing here comes from the source repositories.

    python scripts/place_field_sessions.py --mirrors /work/.mirror --target ../shared/real
    python scripts/place_field_sessions.py --target ../shared/real --verify-only
"""

import argparse
import hashlib
import json
import subprocess
import sys
from pathlib import Path

DEFAULT_MANIFEST = Path(__file__).resolve().parent.parent / "tests" / "data" / "real" / "MANIFEST.json"


def git_dir(mirrors: Path, repo: str) -> Path | None:
    base = mirrors / repo.replace("/", "+")
    for candidate in (base / "repo", base):
        if candidate.is_dir() and (candidate / "objects").is_dir():
            return candidate
        if candidate.is_dir() and (candidate / ".git").is_dir():
            return candidate / ".git"
    return None


def blob(gdir: Path, commit: str, path: str) -> bytes:
    return subprocess.run(
        ["git", "--git-dir", str(gdir), "show", f"{commit}:{path}"],
        check=True,
        capture_output=True,
    ).stdout


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mirrors", type=Path, default=Path("/work/.mirror"), help="folder of git mirrors")
    ap.add_argument("--target", type=Path, required=True, help="corpus root to write (e.g. ../shared/real)")
    ap.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST)
    ap.add_argument("--verify-only", action="store_true", help="only check files already under --target")
    ap.add_argument("--force", action="store_true", help="rewrite files whose checksum already matches")
    args = ap.parse_args(argv)

    entries = json.loads(args.manifest.read_text(encoding="utf-8"))
    problems = 0
    written = present = 0
    for e in entries:
        dest = args.target / e["path"]
        if dest.is_file() and not args.force:
            data = dest.read_bytes()
            if hashlib.sha256(data).hexdigest() == e["sha256"] and len(data) == e["bytes"]:
                present += 1
                continue
            if args.verify_only:
                print(f"MISMATCH {e['path']}", file=sys.stderr)
                problems += 1
                continue
        elif args.verify_only:
            print(f"MISSING  {e['path']}", file=sys.stderr)
            problems += 1
            continue
        gdir = git_dir(args.mirrors, e["repo"])
        if gdir is None:
            print(f"NO MIRROR {e['repo']} (for {e['path']})", file=sys.stderr)
            problems += 1
            continue
        try:
            data = blob(gdir, e["commit"], e["source_path"])
        except subprocess.CalledProcessError as exc:
            msg = exc.stderr.decode("utf-8", "replace").strip()
            print(f"GIT FAILED {e['repo']}@{e['commit'][:10]}:{e['source_path']}: {msg}", file=sys.stderr)
            problems += 1
            continue
        digest = hashlib.sha256(data).hexdigest()
        if digest != e["sha256"] or len(data) != e["bytes"]:
            print(f"CHECKSUM {e['path']}: got {digest} ({len(data)} bytes)", file=sys.stderr)
            problems += 1
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".part")
        tmp.write_bytes(data)
        tmp.replace(dest)
        written += 1
    total = sum(e["bytes"] for e in entries)
    print(f"{len(entries)} files in manifest ({total / 1e6:.1f} MB): ", end="")
    print(f"{written} written, {present} already present, {problems} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
