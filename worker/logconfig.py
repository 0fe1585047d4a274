"""Logging: structlog configured once per process, stdlib (Celery's loggers too) routed through it.

Every event, ours or a foreign stdlib record, passes the same chain: context variables, level,
ISO UTC timestamp, redaction, then the JSON or console renderer, written to stderr. Redaction
masks registered secrets anywhere in string fields and replaces personal data (emails, phones,
names, addresses) with "***", so a log line can be shipped anywhere (STYLE.md 9).
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterable, MutableMapping
from typing import Any

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from worker.core.privacy import hide_secrets, scrub_personal_data

# What a redacted value becomes.
MASK = "***"
# Normalised keys (lower case, no "_" or "-") that privacy.scrub_personal_data does not cover
# itself but that hold address lines wherever they appear.
_EXTRA_PERSONAL_KEYS = frozenset({"line1", "line2"})

_secrets: set[str] = set()
_secrets_lock = threading.Lock()
_configured: tuple[str, str] | None = None
_configure_lock = threading.Lock()


class _RelayHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The one root handler this module installs; its class marks it for replacement."""


def register_secrets(*values: str) -> None:
    """Mask each non-empty value wherever it appears in a string field of any later event."""
    with _secrets_lock:
        _secrets.update(v for v in values if v)


def _mask_extra_keys(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            k: MASK
            if isinstance(k, str) and _norm(k) in _EXTRA_PERSONAL_KEYS and v is not None
            else _mask_extra_keys(v)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_mask_extra_keys(v) for v in node]
    return node


def _norm(key: str) -> str:
    return key.lower().replace("_", "").replace("-", "")


def redact(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """Processor: personal data -> "***" by key (nested too), registered secrets masked."""
    scrubbed = scrub_personal_data(_mask_extra_keys(dict(event_dict)), MASK)
    with _secrets_lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    result: MutableMapping[str, Any] = hide_secrets(scrubbed, secrets, MASK)
    return result


def _renderer(fmt: str) -> Processor:
    if fmt == "console":
        # structlog's default formatter is rich's with show_locals=True: every frame's locals
        # (an Authorization header, an order's raw body) would be printed (reliability #6).
        return structlog.dev.ConsoleRenderer(
            colors=False, exception_formatter=structlog.dev.plain_traceback
        )
    return structlog.processors.JSONRenderer()


def configure_logging(fmt: str, level: str, *, secrets: Iterable[str]) -> None:
    """Configure structlog and the stdlib root logger for this process; later calls with the
    same arguments do nothing. `fmt` is "json" or "console"; `level` a stdlib level name.

    `secrets` (the caller passes `settings.secret_values`: the webhook hash and API token) are
    registered for masking before the first line is logged. The settings are the caller's, never
    re-read here: a command run with overrides logs with what it runs with.
    """
    global _configured
    with _configure_lock:
        if _configured == (fmt, level):
            return
        register_secrets(*secrets)
        shared: list[Processor] = [
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
        ]
        formatter = structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                # Tracebacks become strings before redaction, so a secret in one is masked too.
                structlog.processors.format_exc_info,
                redact,
                _renderer(fmt),
            ],
        )
        handler = _RelayHandler(sys.stderr)
        handler.setFormatter(formatter)
        root = logging.getLogger()
        for old in [h for h in root.handlers if isinstance(h, _RelayHandler)]:
            root.removeHandler(old)
        root.addHandler(handler)
        root.setLevel(level.upper())
        structlog.configure(
            processors=[
                structlog.stdlib.filter_by_level,
                *shared,
                structlog.stdlib.PositionalArgumentsFormatter(),
                structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
            ],
            logger_factory=structlog.stdlib.LoggerFactory(),
            wrapper_class=structlog.stdlib.BoundLogger,
            cache_logger_on_first_use=True,
        )
        _configured = (fmt, level)


def reset_logging() -> None:
    """Undo `configure_logging`: remove the relay's handler, forget the configuration and the
    registered secrets and reset structlog, so the next call configures afresh (tests and
    embedded runners use this; a secret of an earlier configuration would otherwise keep
    masking its text, a short test token masking parts of words)."""
    global _configured
    with _configure_lock:
        with _secrets_lock:
            _secrets.clear()
        root = logging.getLogger()
        for handler in [h for h in root.handlers if isinstance(h, _RelayHandler)]:
            root.removeHandler(handler)
        structlog.reset_defaults()
        _configured = None
