"""Producers: validate raw orders at the edge and enqueue them for the worker."""

from producers.enqueue import EnqueueInterrupted, EnqueueSummary, Ignored, Rejection, enqueue

__all__ = ["EnqueueInterrupted", "EnqueueSummary", "Ignored", "Rejection", "enqueue"]
