"""EV charging interoperability test harness.

Subpackages, one per layer: ``trace`` (the timeline), ``rig`` (rig files and their lifecycle),
``ocpp`` (mock CSMS and station client), ``pki`` (certificates), ``emulators`` (reference EVSE
and EV), ``report`` (conformance reports), ``cli`` (the ``harness`` command) and ``plugin``
(the pytest plugin).
"""

from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("evcharge-harness")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
