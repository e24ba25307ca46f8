"""``python -m harness``: the ``harness`` command, for places that have the interpreter but not the
script on their PATH (an operator command run in another network namespace)."""

from harness.cli import main

raise SystemExit(main())
