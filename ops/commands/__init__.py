"""One module per top-level `jetti-relay` command (`ops.cli` loads them lazily)."""
