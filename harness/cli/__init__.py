"""The ``harness`` command line.

Each sub-command lives in its own module of this package with a ``register(subparsers)``
function; heavy imports happen inside the command, so ``harness --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from harness import __version__

#: the sub-command modules, in the order ``harness --help`` lists them
COMMANDS = ("run", "rig", "report", "trace", "csms", "exi", "certs", "slac", "ev", "evse", "meter")


#: control characters (C0, DEL, C1) and the Unicode line and paragraph separators
_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))} | {
    0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t", 0x2028: "\\u2028", 0x2029: "\\u2029"}


def shown(text: object) -> str:
    """``text`` made safe for one terminal line: what a peer put in a station id, a frame or a
    summary cannot start a line of its own, move the cursor or recolour the console, because
    every control character is printed escaped (CR as \\r, ESC as \\x1b)."""
    return str(text).translate(_CONTROL)


class UsageError(Exception):
    """A problem with what the user asked for; printed without a traceback, exit status 2."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="harness",
        description="EV charging interoperability test harness (ISO 15118, OCPP, SLAC, VISA).",
    )
    parser.add_argument("--version", action="version", version=f"harness {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"harness.cli.{name}").register(commands)
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "accepts_extra", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return int(args.handler(args, extra) or 0)
    except UsageError as exc:
        print(f"harness {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"harness {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`harness trace show ... | head`): nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
