"""The harness's pytest plugin (registered as the ``harness`` pytest11 entry point)."""
