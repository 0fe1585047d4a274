"""The sync-API throttles' old home: `ApiThrottle` lives in worker/store/rate_limit.py now.

It is the fleet limiter's bucket under per-kind keys, so it sits with the limiter; this name
stays until its importers (worker/pipeline/reconciler.py, canceller.py) import it from there.
"""

from __future__ import annotations

from worker.store.rate_limit import ApiThrottle

__all__ = ["ApiThrottle"]
