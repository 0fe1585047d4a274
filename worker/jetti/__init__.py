"""The Jetti HTTP adapter: the one seam where HTTP answers become the core's results and errors.

Import rule (import-linter, pyproject.toml): `worker.core` and httpx only; `worker.wiring`
builds the httpx client it is given.
"""
