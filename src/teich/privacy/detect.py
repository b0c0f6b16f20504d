"""Finding secrets (credentials) and personal data in text.

Secrets come from three sources: the regex detectors of Yelp's ``detect-secrets`` library (run through its
Python API on each string), patterns for the token formats it does not know (recent provider key prefixes:
``sk-proj-``, ``sk-ant-``, ``hf_``, ``github_pat_``, ``AIza``...), and assignments whose name says they hold a
secret (``PASSWORD=``, ``"api_key": ...``, ``Authorization: Bearer ...``), filtered with the library's own
heuristics (templated values, ``$VARIABLES``, code that reads a value from elsewhere). Personal data: e-mail
addresses, user names in home folders, the user's own names, phone numbers (Google's ``phonenumbers``
metadata) and public IP addresses.

What training needs is left alone: git SHAs, UUIDs and digests (unless assigned to a secret's name),
``data:`` URLs and other long base64 runs, documentation placeholders (``sk-...``, ``YOUR_API_KEY``,
``<your-key>``, AWS's ``...EXAMPLE`` keys) and code that reads a key from the environment.
"""

from __future__ import annotations

import bisect
import ipaddress
import json
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

import phonenumbers
from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
from detect_secrets.filters.heuristic import (
    is_not_alphanumeric_string,
    is_prefixed_with_dollar_sign,
    is_sequential_string,
    is_templated_secret,
)
from detect_secrets.plugins.base import RegexBasedDetector
from detect_secrets.plugins.high_entropy_strings import Base64HighEntropyString
from detect_secrets.plugins.keyword import DENYLIST


@dataclass(frozen=True)
class Finding:
    """One sensitive value in a text: its kind, its character span, and whether it is a credential."""

    kind: str
    start: int
    end: int
    secret: bool


# -- secrets: the library's detectors -------------------------------------------------------------

#: Library detectors not run: public IPs are personal data here (see :func:`_addresses`); the IBM Cloud,
#: Cloudant and SoftLayer detectors look for secret-named assignments, which :data:`_ASSIGNMENT` finds, and
#: took over half of the scanning time.
_LIBRARY_SKIPPED = frozenset(
    {"Public IP (ipv4)", "Cloudant Credentials", "IBM Cloud IAM Key", "IBM COS HMAC Credentials"}
    | {"SoftLayer Credentials"}
)
#: Kind names for the library's secret types, where its own name reads badly as a placeholder.
_LIBRARY_KINDS = MappingProxyType(
    {
        "NPM tokens": "npm_token",
        "JSON Web Token": "jwt",
        "Basic Auth Credentials": "password",
        "Azure Storage Account access key": "azure_storage_key",
        "OpenAI Token": "openai_api_key",
        "Stripe Access Key": "stripe_key",
        "Mailchimp Access Key": "mailchimp_key",
    }
)
_TOKEN_CHARS = re.compile(r"[A-Za-z0-9_-]*")


@lru_cache(maxsize=1)
def _library_detectors() -> tuple[tuple[str, RegexBasedDetector], ...]:
    """The library's regex detectors, each with the kind its finds are given."""
    detectors: list[tuple[str, RegexBasedDetector]] = []
    mapping: dict[str, type] = get_mapping_from_secret_type_to_class()
    for secret_type, plugin in sorted(mapping.items()):
        if secret_type in _LIBRARY_SKIPPED or not issubclass(plugin, RegexBasedDetector):
            continue
        kind = _LIBRARY_KINDS.get(secret_type) or re.sub(r"\W+", "_", secret_type.lower()).strip("_")
        detectors.append((kind, plugin()))
    return tuple(detectors)


def _library_secrets(text: str) -> Iterator[Finding]:
    """Where the library's detectors find a value, each span widened to the whole token (the library's
    patterns often stop at a fixed length, inside longer keys)."""
    for kind, detector in _library_detectors():
        for value in set(detector.analyze_string(text)):
            value = value.strip(" \t\r\n\"'=:")
            if len(value) < 8:
                continue
            for match in re.finditer(re.escape(value), text):
                yield Finding(kind, *_widened(text, match.start(), match.end()), True)


