"""Who may talk to the HTTP intake: the credentials, read and checked once at start-up.

Two kinds of credential:

- the deployment's own, `JETTI_RELAY_INTAKE_TOKEN` and/or `JETTI_RELAY_INTAKE_HMAC_SECRET`: a
  request holding it may name the order source and id prefix itself (query parameters);
- per-source ones, from the TOML file `JETTI_RELAY_INTAKE_CREDENTIALS_FILE`:

      [[source]]
      name = "shop-a"          # the orders' source in the ledger
      id_prefix = "a-"         # every order key of this source starts with it
      token = "..."            # a bearer token, and/or
      hmac_secret = "..."      # the HMAC-SHA256 key of signed bodies

  The id prefix and source then come from the credential, never from the request, so one
  upstream cannot write (or read) another's orders: no two prefixes may start one another.

A request proves a credential with `Authorization: Bearer <token>`, or with
`X-Jetti-Relay-Signature: sha256=<hex>`, the HMAC-SHA256 of the raw request body (for a GET,
which has none, of the request target: the path and query as sent). Every comparison is
constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from worker.core.limits import MAX_ID_PREFIX_CHARS

# The name of the deployment's own credential (environment variables), in logs.
DEFAULT_CREDENTIAL = "default"
SIGNATURE_HEADER = "x-jetti-relay-signature"
SIGNATURE_SCHEME = "sha256="
_ENTRY_KEYS = frozenset({"name", "id_prefix", "token", "hmac_secret"})
_FILE_VARIABLE = "JETTI_RELAY_INTAKE_CREDENTIALS_FILE"


class IntakeConfigError(ValueError):
    """The HTTP intake cannot start with these settings. `problems` holds one line per mistake,
    naming the variable or the credentials file and entry, never a secret's value."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class Credential:
    """One credential. `id_prefix` is None for the deployment's own credential (the request
    chooses prefix and source); otherwise the prefix every order key of `name` gets, and `name`
    is the orders' source. At least one of `token` and `hmac_secret` is set."""

    name: str
    id_prefix: str | None
    token: str | None = None
    hmac_secret: str | None = None

    @property
    def per_source(self) -> bool:
        """True when the credential, not the request, decides the id prefix and source."""
        return self.id_prefix is not None

    def may_read(self, order_key: str) -> bool:
        """Whether a request holding this credential may look up `order_key`."""
        return self.id_prefix is None or order_key.startswith(self.id_prefix)


def load_credentials(*, token: str, hmac_secret: str, file: Path | None) -> list[Credential]:
    """The deployment's credential (when `token` or `hmac_secret` is set) and those of `file`.

    Raises IntakeConfigError naming the file and entry for a file that cannot be read or parsed,
    an entry with a missing, unknown or empty field, no secret, an id prefix that is empty, too
    long or starts another source's, or a name or secret used twice; and when there is no
    credential at all (an intake nobody may call, or worse, anybody).
    """
    credentials: list[Credential] = []
    if token or hmac_secret:
        credentials.append(Credential(DEFAULT_CREDENTIAL, None, token or None, hmac_secret or None))
    problems: list[str] = []
    if file is not None:
        entries, problems = _read_file(file)
        credentials.extend(entries)
        problems.extend(_clashes(credentials, f"{_FILE_VARIABLE} {file}"))
    if not credentials and not problems:
        problems.append(
            "the HTTP intake needs a credential: set JETTI_RELAY_INTAKE_TOKEN, "
            f"JETTI_RELAY_INTAKE_HMAC_SECRET or {_FILE_VARIABLE} (docs/intake.md)"
        )
    if problems:
        raise IntakeConfigError(problems)
    return credentials


def secrets_of(credentials: Iterable[Credential]) -> list[str]:
    """Every token and HMAC key, for the log redaction."""
    return [s for c in credentials for s in (c.token, c.hmac_secret) if s]


