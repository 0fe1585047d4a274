"""The benchmark: `jetti-relay bench` and its subcommands."""
