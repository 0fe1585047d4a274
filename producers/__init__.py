"""Producers: validate raw orders at the edge and enqueue them for the worker."""
