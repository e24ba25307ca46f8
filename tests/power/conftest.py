"""Fixtures of these tests: the simulated analyzer as a peer on a real TCP port."""

from tests.analyzer_peer import line, loop, serve, visa  # noqa: F401 (fixtures)
