"""The process harness shared by the demo, the benchmark, the chaos suite and the tests."""