def _widened(text: str, start: int, end: int) -> tuple[int, int]:
    if start and re.match(r"[A-Za-z0-9_-]", text[start]):
        while start and re.match(r"[A-Za-z0-9_-]", text[start - 1]):
            start -= 1
    if re.match(r"[A-Za-z0-9_-]", text[end - 1]):
        tail = _TOKEN_CHARS.match(text, end)
        end = tail.end() if tail else end
    return start, end


# -- secrets: formats the library misses, and secrets named by their key ---------------------------

_B64URL = r"[A-Za-z0-9_-]"
#: Token formats the library does not know, by kind. Each matches a whole token.
_TOKEN_PATTERNS = MappingProxyType({
    "openai_api_key": r"sk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{40,}",
    "openrouter_api_key": r"sk-or-v1-[0-9a-f]{64}",
    "anthropic_api_key": r"sk-ant-(?:api|admin|oat|sid)\d{2}-[A-Za-z0-9_-]{80,}",
    "huggingface_token": r"hf_[A-Za-z]{34}",
    "github_token": r"(?:github_pat_[A-Za-z0-9]{22}_[A-Za-z0-9]{59}|gh[pousr]_[A-Za-z0-9]{36,})",
    "google_api_key": r"AIza[A-Za-z0-9_-]{35}",
    "google_oauth_secret": r"GOCSPX-[A-Za-z0-9_-]{28}",
    "slack_token": r"xox[abeoprs]-[A-Za-z0-9-]{10,}",
    "stripe_key": r"(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{20,}",
    "npm_token": r"npm_[A-Za-z0-9]{36}",
    "square_token": r"sq0(?:atp|csp|idp)-[A-Za-z0-9_-]{22,43}",
    "shopify_token": r"shp(?:at|ss|ca|pa)_[a-fA-F0-9]{32}",
    "digitalocean_token": r"do[opr]_v1_[a-f0-9]{64}",
    "groq_api_key": r"gsk_[A-Za-z0-9]{48,}",
    "xai_api_key": r"xai-[A-Za-z0-9]{60,}",
    "databricks_token": r"dapi[a-f0-9]{32}(?:-\d)?",
    "replicate_token": r"r8_[A-Za-z0-9]{37}",
    "linear_api_key": r"lin_(?:api|oauth)_[A-Za-z0-9]{40}",
    "supabase_token": r"sbp_[a-f0-9]{40}",
    "vault_token": r"hv[sbr]\.[A-Za-z0-9_-]{24,}",
    "grafana_token": r"(?:glsa_[A-Za-z0-9]{32}_[a-fA-F0-9]{8}|glc_[A-Za-z0-9+/]{32,}={0,2})",
    "new_relic_key": r"NR(?:AK|II|JS)-[A-Z0-9]{27}",
    "postman_api_key": r"PMAK-[a-f0-9]{24}-[a-f0-9]{34}",
    "age_secret_key": r"AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}",
    "perplexity_api_key": r"pplx-[A-Za-z0-9]{48}",
    "notion_token": r"(?:ntn_[A-Za-z0-9]{40,}|secret_[A-Za-z0-9]{43})",
    "doppler_token": r"dp\.(?:pt|st|sa|ct|scim|audit)\.[A-Za-z0-9]{40,}",
    "figma_token": r"fig[dou]_[A-Za-z0-9_-]{40,}",
    "sentry_token": r"(?:sntry[us]_[A-Za-z0-9+/=_-]{40,})",
    "atlassian_token": r"ATATT3[A-Za-z0-9_=-]{150,}",
    "pypi_token": r"pypi-AgE[A-Za-z0-9_-]{50,}",
    "gitlab_token": r"gl(?:pat|dt|ft|soat|rt|cbt|imt|ptt|agent|oas)-[A-Za-z0-9_-]{20,}",
    "discord_bot_token": r"[MNO][A-Za-z0-9_-]{23,27}\.[A-Za-z0-9_-]{6}\.[A-Za-z0-9_-]{27,40}",
    "jwt": rf"eyJ{_B64URL}{{8,}}\.eyJ{_B64URL}{{8,}}\.{_B64URL}{{16,}}",
})
_TOKENS = re.compile(
    # The lookahead on the patterns' first letters lets the engine skip most positions at once.
    r"(?<![A-Za-z0-9_-])(?=[AGMNOPadefghlnprsx])(?:"
    + "|".join(f"(?P<{kind}>{pattern})" for kind, pattern in _TOKEN_PATTERNS.items())
    + r")(?![A-Za-z0-9_-])"
)
#: A private key block, to its END line; or, when cut short, as far as its base64 body runs.
_PRIVATE_KEY = re.compile(
    r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
    r"(?:[\s\S]{0,16000}?-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|(?:[A-Za-z0-9+/=:, \t\r\n-]|\\[nr])*)"
)
#: The password of basic-auth credentials in a URL, as written: the library misses those with no user name
#: (``redis://:PASSWORD@host``) or with reserved characters left unescaped (``postgres://app:S3cret!@db``).
_URL_PASSWORD = re.compile(r"://[^\s:@/\"'\\]*:(?P<value>[^\s@/\"'\\,]{3,})@")
_BEARER = re.compile(r"\b(?:Bearer|Basic|Token)\s+(?P<value>[A-Za-z0-9._~+/-]{16,}=*)")

