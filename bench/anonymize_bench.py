"""How much of what matters ``teich anonymize`` catches, what it damages, and how fast, beside what the
``detect-secrets`` library finds on its own.

The corpus (``tests/planted.py``) is real sessions (``../shared/traces`` when present, and the recorded ones
in ``tests/data/recorded``) with planted secrets of 60 formats, planted personal data (e-mail addresses,
home folders, the user's own name, phone numbers, public IP addresses) and look-alikes that must come
out unchanged (git SHAs, UUIDs, digests, images, documentation placeholders, code reading keys from the
environment, private addresses, version numbers). Each seed plants fresh values in fresh places.

"Library alone" runs detect-secrets 1.5 as its own scanner would (``scan_file`` under its default
settings, every plugin and filter) on the planted files, and counts a planted secret as found when a
value it reports covers the whole secret ("in part" when it reports only a piece of it).

    python bench/anonymize_bench.py              # 5 seeds
    python bench/anonymize_bench.py --seeds 20 --num-proc 2
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from planted import Corpus, base_sessions, build_corpus, corpus_text, measure  # noqa: E402

from teich.privacy import anonymize as anonymize_module  # noqa: E402
from teich.privacy.anonymize import anonymize  # noqa: E402


def library_alone(corpus: Corpus) -> Counter[str]:
    """How many planted secrets detect-secrets, run as its own scanner, reports whole, in part, or not at all."""
    from detect_secrets.core.scan import scan_file
    from detect_secrets.settings import default_settings

    reported: list[str] = []
    with default_settings():
        for path in sorted(corpus.folder.rglob("*.jsonl")):
            reported += [str(secret.secret_value or "") for secret in scan_file(str(path))]

    def escaped(value: str) -> tuple[str, str]:  # as the value reads in a JSON line, and in JSON inside a string
        once = json.dumps(value)[1:-1]
        return once, json.dumps(once)[1:-1]

    outcome: Counter[str] = Counter()
    for plant in corpus.secrets:
        forms = escaped(plant.value)
        if any(form in value for value in reported for form in forms):
            outcome["whole"] += 1
        elif any(len(value) >= 6 and value in form for value in reported for form in forms):
            outcome["in part"] += 1
        else:
            outcome["missed"] += 1
    outcome["reports"] = len(reported)
    return outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--num-proc", type=int, default=None)
    parser.add_argument("--no-library", action="store_true", help="Skip running detect-secrets on its own.")
    args = parser.parse_args()
    anonymize_module.machine_names = lambda: ([], [])  # whoever runs it: the corpus's own name only

    totals: Counter[str] = Counter()
    library: Counter[str] = Counter()
    missed: Counter[str] = Counter()
    altered: Counter[str] = Counter()
    seconds = 0.0
    size = 0
    for seed in range(args.seeds):
        with tempfile.TemporaryDirectory() as folder:
            root = Path(folder)
            corpus = build_corpus(root / "in", seed=seed)
            size += sum(path.stat().st_size for path in (root / "in").rglob("*.jsonl"))
            started = time.perf_counter()
            anonymize(root / "in", root / "out", own_names=[corpus.own_name], num_proc=args.num_proc)
            seconds += time.perf_counter() - started
            figures = measure(corpus, corpus_text(root / "in"), corpus_text(root / "out"))
            totals.update(
                secrets=figures.secrets,
                secrets_caught=figures.secrets_caught,
                personal=figures.personal,
                personal_caught=figures.personal_caught,
                negatives=figures.negatives,
                negatives_altered=figures.negatives_altered,
            )
            missed.update(plant.kind for plant in figures.missed)
            altered.update(plant.kind for plant in figures.altered)
            if not args.no_library:
                library.update(library_alone(corpus))

    sessions = len(base_sessions())
    print(f"corpus: {args.seeds} seeds x {sessions} real sessions, {size / 1e6:.1f} MB planted in all")
    print(f"secret recall      {totals['secrets_caught']}/{totals['secrets']} = "
          f"{_rate(totals, 'secrets_caught', 'secrets')}")
    print(f"personal recall    {totals['personal_caught']}/{totals['personal']} = "
          f"{_rate(totals, 'personal_caught', 'personal')}")
    print(f"negatives altered  {totals['negatives_altered']}/{totals['negatives']} = "
          f"{_rate(totals, 'negatives_altered', 'negatives')}")
    print(f"throughput         {size / 1e6 / seconds:.2f} MB/s ({seconds:.1f} s, num_proc={args.num_proc})")
    if missed:
        print("missed:", dict(missed))
    if altered:
        print("altered:", dict(altered))
    if library:
        whole, part = library["whole"], library["in part"]
        print(f"detect-secrets alone: {whole}/{totals['secrets']} = {whole / totals['secrets']:.1%} whole, "
              f"{part} more in part, {library['reports']} reports over the corpus")


def _rate(totals: Counter[str], part: str, whole: str) -> str:
    return f"{totals[part] / totals[whole]:.2%}"


if __name__ == "__main__":
    main()
