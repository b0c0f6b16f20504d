#!/usr/bin/env python3
"""Mutation score of teich's core modules (trace readers, spans, labels, render, resume keys).

A small AST-based mutator: it parses each core module, lists the mutants (one small change each),
writes each mutant into a *copy* of the repository (never into this tree: others test here), and
runs only the test files that exercise that module, with ``pytest -x -q -p no:cacheprovider``, in
parallel worker copies with a per-mutant timeout. A mutant whose tests fail is *killed*; one whose
tests pass *survived*; one that runs past the timeout counts as a *timeout* (and as detected).

Operators: comparison flips (== / !=, < / >=, in / not in, is / is not, ...), boolean negation
(``if x`` -> ``if not x``, ``not x`` -> ``x``, ``and`` / ``or``), constant changes (True/False,
n -> n+1, non-empty string -> ``""``, ``""`` -> ``"X"``), removed statements (-> ``pass``),
slice/index off-by-one (constant index +1, slice bound + 1) and ``return <expr>`` -> ``return None``.
Docstrings, annotations, f-strings and the text of raised exceptions are not mutated.

Not part of the default test run (it takes from minutes to hours). Examples::

    python scripts/mutation_score.py --list                        # count mutants per module
    python scripts/mutation_score.py --sample 200 --seed 1 --budget 2400
    python scripts/mutation_score.py --module training/labels.py --jobs 2
    python scripts/mutation_score.py --sample 40 --json /tmp/mut.json

The repository is copied to ``--workdir`` (default /tmp/mut), one copy per job; ``../shared`` is
linked next to the copies so the tests that read real sessions find it.
"""

from __future__ import annotations

import argparse
import ast
import concurrent.futures as cf
import json
import os
import random
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SRC = "src/teich"

# Module (relative to src/teich) -> test files that exercise it, cheapest first (pytest -x stops at
# the first failure, so a fast file that kills most mutants should come first).
TESTS: dict[str, list[str]] = {
    "traces/reader.py": ["test_formats", "test_bad_input", "test_sources", "test_structures",
                         "test_trace_rules", "test_real_sessions"],
    "traces/conversation.py": ["test_formats", "test_trace_rules", "test_structures", "test_rows",
                               "test_bad_input", "test_real_sessions", "test_extract"],
    "traces/branch.py": ["test_structures", "test_trace_rules", "test_formats", "test_real_sessions",
                         "test_extract"],
    "traces/formats/claude_code.py": ["test_formats", "test_bad_input", "test_structures",
                                      "test_trace_rules", "test_real_sessions", "test_extract"],
    "traces/formats/codex.py": ["test_formats", "test_bad_input", "test_structures",
                                "test_trace_rules", "test_real_sessions", "test_adaptation",
                                "test_extract"],
    "traces/formats/pi.py": ["test_formats", "test_bad_input", "test_structures", "test_trace_rules",
                             "test_real_sessions", "test_extract"],
    "training/spans.py": ["test_render", "test_mask", "test_labels_data", "test_hard_cases",
                          "test_adaptation"],
    "training/labels.py": ["test_mask", "test_labels_data", "test_hard_cases", "test_render"],
    "training/render.py": ["test_render", "test_adaptation", "test_mask", "test_hard_cases",
                           "test_labels_data"],
    "training/templates.py": ["test_render", "test_adaptation", "test_mask", "test_hard_cases",
                              "test_labels_data"],
    "generate/prompts.py": ["test_prompts", "test_resume_keys", "test_generate"],
    "generate/chat.py": ["test_resume_keys", "test_rows", "test_generate", "test_adaptation"],
}
# Parts of a module outside the scope asked for ("generate/prompts.py key", "generate/chat.py
# row_key"): only these functions are mutated there.
ONLY_FUNCTIONS: dict[str, set[str]] = {
    "generate/prompts.py": {"key", "key_for"},
    "generate/chat.py": {"row_key"},
}

