"""Finding, masking and erasing customers' personal data in stored orders (pure functions).

Used by the dead-letter store (display, export, privacy erasure) and meant for the ledger too:
`email_hash` is the one way to key a privacy index, so a privacy request finds the customer's
orders in every store by the same hash without any store keeping the email in clear.

What counts as personal data: names, emails, phones and addresses. In a JSON document that is
every non-null scalar under a customer or address key, every value under an email-, phone- or
name-like key, and any email inside other strings (notes, properties). A line's `name` is a product
name, so `name` counts only inside a customer or address object.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Sequence
from typing import Any

_EMAIL_RE = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")
# Normalised keys (lower case, no "_" or "-") whose whole value is personal data.
_PERSONAL_LEAVES = frozenset(
    {
        "firstname",
        "lastname",
        "fullname",
        "customername",
        "contactname",
        "company",
        "companyname",
        "mobile",
        "street",
        "city",
        "zip",
        "postcode",
        "postalcode",
        "province",
    }
)
# Normalised keys whose whole subtree is about a person (besides anything named *address*).
_PERSONAL_CONTAINERS = frozenset({"customer", "billing", "billto", "shipto", "contact"})
# Jetti's payload flattens addresses into `saleDefaults` (`billingFirstName`, `shippingCity`):
# a key with one of these prefixes followed by a personal part is personal data too.
_FLAT_ADDRESS_PREFIXES = ("billing", "shipping")
_FLAT_ADDRESS_PARTS = _PERSONAL_LEAVES | {"state", "country"}


def email_hash(email: str) -> str:
    """Hex sha256 of the trimmed, lower-cased email: the key of every privacy index."""
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()


def find_emails(data: bytes | None) -> set[str]:
    """Every email-looking string in `data` (undecodable bytes replaced), lower-cased."""
    if not data:
        return set()
    return {m.lower() for m in _EMAIL_RE.findall(data.decode("utf-8", errors="replace"))}


def _norm(key: str) -> str:
    return key.lower().replace("_", "").replace("-", "")


def _is_personal_key(key: str) -> bool:
    n = _norm(key)
    return (
        n in _PERSONAL_CONTAINERS
        or n in _PERSONAL_LEAVES
        or "address" in n
        or "email" in n
        or "phone" in n
        or any(
            n.startswith(p) and n[len(p) :] in _FLAT_ADDRESS_PARTS for p in _FLAT_ADDRESS_PREFIXES
        )
    )


def scrub_personal_data(doc: Any, replacement: str) -> Any:
    """A copy of the JSON document `doc` with its personal data replaced by `replacement`.
    Structure, booleans and nulls are kept, so the shape of the order stays readable."""

    def walk(node: Any, personal: bool) -> Any:
        if isinstance(node, dict):
            return {k: walk(v, personal or _is_personal_key(k)) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, personal) for v in node]
        if node is None or isinstance(node, bool):
            return node
        if personal:
            return replacement
        return _EMAIL_RE.sub(replacement, node) if isinstance(node, str) else node

    return walk(doc, False)


def mask_text(text: str | None, replacement: str) -> str | None:
    """`text` with every email replaced (free text cannot be parsed for names or addresses)."""
    return None if text is None else _EMAIL_RE.sub(replacement, text)


def decode_document(data: bytes | None) -> Any:
    """JSON bytes as a document; other bytes as text with undecodable bytes replaced. Never
    raises: stored raw orders may be exactly the malformed input that got them dead-lettered."""
    if data is None:
        return None
    try:
        return json.loads(data)
    except ValueError:
        return data.decode("utf-8", errors="replace")


def scrub_bytes(data: bytes | None, replacement: str) -> bytes | None:
    """`scrub_personal_data` on JSON bytes; non-JSON bytes get their emails replaced. The JSON
    is re-serialised: values are kept, spacing and the spelling of numbers may change."""
    doc = decode_document(data)
    if doc is None:
        return None
    if isinstance(doc, str) and not _is_json_string(data):
        return _EMAIL_RE.sub(replacement, doc).encode()
    return json.dumps(scrub_personal_data(doc, replacement), ensure_ascii=False).encode()


def _is_json_string(data: bytes | None) -> bool:
    return data is not None and data.strip().startswith(b'"')


def hide_secrets(node: Any, secrets: Sequence[str], replacement: str) -> Any:
    """A copy of a JSON-ready structure with every occurrence of each non-empty secret replaced
    in every string (keys included), so a secret echoed in a response excerpt never shows."""
    hidden = [s for s in secrets if s]

    def hide(text: str) -> str:
        for secret in hidden:
            text = text.replace(secret, replacement)
        return text

    return _map_strings(node, hide) if hidden else node


def _map_strings(node: Any, fn: Callable[[str], str]) -> Any:
    if isinstance(node, dict):
        return {fn(str(k)): _map_strings(v, fn) for k, v in node.items()}
    if isinstance(node, list):
        return [_map_strings(v, fn) for v in node]
    return fn(node) if isinstance(node, str) else node