def _read_file(file: Path) -> tuple[list[Credential], list[str]]:
    where = f"{_FILE_VARIABLE} {file}"
    try:
        document = tomllib.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        return [], [f"{where}: cannot read it ({exc.strerror or type(exc).__name__})"]
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        return [], [f"{where}: not a TOML file ({exc})"]
    problems = [
        f"{where}: unknown table or key {k!r} (only [[source]] tables)"
        for k in document
        if k != "source"
    ]
    entries = document.get("source", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        return [], [*problems, f"{where}: `source` must be [[source]] tables"]
    credentials: list[Credential] = []
    for number, entry in enumerate(entries, 1):
        credential, entry_problems = _entry(entry, f"{where}: [[source]] #{number}")
        problems.extend(entry_problems)
        if credential is not None:
            credentials.append(credential)
    return credentials, problems


def _entry(entry: Mapping[str, Any], where: str) -> tuple[Credential | None, list[str]]:
    name = entry.get("name")
    if isinstance(name, str) and name:
        where = f"{where} ({name})"
    problems = [f"{where}: unknown key {k!r}" for k in sorted(set(entry) - _ENTRY_KEYS)]
    for key in ("name", "id_prefix"):
        value = entry.get(key)
        if not isinstance(value, str) or not value:
            problems.append(f"{where}: `{key}` must be a non-empty string")
    prefix = entry.get("id_prefix")
    if isinstance(prefix, str) and len(prefix) > MAX_ID_PREFIX_CHARS:
        problems.append(f"{where}: `id_prefix` has more than {MAX_ID_PREFIX_CHARS} characters")
    for key in ("token", "hmac_secret"):
        value = entry.get(key)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            problems.append(f"{where}: `{key}` must be a non-empty string")
    if entry.get("token") is None and entry.get("hmac_secret") is None:
        problems.append(f"{where}: needs a `token` or an `hmac_secret`")
    if problems:
        return None, problems
    return Credential(str(name), str(prefix), entry.get("token"), entry.get("hmac_secret")), []


def _clashes(credentials: Sequence[Credential], where: str) -> list[str]:
    """Names and secrets used twice; id prefixes that start another source's (that source's
    orders could be written or read under the shorter one)."""
    problems: list[str] = []
    seen_names: set[str] = set()
    seen_secrets: dict[str, str] = {}
    sources = [(c.name, c.id_prefix) for c in credentials if c.id_prefix is not None]
    for credential in credentials:
        if credential.name in seen_names:
            problems.append(f"{where}: source name {credential.name!r} is used twice")
        seen_names.add(credential.name)
        for secret in (credential.token, credential.hmac_secret):
            if secret is None:
                continue
            if secret in seen_secrets:
                problems.append(
                    f"{where}: {credential.name!r} uses the same secret as "
                    f"{seen_secrets[secret]!r} (each credential needs its own)"
                )
            seen_secrets[secret] = credential.name
    for i, (a, a_prefix) in enumerate(sources):
        for b, b_prefix in sources[i + 1 :]:
            if a_prefix.startswith(b_prefix) or b_prefix.startswith(a_prefix):
                problems.append(
                    f"{where}: the id prefixes of {a!r} ({a_prefix!r}) and {b!r} "
                    f"({b_prefix!r}) overlap: one source could write the other's orders"
                )
    return problems


class Authenticator:
    """Finds the credential a request proves. Every stored secret is compared, in constant
    time, whichever matches, so timing tells nothing about which one or how much matched."""

    def __init__(self, credentials: Sequence[Credential]) -> None:
        self._tokens = [
            (hashlib.sha256(c.token.encode()).digest(), c) for c in credentials if c.token
        ]
        self._hmac_keys = [(c.hmac_secret.encode(), c) for c in credentials if c.hmac_secret]

    def by_token(self, authorization: str) -> Credential | None:
        """The credential of an `Authorization: Bearer <token>` header value, or None."""
        scheme, _, presented = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            return None
        # Digests have one length, so compare_digest's time does not depend on the token's.
        digest = hashlib.sha256(presented.strip().encode()).digest()
        found = None
        for stored, credential in self._tokens:
            if hmac.compare_digest(stored, digest):
                found = credential
        return found

    def by_signature(self, signature: str, signed: bytes) -> Credential | None:
        """The credential whose HMAC key signed `signed` (`sha256=<hex>`, hex in any case), or
        None."""
        value = signature.strip()
        if value[: len(SIGNATURE_SCHEME)].lower() != SIGNATURE_SCHEME:
            return None
        presented = value[len(SIGNATURE_SCHEME) :].strip().lower().encode("ascii", "replace")
        found = None
        for key, credential in self._hmac_keys:
            expected = hmac.new(key, signed, hashlib.sha256).hexdigest().encode()
            if hmac.compare_digest(expected, presented):
                found = credential
        return found
