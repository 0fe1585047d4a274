"""A local Jetti (Onport) for tests, the demo and the benchmark, with fault injection.

It never imports `worker`: it validates what arrives on its own, as Jetti would, so it can catch
the worker's mistakes. Entry points: `jetti-relay sandbox` and `python -m ops.sandbox`.
"""