_SECRET_NAMES = (*DENYLIST, "access_?key", "secret_?key", "token", "authtoken", "credentials?", "auth")
#: ``NAME = value`` (or ``"name": "value"``) where NAME ends in a word that says it holds a secret, the word
#: starting a part of the name (``DB_PASSWORD``, ``clientSecret``; not ``oauth``).
_ASSIGNMENT = re.compile(
    r"(?:(?<![A-Za-z])|(?<=[a-z])(?-i:(?=[A-Z])))"
    # The lookahead on first letters lets the engine skip most positions at once.
    rf"(?=[{''.join(sorted({w[0] for w in _SECRET_NAMES}))}])(?P<word>{'|'.join(_SECRET_NAMES)})"
    r"(?:\\{0,3}[\"'`])?\]?\s{0,3}(?::=|=>|=|:)\s{0,3}"  # quotes may be escaped: JSON inside a string
    r"(?P<quote>(?:\\{0,3}[\"'`])?)(?P<value>[^\s\"'`\\,;&<>(){}\[\]|]+)",
    re.IGNORECASE,
)
#: A ``.env`` or shell line, ``NAME=value``, whose value is a token; a secret if random enough (:func:`_random`).
_ENV_LINE = re.compile(
    r"^[ \t]*(?:export[ \t]+)?[A-Z_][A-Z0-9_]*=(?P<quote>[\"']?)(?P<value>[A-Za-z0-9+/=_.~-]{20,})(?P=quote)[ \t]*$",
    re.MULTILINE,
)
_ENTROPY = Base64HighEntropyString(limit=4.5)
_NAMES_A_SECRET = re.compile("|".join(_SECRET_NAMES), re.IGNORECASE)
_LETTERS = re.compile(r"[A-Za-z_-]+")
#: Unquoted values that read as code rather than as a secret: snake_case names and CamelCase type names.
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9]*(?:_[a-z0-9]+)+|(?:[A-Z][a-z]+)+")
_CODE_REFERENCE = re.compile(r"[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)+|[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+")
_PLACEHOLDER = re.compile(
    r"\.\.\.|x{5,}|X{5,}|\*{3,}|EXAMPLE|example|your|YOUR|changeme|placeholder|redacted|REDACTED|dummy|<|>", re.ASCII
)


