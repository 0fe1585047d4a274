"""The settle operations' old home: `SettleLedger` is `Ledger` now (worker/store/ledger.py).

The confirm, reject, repair and cancel operations are methods of `Ledger` (ledger_settle.py);
this name stays until its importers (worker/pipeline/reconciler.py, canceller.py) name `Ledger`.
"""

from __future__ import annotations

from worker.store.ledger import Ledger

SettleLedger = Ledger

__all__ = ["SettleLedger"]
