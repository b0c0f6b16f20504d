"""A seeded corpus of real sessions with planted secrets, personal data and look-alikes that must survive.

Each planted value is generated with the shape its issuer gives it (prefix, length, alphabet, and the
CRC32 checksum where the format carries one), then written into a real session: appended to a user
message, a tool output or a tool's JSON-string arguments, or inside a ``cat .env`` listing.
:func:`build_corpus` writes the sessions and returns what it planted; :func:`measure` reads an
anonymized copy back and says what was caught and what was damaged.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import random
import string
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ALNUM = string.ascii_letters + string.digits
HEX = "0123456789abcdef"
B64 = ALNUM + "+/"
URLSAFE = ALNUM + "-_"
BASE32 = string.ascii_uppercase + "234567"

#: Sessions the corpus is built on: the recorded ones ship with the tests; ``../shared`` is used when present.
RECORDED = Path(__file__).parent / "data" / "recorded"
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "traces"


@dataclass(frozen=True)
class Plant:
    """A value written into the corpus: ``value`` must vanish (or, for a negative, stay) wherever ``text`` put it."""

    kind: str
    value: str
    text: str


def _pick(rng: random.Random, alphabet: str, count: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(count))


def _base62(number: int, width: int) -> str:
    digits = string.digits + string.ascii_uppercase + string.ascii_lowercase
    out = ""
    while number:
        number, digit = divmod(number, 62)
        out = digits[digit] + out
    return out.rjust(width, "0")


def _checksummed(rng: random.Random, prefix: str) -> str:
    """GitHub's (and npm's) token shape: 30 random base62 characters and their CRC32 in 6 base62 digits."""
    body = _pick(rng, ALNUM, 30)
    return f"{prefix}{body}{_base62(zlib.crc32(body.encode()), 6)}"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _jwt(rng: random.Random) -> str:
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = {"sub": str(rng.randrange(10**6, 10**7)), "iat": rng.randrange(1_600_000_000, 1_800_000_000)}
    return f"{header}.{_b64url(json.dumps(claims).encode())}.{_b64url(rng.randbytes(32))}"


def _pem(rng: random.Random, label: str, lead: str) -> str:
    body = lead + base64.b64encode(rng.randbytes(900)).decode()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return "\n".join([f"-----BEGIN {label}-----", *lines, f"-----END {label}-----"])


def _password(rng: random.Random) -> str:
    words = ["Maple", "river", "Quartz", "tiger", "Orbit", "velvet", "Cobalt", "ember"]
    return f"{rng.choice(words)}{rng.choice(words)}{rng.randrange(10, 99)}{rng.choice('!#%*')}{_pick(rng, ALNUM, 4)}"


def _secret_values(rng: random.Random) -> list[tuple[str, str]]:
    """(format, value) for each secret format planted."""
    r, p = rng, _pick
    return [
        ("aws_access_key_id", "AKIA" + p(r, BASE32, 16)),
        ("aws_secret_access_key", p(r, B64, 40)),
        ("github_classic_pat", _checksummed(r, "ghp_")),
        ("github_oauth", _checksummed(r, "gho_")),
        ("github_fine_grained", f"github_pat_11{p(r, string.ascii_uppercase + string.digits, 20)}_{p(r, ALNUM, 59)}"),
        ("gitlab_pat", "glpat-" + p(r, URLSAFE, 20)),
        ("openai_project", f"sk-proj-{p(r, URLSAFE, 74)}T3BlbkFJ{p(r, URLSAFE, 74)}"),
        ("openai_legacy", f"sk-{p(r, ALNUM, 20)}T3BlbkFJ{p(r, ALNUM, 20)}"),
        ("anthropic", f"sk-ant-api03-{p(r, URLSAFE, 93)}AA"),
        ("huggingface", "hf_" + p(r, string.ascii_letters, 34)),
        ("google_api_key", "AIza" + p(r, URLSAFE, 35)),
        ("google_oauth_secret", "GOCSPX-" + p(r, URLSAFE, 28)),
        ("slack_bot", f"xoxb-{p(r, string.digits, 12)}-{p(r, string.digits, 13)}-{p(r, ALNUM, 24)}"),
        ("slack_webhook", f"https://hooks.slack.com/services/T{p(r, BASE32, 9)}/B{p(r, BASE32, 9)}/{p(r, ALNUM, 24)}"),
        ("stripe_secret", "sk_live_51" + p(r, ALNUM, 97)),
        ("stripe_restricted", "rk_live_51" + p(r, ALNUM, 97)),
        ("npm", _checksummed(r, "npm_")),
        ("pypi", "pypi-AgEIcHlwaS5vcmc" + p(r, URLSAFE, 150)),
        ("sendgrid", f"SG.{p(r, URLSAFE, 22)}.{p(r, URLSAFE, 43)}"),
        ("twilio_api_key", "SK" + p(r, HEX, 32)),
        ("mailchimp", f"{p(r, HEX, 32)}-us{r.randrange(1, 21)}"),
        ("discord_bot", f"MT{p(r, ALNUM, 24)}.{p(r, URLSAFE, 6)}.{p(r, URLSAFE, 38)}"),
        ("telegram_bot", f"{r.randrange(10**8, 10**10)}:AA{p(r, URLSAFE, 33)}"),
        ("jwt", _jwt(r)),
        ("rsa_private_key", _pem(r, "RSA PRIVATE KEY", "MIIEpAIBAAKCAQEA")),
        ("openssh_private_key", _pem(r, "OPENSSH PRIVATE KEY", "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ")),
        ("ec_private_key", _pem(r, "EC PRIVATE KEY", "MHcCAQEEI")),
        ("azure_storage_key", base64.b64encode(r.randbytes(64)).decode()),
        ("square_access", "sq0atp-" + p(r, URLSAFE, 22)),
        ("shopify", "shpat_" + p(r, HEX, 32)),
        ("digitalocean", "dop_v1_" + p(r, HEX, 64)),
        ("groq", "gsk_" + p(r, ALNUM, 52)),
        ("xai", "xai-" + p(r, ALNUM, 80)),
        ("databricks", "dapi" + p(r, HEX, 32)),
        ("openrouter", "sk-or-v1-" + p(r, HEX, 64)),
        ("replicate", "r8_" + p(r, ALNUM, 37)),
        ("linear", "lin_api_" + p(r, ALNUM, 40)),
        ("supabase", "sbp_" + p(r, HEX, 40)),
        ("vault", "hvs." + p(r, URLSAFE, 90)),
        ("grafana_service_account", f"glsa_{p(r, ALNUM, 32)}_{p(r, HEX, 8)}"),
        ("new_relic", "NRAK-" + p(r, string.ascii_uppercase + string.digits, 27)),
        ("postman", f"PMAK-{p(r, HEX, 24)}-{p(r, HEX, 34)}"),
        ("age", "AGE-SECRET-KEY-1" + p(r, "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L", 58)),
        ("perplexity", "pplx-" + p(r, ALNUM, 48)),
        ("notion", "ntn_" + p(r, ALNUM, 46)),
        ("doppler", "dp.pt." + p(r, ALNUM, 43)),
        ("figma", "figd_" + p(r, URLSAFE, 40)),
        ("sentry_user", "sntryu_" + p(r, HEX, 64)),
        ("atlassian", "ATATT3xFfGF0" + p(r, URLSAFE, 180)),
        ("heroku", "-".join(p(r, HEX, n) for n in (8, 4, 4, 4, 12))),
        ("cloudflare", p(r, URLSAFE, 40)),
        ("datadog", p(r, HEX, 32)),
        ("db_password", _password(r)),
        ("bearer", p(r, URLSAFE, 48)),
        ("basic_auth_password", _password(r)),
        ("postgres_password", _password(r)),
        ("mongodb_password", p(r, ALNUM, 16)),
        ("redis_password", p(r, ALNUM, 24)),
        ("generic_api_key", p(r, ALNUM, 32)),
        ("client_secret", p(r, URLSAFE, 40)),
    ]


#: How each format is written into a session: a template around ``{v}``.
_SECRET_CONTEXTS: dict[str, list[str]] = {
    "aws_access_key_id": ["aws_access_key_id = {v}", "export AWS_ACCESS_KEY_ID={v}"],
    "aws_secret_access_key": ["aws_secret_access_key = {v}", "AWS_SECRET_ACCESS_KEY={v}"],
    "slack_webhook": ['curl -X POST -d \'{{"text":"deployed"}}\' {v}'],
    "jwt": ["Authorization: Bearer {v}", 'token = "{v}"'],
    "rsa_private_key": ["$ cat ~/.ssh/deploy_key.pem\n{v}\n"],
    "openssh_private_key": ["$ cat ~/.ssh/id_ed25519\n{v}\n"],
    "ec_private_key": ["{v}"],
    "azure_storage_key": [
        "DefaultEndpointsProtocol=https;AccountName=acmeprod;AccountKey={v};EndpointSuffix=core.windows.net"
    ],
    "heroku": ["HEROKU_API_KEY={v}"],
    "cloudflare": ["CLOUDFLARE_API_TOKEN={v}", 'cloudflare_api_token: "{v}"'],
    "datadog": ["DD_API_KEY={v}"],
    "db_password": ["DB_PASSWORD={v}", 'password: "{v}"', "POSTGRES_PASSWORD='{v}'"],
    "bearer": ['curl -H "Authorization: Bearer {v}" https://api.acme-corp.io/v1/me'],
    "basic_auth_password": ["git remote add origin https://deploy-bot:{v}@git.acme-corp.io/platform/api.git"],
    "postgres_password": ["DATABASE_URL=postgresql://app_user:{v}@db.acme-corp.io:5432/production"],
    "mongodb_password": ['MONGO_URI="mongodb+srv://admin:{v}@cluster0.x7kq2.mongodb.net/app?retryWrites=true"'],
    "redis_password": ["REDIS_URL=redis://:{v}@cache.acme-corp.io:6379/0"],
    "generic_api_key": ['api_key: "{v}"', "API_KEY={v}", 'client = Client(api_key="{v}")'],
    "client_secret": ["CLIENT_SECRET={v}", '"client_secret": "{v}"'],
    "twilio_api_key": ["TWILIO_API_KEY={v}", "twilio api key {v}"],
    "mailchimp": ["MAILCHIMP_API_KEY={v}", "mailchimp key {v}"],
}
_DEFAULT_CONTEXTS = [
    "{v}",
    "export {name}={v}",
    "{name}={v}",
    'config = {{"{lower}": "{v}"}}',
    "here is my key: {v} (please use it for the deploy)",
]


def secrets(rng: random.Random) -> list[Plant]:
    """Each secret format, in one of its usual contexts."""
    plants = []
    for kind, value in _secret_values(rng):
        template = rng.choice(_SECRET_CONTEXTS.get(kind, _DEFAULT_CONTEXTS))
        name = kind.upper() + ("_TOKEN" if "token" not in kind else "")
        plants.append(Plant(kind, value, template.format(v=value, name=name, lower=name.lower())))
    return plants


_FIRST = ["maria", "jonas", "aiko", "david", "fatima", "liam", "sofia", "arjun", "elena", "kwame", "nora", "tomasz"]
_LAST = ["kowalski", "okafor", "lindqvist", "tanaka", "haddad", "moreau", "petrov", "nguyen", "schneider", "alvarez"]


def _person(rng: random.Random) -> tuple[str, str]:
    return rng.choice(_FIRST), rng.choice(_LAST)


def _public_ipv4(rng: random.Random) -> str:
    while True:
        address = ipaddress.IPv4Address(rng.randrange(1 << 24, 224 << 24))
        if address.is_global and str(address) not in {"8.8.8.8", "8.8.4.4", "1.1.1.1", "1.0.0.1", "9.9.9.9"}:
            return str(address)


def _public_ipv6(rng: random.Random) -> str:
    while True:
        address = ipaddress.IPv6Address((0x2A00 + rng.randrange(0x200)) << 112 | rng.getrandbits(112))
        if address.is_global:
            return str(address)


def _phone(rng: random.Random) -> str:
    d = lambda n: _pick(rng, string.digits, n)  # noqa: E731
    area = rng.choice(["212", "312", "415", "503", "617", "646", "720", "206"])
    exchange = f"{rng.randrange(2, 10)}{d(2)}"
    return rng.choice(
        [
            f"+1 {area}-{exchange}-{d(4)}",
            f"({area}) {exchange}-{d(4)}",
            f"{area}-{exchange}-{d(4)}",
            f"+1 ({area}) {exchange} {d(4)}",
            f"+44 20 7{d(3)} {d(4)}",
            f"+44 79{d(2)} {d(6)}",
            f"+49 30 {rng.randrange(2, 10)}{d(7)}",
            f"+33 6 {d(2)} {d(2)} {d(2)} {d(2)}",
            f"+91 98{d(3)} {d(5)}",
            f"+61 4{d(2)} {d(3)} {d(3)}",
        ]
    )


def personal(rng: random.Random, own_name: str) -> list[Plant]:
    """E-mail addresses, home folders (POSIX, macOS, Windows, JSON-escaped Windows), the user's own name,
    phone numbers and public IP addresses, each in a usual context."""
    plants = []
    for _ in range(8):
        first, last = _person(rng)
        domain = rng.choice(["gmail.com", "acme-corp.io", "proton.me", "outlook.com", "uni-heidelberg.de"])
        email = rng.choice([f"{first}.{last}", f"{first[0]}{last}", f"{first}{rng.randrange(10, 99)}"]) + f"@{domain}"
        template = rng.choice(["Author: {n} <{v}>", "git config user.email {v}", "please cc {v} on the PR", "{v}"])
        plants.append(Plant("email", email, template.format(v=email, n=f"{first.title()} {last.title()}")))
    for _ in range(8):
        first, last = _person(rng)
        user = rng.choice([f"{first}{last}", f"{first[0]}{last}", f"{first}.{last}", first + str(rng.randrange(10))])
        home = rng.choice([f"/home/{user}", f"/Users/{user}", f"C:\\Users\\{user}"])
        sep = "\\" if home.startswith("C:") else "/"
        plants.append(Plant("home_user", home, f"cd {home}{sep}code{sep}api && ls"))
    plants.append(Plant("own_name", own_name, f"Signed-off-by: {own_name}"))
    plants.append(Plant("own_name", own_name, f"Thanks, {own_name} here - the deploy broke again."))
    for _ in range(8):
        phone = _phone(rng)
        plants.append(Plant("phone", phone, rng.choice(["call me at {v}", "Phone: {v}", "on-call: {v} (pager)"])
                            .format(v=phone)))
    for index in range(8):
        address = _public_ipv6(rng) if index % 4 == 3 else _public_ipv4(rng)
        host = f"[{address}]" if ":" in address else address
        template = rng.choice(["ssh deploy@{v}", "Connection from {v} port 52344", "curl http://{h}:8080/health"])
        plants.append(Plant("ip_address", address, template.format(v=address, h=host)))
    return plants


def negatives(rng: random.Random) -> list[Plant]:
    """Look-alikes training needs intact: git SHAs, UUIDs, digests, images, doc placeholders, env-reading code,
    private addresses and version numbers."""
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + rng.randbytes(600)).decode()
    sha, uuid = _pick(rng, HEX, 40), "-".join(_pick(rng, HEX, n) for n in (8, 4, 4, 4, 12))
    integrity = "sha512-" + base64.b64encode(rng.randbytes(64)).decode()
    values = [
        ("git_sha", sha, "commit {v}\nAuthor: CI <ci@noreply.github.com>"),
        ("git_sha", _pick(rng, HEX, 40), "git checkout {v}"),
        ("git_short_sha", _pick(rng, HEX, 7), "{v} Fix the parser"),
        ("uuid", uuid, '{"session_id": "{v}"}'),
        ("uuid", "-".join(_pick(rng, HEX, n) for n in (8, 4, 4, 4, 12)), "request id {v}"),
        ("integrity", integrity, '"integrity": "{v}",'),
        ("docker_digest", "sha256:" + _pick(rng, HEX, 64), "image@{v}"),
        ("pip_hash", "sha256:" + _pick(rng, HEX, 64), "requests==2.32.3 --hash={v}"),
        ("go_sum", "h1:" + base64.b64encode(rng.randbytes(32)).decode(), "golang.org/x/net v0.24.0 {v}"),
        ("cargo_checksum", _pick(rng, HEX, 64), 'checksum = "{v}"'),
        ("data_url", f"data:image/png;base64,{png}", '<img src="{v}">'),
        ("base64_image", png, "{v}"),
        ("doc_placeholder", "sk-...", 'export OPENAI_API_KEY="sk-..."'),
        ("doc_placeholder", "YOUR_API_KEY", "api_key = YOUR_API_KEY"),
        ("doc_placeholder", "<your-key>", "ANTHROPIC_API_KEY=<your-key>"),
        ("doc_placeholder", "sk-" + "x" * 32, f'OPENAI_API_KEY="sk-{"x" * 32}"'),
        ("doc_placeholder", "your-api-key-here", "HF_TOKEN=your-api-key-here"),
        ("doc_placeholder", "AKIAIOSFODNN7EXAMPLE", "aws_access_key_id = AKIAIOSFODNN7EXAMPLE"),
        ("doc_placeholder", "ghp_" + "x" * 36, "GITHUB_TOKEN=ghp_" + "x" * 36),
        ("env_code", 'os.environ["OPENAI_API_KEY"]', 'client = OpenAI(api_key=os.environ["OPENAI_API_KEY"])'),
        ("env_code", 'os.getenv("ANTHROPIC_API_KEY")', 'api_key = os.getenv("ANTHROPIC_API_KEY")'),
        ("env_code", "process.env.STRIPE_SECRET_KEY", "const stripe = new Stripe(process.env.STRIPE_SECRET_KEY);"),
        ("env_code", "$OPENAI_API_KEY", 'curl -H "Authorization: Bearer $OPENAI_API_KEY" https://api.openai.com/v1/models'),
        ("env_code", "${{ secrets.GITHUB_TOKEN }}", "token: ${{ secrets.GITHUB_TOKEN }}"),
        ("env_code", "password=getpass.getpass()", "password=getpass.getpass()"),
        ("env_code", "${DB_PASSWORD}", "password: ${DB_PASSWORD}"),
        ("private_ip", "192.168.1.23", "ssh pi@192.168.1.23"),
        ("private_ip", "10.0.3.7", "listening on 10.0.3.7:8080"),
        ("loopback", "127.0.0.1", "curl http://127.0.0.1:3000"),
        ("version", "4.2.1.7", "Installed version 4.2.1.7 of the driver"),
        ("version", "120.0.0.0", "Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0.0.0 Safari/537.36"),
        ("version", "v2.14.0", "release v2.14.0"),
        ("number", "1716312345678", '"timestamp": 1716312345678'),
        ("noreply_email", "noreply@anthropic.com", "Co-Authored-By: Claude <noreply@anthropic.com>"),
        ("retina_asset", "icon@2x.png", "public/icon@2x.png"),
        ("prose", "Enter your password to continue", "Enter your password to continue"),
        ("dns_resolver", "8.8.8.8", "ping -c1 8.8.8.8"),
    ]
    return [Plant(kind, value, template.replace("{v}", value)) for kind, value, template in values]


# -- writing the corpus ---------------------------------------------------------------------------


def base_sessions() -> list[Path]:
    """The real sessions planted into: the shared ones when present, and the recorded ones shipped with tests."""
    shared = sorted(SHARED.glob("*.jsonl")) if SHARED.is_dir() else []
    return shared + sorted(RECORDED.rglob("*.jsonl"))


def _string_leaves(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(value, str):
        yield path
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _string_leaves(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _string_leaves(item, (*path, index))


def _update(record: Any, path: tuple[Any, ...], change: Callable[[str], str]) -> None:
    *parents, last = path
    for key in parents:
        record = record[key]
    record[last] = change(record[last])


def _json_arguments(text: str) -> dict[str, Any] | None:
    if not text.startswith("{"):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) and any(isinstance(v, str) for v in value.values()) else None


def _inserted(text: str, addition: str, rng: random.Random) -> str:
    """``text`` with ``addition`` appended; into one string field when ``text`` holds JSON tool arguments."""
    arguments = _json_arguments(text)
    if arguments is None:
        return f"{text}\n{addition}" if text else addition
    key = rng.choice([k for k, v in arguments.items() if isinstance(v, str)])
    arguments[key] = f"{arguments[key]}\n{addition}"
    return json.dumps(arguments)


#: The names ``.env`` files give values that only their name marks as secret (hex keys, UUIDs).
_ENV_NAMES = {"datadog": "DD_API_KEY", "heroku": "HEROKU_API_KEY", "mailchimp": "MAILCHIMP_API_KEY"}


def _dotenv(plants: list[Plant]) -> str:
    """A ``cat .env`` listing of some secrets, the way a tool output shows it."""
    lines = [f"{_ENV_NAMES.get(plant.kind, plant.kind.upper())}={plant.value}" for plant in plants]
    return "$ cat .env\n" + "\n".join(lines)


@dataclass
class Corpus:
    """The planted folder and what went into it."""

    folder: Path
    own_name: str
    secrets: list[Plant]
    personal: list[Plant]
    negatives: list[Plant]


def build_corpus(folder: Path, seed: int = 13, sessions: list[Path] | None = None) -> Corpus:
    """Write each real session into ``folder`` with the planted values spread over its string leaves."""
    rng = random.Random(seed)
    own_name = "Ingrid Vasquez-Holm"
    planted = Corpus(folder, own_name, secrets(rng), personal(rng, own_name), negatives(rng))
    one_line = [p for p in planted.secrets if "\n" not in p.value and "=" not in p.value and len(p.value) < 120]
    texts = [p.text for p in planted.secrets + planted.personal + planted.negatives]
    texts += [_dotenv(rng.sample(one_line, 4)) for _ in range(4)]
    files = sessions or base_sessions()
    shares: list[list[str]] = [[] for _ in files]
    for index, text in enumerate(texts):
        shares[index % len(files)].append(text)
    for path, share in zip(files, shares, strict=True):
        name = path.relative_to(RECORDED) if path.is_relative_to(RECORDED) else Path("shared", path.name)
        _plant_file(path, folder / name, share, rng)
    return planted


def _plant_file(source: Path, target: Path, texts: list[str], rng: random.Random) -> None:
    records = [json.loads(line) for line in source.read_text(encoding="utf-8").splitlines() if line.strip()]
    leaves = [(i, path) for i, record in enumerate(records) for path in _string_leaves(record) if len(path) > 1]
    for text in texts:
        index, path = rng.choice(leaves)
        _update(records[index], path, lambda old, text=text: _inserted(old, text, rng))
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")


# -- measuring ------------------------------------------------------------------------------------


@dataclass
class Figures:
    """What an anonymized copy of a corpus kept and lost."""

    secrets_caught: int
    secrets: int
    personal_caught: int
    personal: int
    negatives_altered: int
    negatives: int
    missed: list[Plant]
    altered: list[Plant]

    @property
    def secret_recall(self) -> float:
        return self.secrets_caught / self.secrets

    @property
    def personal_recall(self) -> float:
        return self.personal_caught / self.personal

    @property
    def negatives_altered_rate(self) -> float:
        return self.negatives_altered / self.negatives


def _unescaped(folder: Path) -> str:
    """Every string in the folder's JSON records, decoded (so that values read as they were planted)."""
    texts = []
    for path in sorted(folder.rglob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            for leaf in _string_leaves(record):
                value = record
                for key in leaf:
                    value = value[key]
                texts.append(value)
                arguments = _json_arguments(value)
                if arguments is not None:
                    texts += [v for v in arguments.values() if isinstance(v, str)]
    return "\n".join(texts)


def _leaked(plant: Plant, after: str, secret: bool) -> bool:
    """Whether a planted value is still there, whole or, for a secret, in good part: either half of it
    counts (a redaction that stops short, or starts late, leaves one). Personal data is found as a whole
    (halves of e-mail addresses share their domain with other text)."""
    value = plant.value
    if not secret or len(value) < 8:
        return value in after
    half = len(value) // 2
    return any(part in after for part in (value, value[:half], value[half:]))


def measure(corpus: Corpus, before: str, after: str) -> Figures:
    """Compare the texts (see :func:`corpus_text`) of a corpus and of its anonymized copy."""
    missed = [p for p in corpus.secrets if _leaked(p, after, True)]
    missed += [p for p in corpus.personal if _leaked(p, after, False)]
    altered = [p for p in corpus.negatives if after.count(p.value) < before.count(p.value)]
    secrets_missed = sum(p in missed for p in corpus.secrets)
    return Figures(
        secrets_caught=len(corpus.secrets) - secrets_missed,
        secrets=len(corpus.secrets),
        personal_caught=len(corpus.personal) - (len(missed) - secrets_missed),
        personal=len(corpus.personal),
        negatives_altered=len(altered),
        negatives=len(corpus.negatives),
        missed=missed,
        altered=altered,
    )


def corpus_text(folder: Path) -> str:
    """All the text of a folder's sessions, JSON strings and JSON-string arguments decoded."""
    return _unescaped(folder)
