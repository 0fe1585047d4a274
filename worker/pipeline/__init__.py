"""The pipeline services: processor, canceller, reconciler, pump and sweeper, replayer.

Import rule (import-linter, pyproject.toml): `worker.core` and `worker.pipeline` only. The stores
and the Jetti client reach a service through the ports in `worker.pipeline.ports`; `worker.runtime`
wires the concrete ones in.
"""
