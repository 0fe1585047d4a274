"""Who may use the console: users and roles, tokens, signed session cookies and CSRF values.

Users come from `JETTI_RELAY_CONSOLE_TOKEN` (one user, `operator`, role operator) and
`JETTI_RELAY_CONSOLE_USERS` (`name:role:token,...`; roles `read-only` and `operator`). Only the
SHA-256 digest of each token is kept; a presented token is hashed and compared with every
user's digest by `hmac.compare_digest`, so neither its length nor its first wrong byte shows in
the time an answer takes.

A session cookie is `payload.signature`: the payload (user name, expiry, CSRF value) in
URL-safe base64 JSON, the signature an HMAC-SHA256 of it under the session key, keyed also by
the user's token digest, so a user whose token changes (or who is removed) loses every session
at the next start. The CSRF value is random per session and travels in the page (a meta tag
read by the JavaScript, a hidden form field): a request that rides the cookie must echo it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "Authenticator",
    "ConsoleConfigError",
    "Role",
    "Session",
    "User",
    "parse_users",
]

# The name of the user the single JETTI_RELAY_CONSOLE_TOKEN stands for.
SINGLE_TOKEN_USER = "operator"
# Bytes of randomness of a CSRF value and of a per-start session key.
CSRF_BYTES = 24
SESSION_KEY_BYTES = 32


class Role(StrEnum):
    """What a user may do: read-only users see everything and change nothing."""

    READ_ONLY = "read-only"
    OPERATOR = "operator"


class ConsoleConfigError(ValueError):
    """The console's users are misconfigured; the message names the variable, never a token."""


@dataclass(frozen=True)
class User:
    """A console user: the name the audit log records, the role, the digest of the token."""

    name: str
    role: Role
    token_sha256: bytes

    @property
    def may_act(self) -> bool:
        """True when this user may change things (pause, replay, retry, acknowledge...)."""
        return self.role is Role.OPERATOR


@dataclass(frozen=True)
class Session:
    """A signed-in browser: its user, when the cookie expires (epoch s) and its CSRF value."""

    user: User
    expires_at: float
    csrf: str


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def parse_users(single_token: str, users: str) -> list[User]:
    """The users of `JETTI_RELAY_CONSOLE_TOKEN` and `JETTI_RELAY_CONSOLE_USERS`.

    Raises ConsoleConfigError (naming the variable and the entry's position, never its token)
    when neither is set, an entry is not `name:role:token`, a role is unknown, a name repeats,
    or two users share a token.
    """
    found: list[User] = []
    if single_token:
        found.append(User(SINGLE_TOKEN_USER, Role.OPERATOR, _digest(single_token)))
    roles = ", ".join(r.value for r in Role)
    for position, entry in enumerate((e.strip() for e in users.split(",")), start=1):
        if not entry:
            continue
        name, sep1, rest = entry.partition(":")
        role, sep2, token = rest.partition(":")
        where = f"JETTI_RELAY_CONSOLE_USERS entry {position}"
        if not (sep1 and sep2 and name.strip() and token):
            raise ConsoleConfigError(f"{where} is not name:role:token")
        if role not in {r.value for r in Role}:
            raise ConsoleConfigError(f"{where} ({name.strip()}): unknown role (roles: {roles})")
        found.append(User(name.strip(), Role(role), _digest(token)))
    if not found:
        raise ConsoleConfigError(
            "set JETTI_RELAY_CONSOLE_TOKEN or JETTI_RELAY_CONSOLE_USERS: the console serves no "
            "one without a token"
        )
    names = [u.name for u in found]
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise ConsoleConfigError(f"JETTI_RELAY_CONSOLE_USERS: user {twice[0]!r} appears twice")
    if len({u.token_sha256 for u in found}) != len(found):
        raise ConsoleConfigError(
            "JETTI_RELAY_CONSOLE_USERS: two users share a token (the audit log could not tell "
            "them apart)"
        )
    return found


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Authenticator:
    """Checks tokens and session cookies against the configured users.

    `session_key`: the HMAC key of the cookies (`JETTI_RELAY_CONSOLE_SESSION_SECRET`); empty
    means a random key for this process, so sessions end when the console restarts.
    """

    def __init__(self, users: Sequence[User], *, session_key: bytes, session_ttl_s: float) -> None:
        self._users = list(users)
        self._by_name = {u.name: u for u in users}
        self._key = session_key or secrets.token_bytes(SESSION_KEY_BYTES)
        self.session_ttl_s = session_ttl_s

    def by_token(self, token: str) -> User | None:
        """The user whose token this is, or None. Every user's digest is compared, whatever
        matched first, so the time taken says nothing about which one nearly matched."""
        presented = _digest(token)
        found = None
        for user in self._users:
            if hmac.compare_digest(presented, user.token_sha256):
                found = user
        return found

    def _sign(self, payload: str, user: User) -> str:
        mac = hmac.new(self._key, payload.encode() + b"." + user.token_sha256, hashlib.sha256)
        return _b64(mac.digest())

    def issue(self, user: User, *, now: float) -> tuple[str, Session]:
        """A new session for `user`: (the cookie's value, the session)."""
        session = Session(user, now + self.session_ttl_s, secrets.token_urlsafe(CSRF_BYTES))
        doc = {"u": user.name, "e": session.expires_at, "c": session.csrf}
        payload = _b64(json.dumps(doc, separators=(",", ":")).encode())
        return f"{payload}.{self._sign(payload, user)}", session

    def session(self, cookie: str, *, now: float) -> Session | None:
        """The session of a cookie's value, or None when it is malformed, forged, expired, or
        its user is gone or has a new token."""
        payload, _, signature = cookie.partition(".")
        try:
            doc = json.loads(_unb64(payload))
            name, expires_at, csrf = str(doc["u"]), float(doc["e"]), str(doc["c"])
        except (ValueError, KeyError, TypeError, binascii.Error):
            return None
        user = self._by_name.get(name)
        if user is None or not hmac.compare_digest(signature, self._sign(payload, user)):
            return None
        if expires_at <= now:
            return None
        return Session(user, expires_at, csrf)

    @staticmethod
    def csrf_matches(session: Session, presented: str | None) -> bool:
        """True when `presented` is the session's CSRF value (constant-time)."""
        if not presented:
            return False
        return hmac.compare_digest(_digest(presented), _digest(session.csrf))