def _own_secrets(text: str) -> Iterator[Finding]:
    for match in _TOKENS.finditer(text):
        yield Finding(match.lastgroup or "token", match.start(), match.end(), True)
    for match in _PRIVATE_KEY.finditer(text):
        yield Finding("private_key", match.start(), match.end(), True)
    for pattern, kind in ((_URL_PASSWORD, "password"), (_BEARER, "bearer_token")):
        for match in pattern.finditer(text):
            yield Finding(kind, match.start("value"), match.end("value"), True)
    for match in _ASSIGNMENT.finditer(text):
        finding = _assigned(text, match)
        if finding is not None:
            yield finding
    for match in _ENV_LINE.finditer(text):
        if _random(match["value"]):
            yield Finding("secret", match.start("value"), match.end("value"), True)


def _assigned(text: str, match: re.Match[str]) -> Finding | None:
    """The value of a secret-named assignment, unless it is code, a reference or too plain to be a secret."""
    value, end = match["value"], match.end("value")
    if end < len(text) and text[end] in "([" or _CODE_REFERENCE.fullmatch(value):
        return None
    if not match["quote"] and _IDENTIFIER.fullmatch(value):  # code: ``token=refresh_token``, ``password: SecretStr``
        return None
    password = re.search(r"pass|pwd|contrase", match["word"], re.IGNORECASE) is not None
    if not _looks_secret(value, password):
        return None
    return Finding("password" if password else "secret", match.start("value"), end, True)


def _looks_secret(value: str, password: bool) -> bool:
    """Whether an assigned value could be a credential: long enough, not a word or a number."""
    if len(value) < (6 if password else 12) or value.isdigit() or value.lower() in {"true", "false", "null", "none"}:
        return False
    mixed = sum(any(test(c) for c in value) for test in (str.islower, str.isupper, str.isdigit, _symbol))
    return mixed >= 2


def _random(value: str) -> bool:
    """Whether a value looks randomly drawn: upper and lower case letters and digits, and a Shannon entropy
    (the library's measure) near the most its length allows. Names, paths, model ids and hex digests fail."""
    classes = all(any(test(c) for c in value) for test in (str.islower, str.isupper, str.isdigit))
    entropy = _ENTROPY.calculate_shannon_entropy(value)
    return classes and not value.startswith("/") and entropy >= 0.8 * math.log2(min(len(value), 64))


def _symbol(char: str) -> bool:
    return not char.isalnum() and char not in "-_."


# -- what is never redacted -----------------------------------------------------------------------