FLIP = {ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.Lt: ast.GtE, ast.GtE: ast.Lt, ast.Gt: ast.LtE,
        ast.LtE: ast.Gt, ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot, ast.IsNot: ast.Is}
OPSYM = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.GtE: ">=", ast.Gt: ">", ast.LtE: "<=",
         ast.In: "in", ast.NotIn: "not in", ast.Is: "is", ast.IsNot: "is not"}


@dataclass
class Mutant:
    module: str
    line: int
    op: str
    description: str
    start: tuple[int, int]
    end: tuple[int, int]
    replacement: str

    @property
    def ident(self) -> str:
        return f"{self.module}:{self.line}:{self.op}:{self.start[1]}"


def _offsets(text: str) -> list[int]:
    starts, pos = [0], 0
    for line in text.splitlines(keepends=True):
        pos += len(line.encode())
        starts.append(pos)
    return starts


def apply(text: str, m: Mutant) -> str:
    data = text.encode()
    starts = _offsets(text)
    a = starts[m.start[0] - 1] + m.start[1]
    b = starts[m.end[0] - 1] + m.end[1]
    return (data[:a] + m.replacement.encode() + data[b:]).decode()


def _skipped_nodes(tree: ast.AST) -> set[int]:
    """ids of nodes never mutated: docstrings, annotations, f-strings, raise arguments."""
    skip: set[int] = set()

    def mark(node: ast.AST | None) -> None:
        if node is not None:
            for sub in ast.walk(node):
                skip.add(id(sub))

    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                mark(body[0])
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            mark(node.returns)
            for arg in ast.walk(node.args):
                if isinstance(arg, ast.arg):
                    mark(arg.annotation)
        if isinstance(node, ast.AnnAssign):
            mark(node.annotation)
        if isinstance(node, ast.JoinedStr):
            mark(node)
        if isinstance(node, ast.Raise):
            mark(node.exc)
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__"
                                                for t in node.targets):
            mark(node)
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and \
                node.test.id == "TYPE_CHECKING":
            mark(node)
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            mark(node)
    return skip


def _in_scope(module: str, tree: ast.Module) -> list[ast.AST]:
    wanted = ONLY_FUNCTIONS.get(module)
    if not wanted:
        return [tree]
    roots = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in wanted:
            roots.append(node)
    return roots


