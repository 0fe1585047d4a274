"""The jetti-relay worker: contract, transform, Jetti client and the Celery pipeline."""