_SAFE = re.compile(
    r"data:[\w/+.-]+;base64,[A-Za-z0-9+/=]+"  # data: URLs (images)
    r"|(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{256,}={0,2}"  # long base64 runs (image blocks, attachments)
    r"|\bsha(?:1|256|384|512)[-:][A-Za-z0-9+/]{20,}={0,2}"  # lockfile integrity, docker and pip digests
    r"|\bh1:[A-Za-z0-9+/]{43}="  # go.sum
)
_HEX_ID = re.compile(r"[0-9a-fA-F]{7,64}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


#: Values that documentation writes where a secret goes (``postgres://user:pass@localhost``).
_PLACEHOLDER_VALUES = frozenset({"pass", "passwd", "pw", "pwd", "secret", "token", "key", "user", "foo", "bar", "test"})


def _is_placeholder(value: str) -> bool:
    """A documentation placeholder, a reference or a label, not a value (``sk-...``, ``YOUR_API_KEY``,
    ``${TOKEN}``, ``"X-Api-Key"``)."""
    return bool(
        value.lower() in _PLACEHOLDER_VALUES
        or _PLACEHOLDER.search(value)
        or (_LETTERS.fullmatch(value) and _NAMES_A_SECRET.search(value))
        or is_templated_secret(value)
        or is_prefixed_with_dollar_sign(value)
        or is_not_alphanumeric_string(value)
        or is_sequential_string(value)
    )


def _secrets(text: str) -> list[Finding]:
    found = []
    for finding in (*_library_secrets(text), *_own_secrets(text)):
        value = text[finding.start : finding.end]
        named = finding.kind in {"password", "secret"}
        if _is_placeholder(value) or (not named and _HEX_ID.fullmatch(value)):
            continue
        found.append(finding)
    return found


# -- personal data --------------------------------------------------------------------------------

_EMAIL = re.compile(
    r"(?<![\w.+%-])[A-Za-z0-9._%+-]+@(?P<domain>[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.(?P<tld>[A-Za-z]{2,}))\b"
)
_NOT_PERSONAL_MAILBOX = re.compile(r"(?:git|noreply|no-reply|donotreply|do-not-reply|mailer-daemon)@", re.IGNORECASE)
_RESERVED_DOMAIN = re.compile(r"(?:^|\.)(?:example\.(?:com|org|net)|localhost|test|invalid|example|local)$", re.I)
#: File suffixes that follow an ``@`` in asset names (``icon@2x.png``), not e-mail domains.
_FILE_SUFFIXES = frozenset(
    {"png", "jpg", "jpeg", "gif", "svg", "webp", "ico", "js", "mjs", "ts", "tsx", "jsx", "css", "json"}
)

_NAME_CHARS = r"[^\s/\\\"'`:*?<>|$%{}()\[\],;]"
#: A user's home folder: the user name is group ``name`` (Windows names may hold spaces before a ``\``).
_HOME = re.compile(
    rf"(?:/home/|/Users/|\b[A-Za-z]:(?:\\\\?|/)Users(?:\\\\?|/))"
    rf"(?P<name>{_NAME_CHARS}+(?: {_NAME_CHARS}+)*(?=\\)|{_NAME_CHARS}+)"
)
#: Account names of shared, service and sandbox folders, which name no one.
GENERIC_USERS = frozenset(
    {
        *("user", "users", "username", "shared", "public", "default", "all users", "guest", "root", "admin"),
        *("administrator", "runner", "ubuntu", "debian", "ec2-user", "vagrant", "node", "app", "dev", "developer"),
        *("linuxbrew", "nobody", "www-data", "workspace", "project", "projects", "code", "sandbox", "container"),
        *("agent", "codex", "claude", "coder", "me", "you", "yourname", "your_name", "name", "john", "jane", "test"),
    }
)
#: A user name learned from a home folder is redacted wherever it stands as a word only from this length
#: on: longer names are rarely words a session uses otherwise (``calebfahlgren``, not ``skills``).
DISTINCT_USER_LENGTH = 7

_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w]|\.\d)")
#: Global unicast IPv6 (2000::/3), so that ``a::b`` in code is not taken for an address.
_IPV6 = re.compile(r"(?<![\w:.])[23][0-9A-Fa-f]{3}:(?:[0-9A-Fa-f]{0,4}:){1,6}[0-9A-Fa-f]{0,4}(?![\w:])")
_VERSION_CONTEXT = re.compile(r"(?:[A-Za-z]/|v|version\s*|ver\s*|[=~^]\s*)$", re.IGNORECASE)
#: Well-known public resolvers: addresses of services everyone uses, which say nothing about a person.
_SERVICE_ADDRESSES = frozenset(
    {"8.8.8.8", "8.8.4.4", "1.1.1.1", "1.0.0.1", "9.9.9.9", "149.112.112.112", "2001:4860:4860::8888",
     "2001:4860:4860::8844", "2606:4700:4700::1111", "2606:4700:4700::1001"}
)

#: Where a phone number may be: 7 to 15 digits, with a ``+`` or separators between them.
_PHONE_HINT = re.compile(r"(?<![\w.+-])\+?\(?\d[\d ().-]{5,18}\d(?![\w-])")
_PHONE_REGION = "US"
_DATE = re.compile(r"\d{4}-\d\d-\d\d|\d\d?[./-]\d\d?[./-]\d{4}")
_INTERNATIONAL = re.compile(r"\+\d{1,3}[ .-]?\(?\d{1,5}\)?(?:[ .-]\d{2,5}){1,5}")