def mutants_of(module: str, text: str) -> list[Mutant]:
    tree = ast.parse(text)
    skip = _skipped_nodes(tree)
    out: list[Mutant] = []
    seen: set[int] = set()

    def add(node: ast.AST, op: str, replacement: str, desc: str) -> None:
        out.append(Mutant(module, node.lineno, op, desc, (node.lineno, node.col_offset),
                          (node.end_lineno, node.end_col_offset), replacement))

    def src(node: ast.AST) -> str:
        return ast.get_source_segment(text, node) or ast.unparse(node)

    for root in _in_scope(module, tree):
        for node in ast.walk(root):
            if id(node) in skip or id(node) in seen:
                continue
            seen.add(id(node))
            if isinstance(node, ast.Compare):
                for i, cop in enumerate(node.ops):
                    if type(cop) in FLIP:
                        new = ast.Compare(left=node.left, ops=list(node.ops),
                                          comparators=node.comparators)
                        new.ops[i] = FLIP[type(cop)]()
                        add(node, "compare", "(" + ast.unparse(new) + ")",
                            f"{OPSYM[type(cop)]} -> {OPSYM[FLIP[type(cop)]]}")
            elif isinstance(node, ast.BoolOp):
                other = "or" if isinstance(node.op, ast.And) else "and"
                new = ast.BoolOp(op=ast.Or() if other == "or" else ast.And(), values=node.values)
                add(node, "boolop", "(" + ast.unparse(new) + ")",
                    f"{'and' if other == 'or' else 'or'} -> {other}")
            elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
                add(node, "not", "(" + src(node.operand) + ")", "not x -> x")
            elif isinstance(node, ast.Constant) and not isinstance(node.value, bytes):
                v = node.value
                if isinstance(v, bool):
                    add(node, "const", repr(not v), f"{v} -> {not v}")
                elif isinstance(v, int):
                    add(node, "const", repr(v + 1), f"{v} -> {v + 1}")
                elif isinstance(v, str):
                    new_v = "" if v else "X"
                    add(node, "const", repr(new_v), f"{v[:30]!r} -> {new_v!r}")
            elif isinstance(node, ast.Subscript):
                sl = node.slice
                if isinstance(sl, ast.Constant) and isinstance(sl.value, int) \
                        and not isinstance(sl.value, bool):
                    seen.add(id(sl))
                    add(sl, "index", repr(sl.value + 1), f"[{sl.value}] -> [{sl.value + 1}]")
                elif isinstance(sl, ast.UnaryOp) and isinstance(sl.op, ast.USub) and \
                        isinstance(sl.operand, ast.Constant) and isinstance(sl.operand.value, int):
                    seen.add(id(sl))
                    seen.add(id(sl.operand))
                    add(sl, "index", repr(-sl.operand.value + 1),
                        f"[{src(sl)}] -> [{-sl.operand.value + 1}]")
                elif isinstance(sl, ast.Slice):
                    for bound in (sl.lower, sl.upper):
                        if bound is not None and id(bound) not in skip:
                            add(bound, "slice", f"({src(bound)}) + 1",
                                f"slice bound {src(bound)} -> {src(bound)} + 1")
            if isinstance(node, (ast.If, ast.While)) and id(node.test) not in skip:
                add(node.test, "negate", f"not ({src(node.test)})", "condition negated")
            if isinstance(node, ast.IfExp):
                add(node.test, "negate", f"not ({src(node.test)})", "condition negated")
            if isinstance(node, ast.Return) and node.value is not None and not (
                    isinstance(node.value, ast.Constant) and node.value.value is None):
                add(node, "return", "return None", "return <expr> -> return None")
            if isinstance(node, (ast.Expr, ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Continue,
                                 ast.Break)) and not (
                    isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)):
                if isinstance(node, ast.AnnAssign) and node.value is None:
                    continue
                first = src(node).splitlines()[0]
                add(node, "remove", "pass", f"removed: {first[:60]}")
    # drop mutants whose source does not compile (e.g. a removed statement that was a lone body)
    good = []
    for m in out:
        try:
            compile(apply(text, m), module, "exec")
        except SyntaxError:
            continue
        good.append(m)
    return good


# ---------------------------------------------------------------------------------------------
# running


def make_copy(workdir: Path, name: str) -> Path:
    dest = workdir / name
    if dest.exists():
        shutil.rmtree(dest)
    ignore = shutil.ignore_patterns(".venv", ".git", "__pycache__", ".pytest_cache", "*.pyc",
                                    ".mypy_cache", ".ruff_cache", "node_modules", "dist", "build")
    dest.mkdir(parents=True)
    for item in ("src", "tests", "examples", "docs", "bench", "scripts", "pyproject.toml",
                 "README.md"):
        s = REPO / item
        if s.is_dir():
            shutil.copytree(s, dest / item, ignore=ignore, symlinks=True)
        elif s.exists():
            shutil.copy2(s, dest / item)
    return dest


KEYWORD = "not privacy"


