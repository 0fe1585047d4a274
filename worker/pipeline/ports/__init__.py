"""The ports of the pipeline services: what a service needs of a store or of Jetti.

Each service in `worker.pipeline` takes its collaborators typed by these Protocols, never by the
concrete Redis or httpx classes, so it can be tested with the in-memory fakes in `tests/fakes.py`
(mypy checks them against these Protocols) and so the import rule holds: `worker.pipeline` imports
only `worker.core` and itself. `worker.runtime` passes the concrete stores and client in.
`delivery` holds the processor's and the canceller's ports, `jobs` the job runner's, `upkeep` the
others'.
"""

from worker.core.ports import KeyPublisher
from worker.pipeline.ports.delivery import (
    Admission,
    BatchLedger,
    Breaker,
    Cancellations,
    CancelLedger,
    DeadLetterStore,
    JettiCancels,
    JettiSubmit,
    LockTokens,
    StatsCounters,
    StatsTally,
    SubmitAnswer,
    TokenBucket,
    TokenSource,
)
from worker.pipeline.ports.jobs import JobBook, JobDeadLetters, JobLeases
from worker.pipeline.ports.upkeep import (
    AuditTrail,
    BatchPublisher,
    DeadLetterBook,
    ImportLogReader,
    MaintenanceLedger,
    ReadThrottle,
    ReconcileLedger,
    ReconcileStatePort,
    ReplayDeadLetters,
    ReplayLedger,
    RoleLeader,
)

__all__ = [
    "Admission",
    "AuditTrail",
    "BatchLedger",
    "BatchPublisher",
    "Breaker",
    "CancelLedger",
    "Cancellations",
    "DeadLetterBook",
    "DeadLetterStore",
    "ImportLogReader",
    "JettiCancels",
    "JettiSubmit",
    "JobBook",
    "JobDeadLetters",
    "JobLeases",
    "KeyPublisher",
    "LockTokens",
    "MaintenanceLedger",
    "ReadThrottle",
    "ReconcileLedger",
    "ReconcileStatePort",
    "ReplayDeadLetters",
    "ReplayLedger",
    "RoleLeader",
    "StatsCounters",
    "StatsTally",
    "SubmitAnswer",
    "TokenBucket",
    "TokenSource",
]