def _emails(text: str) -> Iterator[Finding]:
    for match in _EMAIL.finditer(text):
        domain, tld = match["domain"], match["tld"].lower()
        if _NOT_PERSONAL_MAILBOX.match(match[0]) or _RESERVED_DOMAIN.search(domain) or tld in _FILE_SUFFIXES:
            continue
        yield Finding("email", match.start(), match.end(), False)


def home_users(text: str) -> set[str]:
    """The user names in the home folders ``text`` mentions that are distinct enough to be redacted wherever
    they stand as a word (:data:`DISTINCT_USER_LENGTH`), less shared and service accounts."""
    names = {match["name"] for match in _HOME.finditer(text)}
    return {name for name in names if _personal_user(name) and len(name) >= DISTINCT_USER_LENGTH}


def _personal_user(name: str) -> bool:
    return (
        len(name) > 1
        and not name.startswith(".")
        and name.lower() not in GENERIC_USERS
        and not _PLACEHOLDER.search(name)
    )


def _homes(text: str) -> Iterator[Finding]:
    for match in _HOME.finditer(text):
        if _personal_user(match["name"]):
            yield Finding("home_user", match.start("name"), match.end("name"), False)


def _names(text: str, names: Sequence[str], kind: str, flags: re.RegexFlag) -> Iterator[Finding]:
    """Each of ``names`` where it stands as a whole word (any run of spaces between its words)."""
    for name in names:
        words = name.split()
        if not words or len(name) < 2:
            continue
        pattern = r"(?<![A-Za-z0-9])" + r"\s+".join(map(re.escape, words)) + r"(?![A-Za-z0-9])"
        for match in re.finditer(pattern, text, flags):
            yield Finding(kind, match.start(), match.end(), False)


def _addresses(text: str) -> Iterator[Finding]:
    for pattern in (_IPV4, _IPV6):
        for match in pattern.finditer(text):
            try:
                address = ipaddress.ip_address(match[0])
            except ValueError:
                continue
            version = address.version == 4 and _version(text, match)
            if address.is_global and match[0] not in _SERVICE_ADDRESSES and not version:
                yield Finding("ip_address", match.start(), match.end(), False)


def _version(text: str, match: re.Match[str]) -> bool:
    """Whether a dotted quad reads as a version number: after ``v``, ``version``, ``==``, ``Chrome/``; or
    with at most one part above 9 (``3.5.0.1``), which few addresses have."""
    before = text[max(0, match.start() - 12) : match.start()]
    return bool(_VERSION_CONTEXT.search(before)) or sum(int(part) > 9 for part in match[0].split(".")) <= 1


def _phones(text: str) -> Iterator[Finding]:
    """Valid phone numbers written as people write them: with a ``+`` or separators, not bare digit runs."""
    for hint in _PHONE_HINT.finditer(text):
        if not (hint[0].startswith("+") or re.search(r"\d[ ().-]+\d", hint[0])) or _DATE.search(hint[0]):
            continue
        for match in phonenumbers.PhoneNumberMatcher(hint[0], _PHONE_REGION, leniency=_leniency(hint[0])):
            yield Finding("phone", hint.start() + match.start, hint.start() + match.end, False)


def _leniency(candidate: str) -> int:
    """A number in international form, grouped as people group phone numbers (``+33 6 12 34 56 78``), counts
    if it could exist; others must be valid numbers (national forms are easily mistaken for other digits)."""
    grouped = _INTERNATIONAL.fullmatch(candidate.rstrip(" .-")) is not None
    return phonenumbers.Leniency.POSSIBLE if grouped else phonenumbers.Leniency.VALID


