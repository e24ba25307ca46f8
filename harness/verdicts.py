"""Exceptions that decide a conformance verdict other than pass, fail or error.

A test fails when the DUT broke a rule (an AssertionError); any other exception is an error of
the harness or the rig. These two say something else, and any layer may raise them:

- :class:`Inconclusive`: the case ran but could not decide (verdict ``inconc``);
- :class:`NotApplicable`: what the case checks does not exist on this DUT, as the DUT itself
  said (a protocol its supportedAppProtocolRes does not offer): verdict ``skip`` with the reason;
- :class:`HarnessFailure`: the harness failed between its own parts (verdict ``error``), so a
  slow host never reads as a charger's failure;
- :class:`DutFailure`: the DUT broke a rule outside a test's own assert (verdict ``fail``);
- :class:`RigNotReady`: the rig, or the DUT's connection to it, is not there (the charger never
  connected, the rig failed to come up). The case's verdict is ``error`` with the cause, and the
  run stops there: the cases after it are ``not run`` with the same reason, instead of each
  waiting out the same timeout.
"""

from __future__ import annotations


class Inconclusive(Exception):
    """Raised by a test that could not decide (the verdict becomes ``inconc``)."""


class NotApplicable(Exception):
    """What the case checks is not offered by the DUT (the verdict becomes ``skip``)."""


class DutFailure(AssertionError):
    """The DUT broke a rule the harness checks outside a test's own assert (a CALL it did not
    answer in time, an answer its schema forbids): the verdict is ``fail``, with these words."""


class HarnessFailure(Exception):
    """A part of the harness failed where the DUT was not involved (two of the harness's own parts
    did not get along, e.g. on a loaded host): the verdict is ``error`` with the cause."""


class RigNotReady(Exception):
    """The rig or the DUT's link to it is missing; nothing after this case can run."""


def inconclusive(reason: str) -> None:
    raise Inconclusive(reason)
