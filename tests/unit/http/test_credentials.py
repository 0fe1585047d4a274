"""The HTTP intake's credentials (producers.http.auth): the file is checked at start-up with one
clear line per mistake, and requests prove a credential by token or HMAC signature."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import pytest

from producers.http.auth import (
    DEFAULT_CREDENTIAL,
    Authenticator,
    Credential,
    IntakeConfigError,
    load_credentials,
    secrets_of,
)

GOOD = """
[[source]]
name = "shop-a"
id_prefix = "a-"
token = "token-of-shop-a"

[[source]]
name = "shop-b"
id_prefix = "b-"
hmac_secret = "hmac-of-shop-b"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "credentials.toml"
    path.write_text(text)
    return path


def test_the_environment_and_the_file_give_every_credential(tmp_path: Path) -> None:
    """The deployment's token/secret is the `default` credential (no prefix: the request
    chooses); each [[source]] is its own, with its prefix and name as the source."""
    credentials = load_credentials(token="t", hmac_secret="h", file=write(tmp_path, GOOD))

    assert credentials == [
        Credential(DEFAULT_CREDENTIAL, None, "t", "h"),
        Credential("shop-a", "a-", "token-of-shop-a", None),
        Credential("shop-b", "b-", None, "hmac-of-shop-b"),
    ]
    assert sorted(secrets_of(credentials)) == ["h", "hmac-of-shop-b", "t", "token-of-shop-a"]
    assert credentials[1].may_read("a-1") and not credentials[1].may_read("b-1")
    assert credentials[0].may_read("b-1")


def test_no_credential_at_all_is_refused() -> None:
    """An HTTP intake nobody (or anybody) could call does not start."""
    with pytest.raises(IntakeConfigError, match="needs a credential") as caught:
        load_credentials(token="", hmac_secret="", file=None)
    assert "JETTI_RELAY_INTAKE_TOKEN" in caught.value.problems[0]


ENTRY = '[[source]]\nname = "{name}"\nid_prefix = "{prefix}"\ntoken = "{token}"\n'


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[[source]]\nname = 'x'\nid_prefix = 'x-'\ntoken = ''\n", "#1 (x): `token` must be"),
        ("[[source]]\nname = 'x'\nid_prefix = 'x-'\nhmac_secret = ' '\n", "`hmac_secret` must"),
        ("[[source]]\nname = 'x'\nid_prefix = 'x-'\n", "#1 (x): needs a `token` or"),
        ("[[source]]\nname = 'x'\nid_prefix = ''\ntoken = 'sx'\n", "`id_prefix` must be"),
        ("[[source]]\nid_prefix = 'x-'\ntoken = 'sx'\n", "#1: `name` must be"),
        (f"[[source]]\nname = 'x'\nid_prefix = '{'p' * 65}'\ntoken = 'sx'\n", "more than 64"),
        ("[[source]]\nname = 'x'\nid_prefix = 'x-'\ntoken = 'sx'\nprefix = 'y'\n", "'prefix'"),
        ("[sources]\n", "unknown table or key 'sources'"),
        ("source = 'x'\n", "must be [[source]] tables"),
        ("[[source]\n", "not a TOML file"),
        (
            ENTRY.format(name="x", prefix="x-", token="s1")
            + ENTRY.format(name="x", prefix="y-", token="s2"),
            "source name 'x' is used twice",
        ),
        (
            ENTRY.format(name="x", prefix="x-", token="s1")
            + ENTRY.format(name="y", prefix="y-", token="s1"),
            "'y' uses the same secret as 'x'",
        ),
        (ENTRY.format(name="x", prefix="x-", token="env-token"), "same secret as 'default'"),
        (
            ENTRY.format(name="x", prefix="shop", token="s1")
            + ENTRY.format(name="y", prefix="shop-b", token="s2"),
            "overlap",
        ),
    ],
    ids=[
        "empty-token",
        "blank-hmac",
        "no-secret",
        "empty-prefix",
        "no-name",
        "long-prefix",
        "unknown-key",
        "unknown-table",
        "not-tables",
        "not-toml",
        "same-name",
        "same-secret",
        "secret-of-env",
        "overlapping-prefixes",
    ],
)
def test_a_bad_file_is_refused_naming_file_and_entry(
    tmp_path: Path, text: str, expected: str
) -> None:
    """Each mistake is one problem line that names the file (and the entry), never a secret."""
    path = write(tmp_path, text)

    with pytest.raises(IntakeConfigError) as caught:
        load_credentials(token="env-token", hmac_secret="", file=path)

    (problem,) = caught.value.problems
    assert str(path) in problem and "JETTI_RELAY_INTAKE_CREDENTIALS_FILE" in problem
    assert expected in problem
    for secret in ("env-token", "s1", "s2", "sx"):
        assert f"'{secret}'" not in problem


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(IntakeConfigError, match="cannot read it"):
        load_credentials(token="t", hmac_secret="", file=tmp_path / "nope.toml")


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@pytest.fixture
def authenticator(tmp_path: Path) -> Authenticator:
    return Authenticator(load_credentials(token="t0", hmac_secret="h0", file=write(tmp_path, GOOD)))


def test_a_bearer_token_finds_its_credential(authenticator: Authenticator) -> None:
    """The scheme's case does not matter; another token or scheme finds nothing."""
    shop_a = authenticator.by_token("Bearer token-of-shop-a")
    default = authenticator.by_token("bearer  t0 ")

    assert shop_a is not None and shop_a.name == "shop-a"
    assert default is not None and default.name == DEFAULT_CREDENTIAL
    for header in ("Bearer t1", "Bearer", "Basic t0", "t0", "Bearer hmac-of-shop-b"):
        assert authenticator.by_token(header) is None


def test_a_signature_finds_the_credential_whose_key_signed_the_bytes(
    authenticator: Authenticator,
) -> None:
    """sha256=<hex> of exactly these bytes with one of the HMAC keys; hex in any case."""
    body = b'{"id": "1"}'
    by_b = authenticator.by_signature(sign("hmac-of-shop-b", body).upper(), body)
    by_default = authenticator.by_signature(sign("h0", body), body)

    assert by_b is not None and by_b.name == "shop-b"
    assert by_default is not None and by_default.name == DEFAULT_CREDENTIAL
    assert authenticator.by_signature(sign("h0", body), body + b" ") is None
    assert authenticator.by_signature(sign("token-of-shop-a", body), body) is None
    assert authenticator.by_signature(sign("h0", body)[len("sha256=") :], body) is None
    assert authenticator.by_signature("sha256=zz\u00e9", body) is None