def _personal(text: str, own_names: Sequence[str], users: Sequence[str]) -> list[Finding]:
    return [
        *_emails(text),
        *_homes(text),
        *_names(text, users, "home_user", re.RegexFlag(0)),
        *_names(text, own_names, "name", re.IGNORECASE),
        *_addresses(text),
        *_phones(text),
    ]


# -- putting it together --------------------------------------------------------------------------

_SHORTEST = 2
#: No credential format, and no secret-named assignment worth redacting, is shorter.
_SHORTEST_SECRET = 8


def find_sensitive(text: str, *, own_names: Sequence[str] = (), users: Sequence[str] = ()) -> list[Finding]:
    """The secrets and personal data in ``text``, sorted and non-overlapping.

    ``own_names``: the user's own names (found anywhere, any case). ``users``: account names found as
    whole words (:func:`home_users` of a session). Where finds overlap, secrets win over personal data,
    then the longer find; nothing inside a ``data:`` URL, a long base64 run or a digest is found."""
    found = _remembered if len(text) <= _LONGEST_REMEMBERED else _found
    return list(found(text, tuple(own_names), tuple(users)))


def _found(text: str, own_names: tuple[str, ...], users: tuple[str, ...]) -> tuple[Finding, ...]:
    if len(text) < _SHORTEST:
        return ()
    candidates = _personal(text, own_names, users)
    if len(text) >= _SHORTEST_SECRET:
        candidates += _secrets(text)
    if not candidates:
        return ()
    safe = [match.span() for match in _SAFE.finditer(text)]
    return tuple(_disjoint([_trimmed(text, f) for f in candidates if not _inside(f, safe)]))


#: Sessions repeat the same strings (prompts, tool names and schemas) many times: their finds are kept,
#: up to this length and this many strings.
_LONGEST_REMEMBERED = 65536
_remembered = lru_cache(maxsize=2048)(_found)


def _inside(finding: Finding, spans: list[tuple[int, int]]) -> bool:
    return any(start <= finding.start and finding.end <= end for start, end in spans)


def _trimmed(text: str, finding: Finding) -> Finding:
    """The finding without backslashes at its ends, so that a replacement never splits an escape sequence."""
    start, end = finding.start, finding.end
    while start < end and text[start] == "\\":
        start += 1
    while end > start and text[end - 1] == "\\":
        end -= 1
    return Finding(finding.kind, start, end, finding.secret)


#: Kinds that say less than a token format's name; on the same span, the format's name wins.
_GENERIC_KINDS = frozenset({"password", "secret", "bearer_token"})


def _disjoint(found: list[Finding]) -> list[Finding]:
    """Non-overlapping finds: secrets before personal data, then the longer, then the better named."""
    kept: list[Finding] = []  # disjoint, by start
    starts: list[int] = []
    for finding in sorted(found, key=lambda f: (not f.secret, f.start - f.end, f.kind in _GENERIC_KINDS, f.start)):
        at = bisect.bisect_left(starts, finding.start)
        after = at < len(kept) and kept[at].start < finding.end
        before = at > 0 and kept[at - 1].end > finding.start
        if finding.end > finding.start and not (after or before):
            kept.insert(at, finding)
            starts.insert(at, finding.start)
    return kept


def scan_path(path: Path) -> Iterator[tuple[int, Finding]]:
    """The findings in a text file, each with its 1-based line number. A line holding a JSON record is
    scanned string by string (offsets then count within that string); any other line as text."""
    with path.open(encoding="utf-8", errors="replace") as lines:
        for number, line in enumerate(lines, 1):
            for text in _line_strings(line):
                for finding in find_sensitive(text):
                    yield number, finding


def _line_strings(line: str) -> Iterator[str]:
    if line.lstrip().startswith(("{", "[")):
        try:
            yield from strings(json.loads(line))
            return
        except ValueError:
            pass
    yield line


def strings(value: Any) -> Iterator[str]:
    """Every string in a JSON value: its string leaves and the keys of its objects."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)
