"""Instrument faults give errors that name the instrument and the command: no answer, garbage,
a dropped connection, entries in the error queue."""

from __future__ import annotations

import pytest

from harness.power.analyzer import InstrumentError, Wiring
from harness.power.yokogawa import YokogawaWt


def _wt(server, timeout: float = 0.5) -> YokogawaWt:
    wt = YokogawaWt(server.resource, timeout=timeout)
    wt.configure(Wiring.AC3)
    return wt


def test_no_answer_is_a_timeout_naming_instrument_and_command(serve):
    server = serve("wt")
    with _wt(server) as wt:
        server.fault = "silent"
        with pytest.raises(InstrumentError) as error:
            wt.read()
    assert str(error.value) == (f"power analyzer yokogawa-wt1800 at {server.resource} on ':NUMeric:NORMal:VALue?': "
                                "no answer within 0.5 s")
    assert error.value.command == ":NUMeric:NORMal:VALue?" and not isinstance(error.value, AssertionError)


def test_garbage_reply(serve):
    server = serve("wt")
    with _wt(server) as wt:
        server.fault = "garbage"
        with pytest.raises(InstrumentError, match=r"on ':NUMeric:NORMal:VALue\?': (the reply is not text|reply .* is not a list)"):
            wt.read()


def test_dropped_connection(serve, loop):
    server = serve("wt")
    with _wt(server) as wt:
        assert loop.run(server.drop_connections(), timeout=5) == 1
        with pytest.raises(InstrumentError, match=r"on ':NUMeric:NORMal:VALue\?': (connection lost|no answer)"):
            wt.read()


def test_nobody_listening(serve):
    with pytest.raises(InstrumentError, match=r"TCPIP::127.0.0.1::1::SOCKET.*connection lost|cannot open"):
        YokogawaWt("TCPIP::127.0.0.1::1::SOCKET", timeout=0.5).identify()


def test_error_queue_entries_after_configuring(serve):
    server = serve("wt", model="yokogawa-wt3000")
    wt = YokogawaWt(server.resource, model="yokogawa-wt1800", timeout=1.0)  # wrong model in the rig file
    with pytest.raises(InstrumentError, match=r"ITEM11 WPP,SIGMA.*141 \"Invalid character data; function 'WPP'\""):
        wt.configure(Wiring.AC3)
    wt.close()
