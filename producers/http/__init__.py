"""The HTTP intake (`jetti-relay intake --http`): hand orders over from any language by HTTP.

`POST /v1/orders` takes one order (application/json) or a batch (application/x-ndjson) and
answers only once the ledger holds them, through the producer library's one path
(`producers.enqueue.enqueue_candidates`), grouped across concurrent requests by one writer
thread. `GET /v1/orders/{key}` says where an order is; `/health` and `/openapi.json` need no
credential. Starlette under uvicorn; needs the `intake` extra. docs/intake.md is the guide.

Modules: `server` (Settings -> objects, uvicorn), `app` (routes), `auth` (credentials),
`body` (media types, size cap, NDJSON cutting), `writer` (group commit, memory guard),
`lookup` (order status), `access` (request id, access log), `openapi` (the document).

    from producers.http import serve_http, start_http_intake
    serve_http(settings, host="127.0.0.1", port=8090)      # blocks until SIGTERM/SIGINT
    running = start_http_intake(settings, port=8090)       # background thread; running.stop()
"""

from producers.http.auth import IntakeConfigError
from producers.http.server import (
    RunningIntake,
    build_http_app,
    check_http_settings,
    serve_app,
    serve_http,
    start_http_intake,
)

__all__ = [
    "IntakeConfigError",
    "RunningIntake",
    "build_http_app",
    "check_http_settings",
    "serve_app",
    "serve_http",
    "start_http_intake",
]
