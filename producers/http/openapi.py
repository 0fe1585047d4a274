"""The HTTP intake's OpenAPI 3.1 document, written here rather than derived from the routes.

The order body is the raw-order contract itself: the JSON Schema `jetti-relay schema` prints
(`RawOrder.model_json_schema()`), its definitions hoisted into `components/schemas` so every
`$ref` resolves inside this one document. The rest states the intake's answers; tests check the
document against what the server answers.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from producers.http.writer import OUTCOMES, REPLICATION_UNCONFIRMED
from worker.core.contract import RawOrder
from worker.core.states import OrderState

SCHEMAS = "#/components/schemas/"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": SCHEMAS + name}


def _json(name: str, description: str, **extra: Any) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": _ref(name)}},
        **extra,
    }


_REQUEST_ID = {
    "X-Request-Id": {
        "description": "The request id (the sender's X-Request-Id when usable, else generated).",
        "schema": {"type": "string"},
    }
}
_RETRY_AFTER = {
    **_REQUEST_ID,
    "Retry-After": {"description": "Seconds to wait before sending again.", "schema": {}},
}
_UNAUTHORIZED = _json(
    "Error",
    "No valid credential (a bearer token or an X-Jetti-Relay-Signature).",
    headers={
        **_REQUEST_ID,
        "WWW-Authenticate": {"schema": {"type": "string"}},
    },
)
_UNAVAILABLE = _json(
    "Error",
    "Redis is unreachable, refused the write, or is near its memory limit: nothing was "
    "acknowledged; send again after Retry-After seconds.",
    headers=_RETRY_AFTER,
)
_NOT_TAKEN = _json(
    "Error",
    "Nothing was acknowledged: send the same request again after Retry-After seconds (it is "
    "idempotent). Redis is unreachable, refused the write (a primary with too few replicas in "
    "sync for its min-replicas-to-write refuses them all), or is near its memory limit; or, "
    f"with `error` `{REPLICATION_UNCONFIRMED}` and a `detail`, the orders are recorded on the "
    "Redis primary but fewer replicas than JETTI_RELAY_MIN_REPLICAS_ACK confirmed them in time, "
    "so a failover could still lose them.",
    headers=_RETRY_AFTER,
)


def _own_schemas() -> dict[str, Any]:
    outcomes = list(OUTCOMES)
    text = {"type": "string"}
    maybe_text = {"type": ["string", "null"]}
    when = {"type": ["string", "null"], "format": "date-time"}
    return {
        "FieldProblem": {
            "type": "object",
            "required": ["path", "message"],
            "properties": {"path": text, "message": text},
        },
        "OrderOutcome": {
            "type": "object",
            "required": ["position", "key", "outcome"],
            "properties": {
                "position": {
                    "type": "integer",
                    "description": "1 for a JSON body; the line number in an NDJSON body.",
                },
                "key": {
                    **maybe_text,
                    "description": "The order key (id prefix + id); null without a readable id.",
                },
                "outcome": {"type": "string", "enum": outcomes},
                "problems": {
                    "type": "array",
                    "items": _ref("FieldProblem"),
                    "description": "Every problem of a rejected order, with its field path.",
                },
            },
        },
        "IntakeResult": {
            "type": "object",
            "required": ["request_id", "counts", "orders"],
            "properties": {
                "request_id": text,
                "error": {**text, "description": "Only on 400: why nothing was taken."},
                "counts": {
                    "type": "object",
                    "required": outcomes,
                    "properties": {o: {"type": "integer"} for o in outcomes},
                },
                "orders": {"type": "array", "items": _ref("OrderOutcome")},
            },
        },
        "Error": {
            "type": "object",
            "required": ["request_id", "error"],
            "properties": {
                "request_id": text,
                "error": {
                    **text,
                    "description": "What went wrong, in words; on a 503 of POST, the code "
                    f"`{REPLICATION_UNCONFIRMED}` when the orders await their replicas.",
                },
                "detail": {**text, "description": f"With `{REPLICATION_UNCONFIRMED}`: why."},
            },
        },
        "OrderStatus": {
            "type": "object",
            "required": ["request_id", "key", "state"],
            "properties": {
                "request_id": text,
                "key": text,
                "state": {"type": "string", "enum": [s.value for s in OrderState]},
                "state_since": when,
                "attempts": {"type": "integer"},
                "sale_id": {"type": ["integer", "null"]},
                "dead_reason": maybe_text,
                "source": maybe_text,
                "updated_at": when,
                "first_seen_at": when,
                "enqueued_at": when,
                "submitted_at": when,
                "next_attempt_at": when,
            },
        },
        "Health": {
            "type": "object",
            "required": ["status", "redis", "writer"],
            "properties": {
                "request_id": text,
                "status": {"type": "string", "enum": ["ok", "unavailable"]},
                "redis": {"type": "string", "enum": ["ok", "unreachable"]},
                "writer": {"type": "string", "enum": ["running", "stopped"]},
            },
        },
    }


def _paths() -> dict[str, Any]:
    secured: list[dict[str, list[str]]] = [{"bearer": []}, {"signature": []}]
    return {
        "/v1/orders": {
            "post": {
                "operationId": "postOrders",
                "summary": "Hand over one order (JSON) or a batch (NDJSON).",
                "description": "Answers only once the ledger holds every valid order. "
                "`source` and `id_prefix` may be set as query parameters with the "
                "deployment's own credential only; a per-source credential sets them itself.",
                "security": secured,
                "parameters": [
                    {"name": n, "in": "query", "required": False, "schema": {"type": "string"}}
                    for n in ("source", "id_prefix")
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": _ref("RawOrder")},
                        "application/x-ndjson": {
                            "schema": {"type": "string"},
                            "description": "One RawOrder JSON object per line.",
                        },
                    },
                },
                "responses": {
                    "202": _json(
                        "IntakeResult", "Recorded: each order's outcome.", headers=_REQUEST_ID
                    ),
                    "400": _json(
                        "IntakeResult",
                        "No valid order in the request (each one's problems listed), or no "
                        "order at all.",
                    ),
                    "401": _UNAUTHORIZED,
                    "403": _json("Error", "A per-source credential tried to set source/id_prefix."),
                    "413": _json("Error", "The body is over the intake's size limit."),
                    "415": _json("Error", "Not application/json nor application/x-ndjson."),
                    "503": _NOT_TAKEN,
                },
            }
        },
        "/v1/orders/{key}": {
            "get": {
                "operationId": "getOrder",
                "summary": "Where an order is (no personal data).",
                "security": secured,
                "parameters": [
                    {
                        "name": "key",
                        "in": "path",
                        "required": True,
                        "description": "The order key, URL-encoded.",
                        "schema": {"type": "string"},
                    }
                ],
                "responses": {
                    "200": _json("OrderStatus", "The order's status.", headers=_REQUEST_ID),
                    "401": _UNAUTHORIZED,
                    "404": _json("Error", "No such order (or not one this credential may read)."),
                    "503": _UNAVAILABLE,
                },
            }
        },
        "/health": {
            "get": {
                "operationId": "health",
                "summary": "Whether the intake can take orders (Redis answers). No credential.",
                "security": [],
                "responses": {
                    "200": _json("Health", "Ready."),
                    "503": _json("Health", "Redis unreachable or the writer stopped."),
                },
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document. No credential.",
                "security": [],
                "responses": {"200": {"description": "The OpenAPI 3.1 document."}},
            }
        },
    }


def openapi_document() -> dict[str, Any]:
    """The whole OpenAPI 3.1 document of the HTTP intake (JSON-ready)."""
    contract = RawOrder.model_json_schema(ref_template=SCHEMAS + "{model}")
    definitions = contract.pop("$defs", {})
    schemas = _own_schemas()
    clash = set(definitions) & set(schemas) | ({"RawOrder"} & set(schemas))
    if clash:  # the contract grew a model named like one of ours: rename ours
        raise RuntimeError(f"schema names used twice in the OpenAPI document: {sorted(clash)}")
    try:
        relay_version = version("jetti-relay")
    except PackageNotFoundError:
        relay_version = "unknown"
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "jetti-relay HTTP intake",
            "version": relay_version,
            "description": "Hand raw orders to jetti-relay from any language (docs/intake.md).",
        },
        "paths": _paths(),
        "components": {
            "schemas": {"RawOrder": contract, **definitions, **schemas},
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "signature": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-Jetti-Relay-Signature",
                    "description": "sha256=<hex>: HMAC-SHA256 of the raw body (for a GET: of "
                    "the request target, path and query as sent) with the HMAC secret.",
                },
            },
        },
    }
