"""The ports of the pipeline services: what a service needs of a store or of Jetti.

Each service in `worker.pipeline` takes its collaborators typed by these Protocols, never by the
concrete Redis or httpx classes, so it can be tested with the in-memory fakes in `tests/fakes.py`
(mypy checks them against these Protocols) and so the import rule holds: `worker.pipeline` imports
only `worker.core` and itself. `worker.runtime` passes the concrete stores and client in.
"""

from __future__ import annotations

from worker.core.ports import KeyPublisher

__all__ = ["KeyPublisher"]

# --- processor and canceller ports ---

# --- reconciler, replayer and maintenance ports ---