def run_tests(copy: Path, tests: list[str], timeout: float) -> tuple[str, float, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(copy / "src") + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.setdefault("HYPOTHESIS_PROFILE", "default")
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "--no-header",
           "-o", "addopts=-m 'not slow'", "-k", KEYWORD, *[f"tests/{t}.py" for t in tests]]
    t0 = time.monotonic()
    try:
        proc = subprocess.run(cmd, cwd=copy, env=env, capture_output=True, text=True,
                              timeout=timeout, start_new_session=True)
    except subprocess.TimeoutExpired:
        return "timeout", time.monotonic() - t0, ""
    dt = time.monotonic() - t0
    tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
    if proc.returncode == 0:
        return "survived", dt, "\n".join(tail)
    if proc.returncode == 1:
        return "killed", dt, "\n".join(tail)
    # 2: interrupted/collection error (counts as killed: the mutant broke an import), 5: no tests
    return ("killed" if proc.returncode in (2, 3) else f"error{proc.returncode}"), dt, "\n".join(tail)


def _tests_for(module: str) -> list[str]:
    # tests/test_mutants.py holds the tests written for survivors: fast, so it runs first
    return [t for t in ["test_mutants", *TESTS[module]] if (REPO / "tests" / f"{t}.py").exists()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--module", action="append", help="module under src/teich (repeatable), "
                    "e.g. training/labels.py; default: all core modules")
    ap.add_argument("--sample", type=int, help="run a random sample of N mutants (stratified by "
                    "module in proportion to its mutant count)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--budget", type=float, help="stop starting new mutants after this many seconds")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--timeout-factor", type=float, default=3.0,
                    help="per-mutant timeout = factor x the module's baseline test time + 30 s")
    ap.add_argument("--timeout", type=float,
                    help="fixed per-mutant timeout in seconds; skips the baseline runs (which "
                    "otherwise check that the mapped tests pass unmutated)")
    ap.add_argument("-k", dest="keyword", default="not privacy",
                    help="pytest -k expression for every run (default: %(default)r; the privacy "
                    "package is outside the mutated modules)")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/mut"))
    ap.add_argument("--list", action="store_true", help="only count the mutants")
    ap.add_argument("--json", type=Path, help="write every result here")
    ap.add_argument("--ids", nargs="*", help="run only these mutant ids (module:line:op:col)")
    args = ap.parse_args(argv)
    global KEYWORD
    KEYWORD = args.keyword

    modules = args.module or list(TESTS)
    for mod in modules:
        if mod not in TESTS:
            ap.error(f"unknown module {mod}; choose from {', '.join(TESTS)}")
    texts = {m: (REPO / SRC / m).read_text() for m in modules}
    per_module = {m: mutants_of(m, texts[m]) for m in modules}
    total = sum(len(v) for v in per_module.values())
    if args.list:
        for m, ms in per_module.items():
            ops: dict[str, int] = {}
            for x in ms:
                ops[x.op] = ops.get(x.op, 0) + 1
            print(f"{m:34s} {len(ms):5d}  {ops}")
        print(f"{'total':34s} {total:5d}")
        return 0

    rng = random.Random(args.seed)
    chosen: list[Mutant] = []
    if args.ids:
        wanted = set(args.ids)
        chosen = [x for ms in per_module.values() for x in ms if x.ident in wanted]
    elif args.sample:
        for ms in per_module.values():
            k = max(1, round(args.sample * len(ms) / total)) if ms else 0
            chosen += rng.sample(ms, min(k, len(ms)))
    else:
        chosen = [x for ms in per_module.values() for x in ms]
    rng.shuffle(chosen)  # interleave modules so a time budget cuts across all of them

    args.workdir.mkdir(parents=True, exist_ok=True)
    shared = REPO.parent / "shared"
    link = args.workdir / "shared"
    if shared.exists() and not link.exists():
        link.symlink_to(shared)
    copies = [make_copy(args.workdir, f"w{i}") for i in range(args.jobs)]
    free = list(copies)

    # baseline: the mapped tests must pass unmutated, and give the timeout
    baseline: dict[str, float] = {}
    needed = sorted({x.module for x in chosen})
    print(f"{len(chosen)} mutants of {total} over {len(needed)} modules; baseline runs...",
          flush=True)
    test_sets = {m: _tests_for(m) for m in needed}
    by_set: dict[tuple[str, ...], list[str]] = {}
    for m in needed:
        by_set.setdefault(tuple(test_sets[m]), []).append(m)
    if args.timeout:
        baseline = {m: (args.timeout - 30) / args.timeout_factor for m in needed}
        by_set = {}
    with cf.ThreadPoolExecutor(args.jobs) as pool:
        futs = {}
        for i, (tests, mods) in enumerate(by_set.items()):
            futs[pool.submit(run_tests, copies[i % len(copies)], list(tests), 1800)] = (tests, mods)
        for fut in cf.as_completed(futs):
            tests, mods = futs[fut]
            status, dt, tail = fut.result()
            if status != "survived":
                print(f"baseline FAILED for {mods} ({status}):\n{tail}", flush=True)
                pool.shutdown(wait=False, cancel_futures=True)
                return 2
            for m in mods:
                baseline[m] = dt
            print(f"  baseline {', '.join(mods)}: {dt:.0f}s", flush=True)

    results: list[dict] = []
    t_start = time.monotonic()

    def work(m: Mutant, copy: Path) -> dict:
        target = copy / SRC / m.module
        target.write_text(apply(texts[m.module], m))
        try:
            status, dt, tail = run_tests(copy, test_sets[m.module],
                                         args.timeout_factor * baseline[m.module] + 30)
        finally:
            target.write_text(texts[m.module])
        return {**asdict(m), "id": m.ident, "status": status, "seconds": round(dt, 1),
                "tail": tail}

    pending = list(chosen)
    with cf.ThreadPoolExecutor(args.jobs) as pool:
        running: dict[cf.Future, Path] = {}
        while pending or running:
            while pending and free and not (
                    args.budget and time.monotonic() - t_start > args.budget):
                copy = free.pop()
                running[pool.submit(work, pending.pop(), copy)] = copy
            if not running:
                break
            done, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
            for fut in done:
                free.append(running.pop(fut))
                r = fut.result()
                results.append(r)
                print(f"[{len(results)}/{len(chosen)}] {r['status']:8s} {r['seconds']:6.1f}s "
                      f"{r['module']}:{r['line']} {r['op']}: {r['description']}", flush=True)
    skipped = len(pending)

    # report
    print("\nper module: killed / survived / timeout / other (score = (killed+timeout)/run)")
    rows: dict[str, dict[str, int]] = {}
    for r in results:
        row = rows.setdefault(r["module"], {"killed": 0, "survived": 0, "timeout": 0, "other": 0})
        key = r["status"] if r["status"] in row else "other"
        row[key] += 1
    tot = {"killed": 0, "survived": 0, "timeout": 0, "other": 0}
    for m in sorted(rows):
        row = rows[m]
        for k in tot:
            tot[k] += row[k]
        n = sum(row.values())
        score = (row["killed"] + row["timeout"]) / n if n else 0
        print(f"  {m:34s} {row['killed']:4d} {row['survived']:4d} {row['timeout']:4d} "
              f"{row['other']:4d}   {score:6.1%} of {n}")
    n = sum(tot.values())
    if n:
        print(f"  {'TOTAL':34s} {tot['killed']:4d} {tot['survived']:4d} {tot['timeout']:4d} "
              f"{tot['other']:4d}   {(tot['killed'] + tot['timeout']) / n:6.1%} of {n}")
    if skipped:
        print(f"  ({skipped} sampled mutants not run: time budget)")
    survivors = [r for r in results if r["status"] not in ("killed", "timeout")]
    if survivors:
        print("\nsurvivors:")
        for r in sorted(survivors, key=lambda r: (r["module"], r["line"])):
            print(f"  src/teich/{r['module']}:{r['line']}  [{r['op']}] {r['description']}   "
                  f"(id {r['id']}, {r['status']})")
    if args.json:
        args.json.write_text(json.dumps({"results": results, "baseline": baseline,
                                         "not_run": skipped}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
