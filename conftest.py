"""pytest entry point of the repository.

The harness's pytest plugin is registered as the ``harness`` pytest11 entry point of the installed
package, so nothing needs loading here; this file marks the repository root as pytest's rootdir.
"""
