"""Chaos suite: the real pipeline under crashes, outages and bad input, then the books checked.

`cluster` runs the processes (a private redis-server with AOF, the sandbox, `jetti-relay worker`s),
`books` checks that every accepted order is in Jetti with its latest version or dead-lettered with
a reason, `scenarios` breaks things, `cli` is `jetti-relay chaos`. The tests in tests/chaos/ run
the same scenarios at a small scale.
"""
