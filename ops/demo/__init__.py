"""`jetti-relay demo`: the whole pipeline on embedded defaults, with its sample data."""
