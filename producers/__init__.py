"""Producers: validate raw orders at the edge and enqueue them for the worker."""

from producers.enqueue import EnqueueSummary, Rejection, enqueue

__all__ = ["EnqueueSummary", "Rejection", "enqueue"]
