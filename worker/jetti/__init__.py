"""The Jetti HTTP adapter: the only package that imports httpx.

Import rule (import-linter, pyproject.toml): `worker.core` and httpx only.
"""
