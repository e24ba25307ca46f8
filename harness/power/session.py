"""A message-based VISA session to one instrument, with errors that name instrument and command.

Real LAN instruments and the simulated analyzer are reached the same way: pyvisa with the
pyvisa-py backend (``@py``); tests of a driver's dialogue use pyvisa-sim (``@sim``). A raw socket
resource (``TCPIP::host::port::SOCKET``) has no message framing of its own, so read and write
terminations are set explicitly.
"""

from __future__ import annotations

import threading
from typing import Any

from harness.power.analyzer import InstrumentError

DEFAULT_TIMEOUT_S = 3.0


class ScpiSession:
    def __init__(self, resource: str, *, name: str, backend: str = "@py", timeout: float = DEFAULT_TIMEOUT_S,
                 write_termination: str = "\n", read_termination: str = "\n",
                 resource_manager: Any = None) -> None:
        self.resource = resource
        self.name = name
        self.timeout = timeout
        self._lock = threading.Lock()
        self._own_manager = resource_manager is None
        try:
            import pyvisa
            from pyvisa.resources import MessageBasedResource

            self._manager = resource_manager or pyvisa.ResourceManager(backend)
            instrument = self._manager.open_resource(
                resource, open_timeout=int(timeout * 1000), timeout=int(timeout * 1000),
                write_termination=write_termination, read_termination=read_termination)
        except Exception as exc:  # pyvisa raises many kinds; all mean "cannot reach it"
            raise InstrumentError(name, None, f"cannot open {resource}: {_reason(exc)}") from exc
        if not isinstance(instrument, MessageBasedResource):
            # open_resource returns whatever class the resource string names; SCPI needs one
            # that reads and writes messages (INSTR or SOCKET), not e.g. a raw register resource
            kind = type(instrument).__name__
            self._close_quietly(instrument)
            raise InstrumentError(name, None, f"{resource} is a {kind}, not a message-based VISA resource "
                                              "(use a ...::INSTR or ...::SOCKET resource)")
        self._instrument: MessageBasedResource = instrument
        self.closed = False

    def write(self, command: str) -> None:
        with self._lock:
            self._check_open(command)
            try:
                self._instrument.write(command)
            except Exception as exc:
                raise InstrumentError(self.name, command, _reason(exc, self.timeout)) from exc

    def query(self, command: str) -> str:
        """Send a query and return the reply without its termination; an empty reply is an error."""
        with self._lock:
            self._check_open(command)
            try:
                reply = self._instrument.query(command)
            except Exception as exc:
                raise InstrumentError(self.name, command, _reason(exc, self.timeout)) from exc
        reply = reply.strip()
        if not reply:
            raise InstrumentError(self.name, command, "empty reply")
        return reply

    def _check_open(self, command: str) -> None:
        if self.closed:
            raise InstrumentError(self.name, command, "the session is closed")

    def close(self) -> None:
        with self._lock:
            if self.closed:
                return
            self.closed = True
            self._close_quietly(self._instrument)

    def _close_quietly(self, instrument: Any) -> None:
        try:
            instrument.close()
        except Exception:  # already gone: nothing left to close
            pass
        if self._own_manager:
            try:
                self._manager.close()
            except Exception:
                pass


def _reason(exc: Exception, timeout: float | None = None) -> str:
    """A short human reason for a pyvisa or socket failure."""
    text = str(exc)
    name = type(exc).__name__
    if "TMO" in text or "Timeout" in text or isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g} s" if timeout else "timed out"
    if isinstance(exc, (ConnectionError, BrokenPipeError)) or "CONN_LOST" in text or "connection" in text.lower():
        return f"connection lost ({text or name})"
    if isinstance(exc, UnicodeDecodeError):
        return f"the reply is not text ({exc.reason})"
    return f"{name}: {text}" if text else name
