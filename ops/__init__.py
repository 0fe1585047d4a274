"""Operator tooling: the `jetti-relay` command, the Jetti sandbox, metrics, benchmark and demo."""
