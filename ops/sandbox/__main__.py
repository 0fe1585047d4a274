"""`python -m ops.sandbox`: the same command as `jetti-relay sandbox`."""

from ops.sandbox.cli import sandbox

if __name__ == "__main__":
    sandbox()
