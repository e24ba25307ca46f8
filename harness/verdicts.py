"""Exceptions that decide a conformance verdict other than pass, fail or error.

A test fails when the DUT broke a rule (an AssertionError); any other exception is an error of
the harness or the rig. These two say something else, and any layer may raise them:

- :class:`Inconclusive`: the case ran but could not decide (verdict ``inconc``);
- :class:`NotApplicable`: what the case checks does not exist on this DUT, as the DUT itself
  said (a protocol its supportedAppProtocolRes does not offer): verdict ``skip`` with the reason.
"""

from __future__ import annotations


class Inconclusive(Exception):
    """Raised by a test that could not decide (the verdict becomes ``inconc``)."""


class NotApplicable(Exception):
    """What the case checks is not offered by the DUT (the verdict becomes ``skip``)."""


def inconclusive(reason: str) -> None:
    raise Inconclusive(reason)
