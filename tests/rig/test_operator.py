"""The hands at a lab bench: a person asked on a terminal, a command run per action, or nobody."""

from __future__ import annotations

import os
import sys

import pytest

from harness.rig.operator import (
    CommandOperator,
    Operator,
    OperatorConfig,
    OperatorFailed,
    OperatorUnavailable,
    PromptOperator,
    operator_for,
)
from harness.trace import Recorder


def _terminal(answer: str | None):
    """A fake terminal: what the person types (None: nothing), and what the harness wrote."""
    written: list[str] = []

    def open_terminal():
        read_end, write_end = os.pipe()
        if answer is not None:
            os.write(write_end, answer.encode())
        reader = os.fdopen(read_end)

        class Screen:
            def write(self, text):
                written.append(text)

            def flush(self):
                pass

            def close(self):
                os.close(write_end)

        return reader, Screen()

    return open_terminal, written


def test_a_person_is_asked_and_confirms_with_enter():
    recorder = Recorder()
    terminal, written = _terminal("\n")
    operator = PromptOperator(OperatorConfig("prompt", timeout=2), recorder, "CP-1", terminal=terminal)
    operator.perform("present_token", token="04A1B2C3")
    assert "OPERATOR: present the RFID token 04A1B2C3 at CP-1 (connector 1)" in "".join(written)
    assert [e.name for e in recorder.select(layer="rig")] == ["OperatorAction", "OperatorDone"]


def test_a_person_can_say_it_cannot_be_done():
    terminal, _ = _terminal("s\n")
    operator = PromptOperator(OperatorConfig("prompt", timeout=2), Recorder(), "CP-1", terminal=terminal)
    with pytest.raises(OperatorUnavailable, match="could not plug the EV"):
        operator.perform("plug_in")


def test_nobody_answering_is_an_error_of_the_rig():
    terminal, _ = _terminal(None)
    operator = PromptOperator(OperatorConfig("prompt", timeout=0.2), Recorder(), "CP-1", terminal=terminal)
    with pytest.raises(OperatorFailed, match="nobody confirmed within 0.2 s"):
        operator.perform("unplug")


def test_without_a_terminal_the_case_cannot_ask_anyone():
    def no_terminal():
        raise OSError("no controlling terminal")

    operator = PromptOperator(OperatorConfig("prompt"), Recorder(), "CP-1", terminal=no_terminal)
    with pytest.raises(OperatorUnavailable, match="no terminal to ask on"):
        operator.perform("plug_in")


def test_a_command_runs_with_the_details_filled_in(tmp_path):
    log = tmp_path / "actions.log"
    config = OperatorConfig("command", {"present_token": f"echo {{station_id}} {{connector}} {{token}} >> {log}",
                                        "plug_in": f"{sys.executable} -c 'import sys; print(\"jammed\"); sys.exit(3)'"})
    operator = operator_for(config, Recorder(), "CP 7")
    assert isinstance(operator, CommandOperator) and operator.can("present_token") and not operator.can("unplug")
    operator.perform("present_token", connector=2, token="TAG; rm -rf /")  # quoted: a token is data
    assert log.read_text() == "CP 7 2 TAG; rm -rf /\n"
    with pytest.raises(OperatorFailed, match="exited with 3.*jammed"):
        operator.perform("plug_in")
    with pytest.raises(OperatorUnavailable, match="operator.unplug is not set"):
        operator.perform("unplug")


def test_no_operator_says_how_to_get_one():
    operator = operator_for(OperatorConfig(), Recorder(), "CP-1")
    assert type(operator) is Operator and not operator.can("plug_in")
    with pytest.raises(OperatorUnavailable, match="operator.kind: prompt"):
        operator.perform("plug_in")


def test_an_ev_under_tests_plug_in_gets_the_cases_wishes_each_one_shell_word(tmp_path):
    log = tmp_path / "plug.log"
    config = OperatorConfig("command", {"plug_in": f"printf '%s|' {{protocol}} {{ev_netns}} {{tls}} {{harness}} > {log}"})
    operator = operator_for(config, Recorder(), "CP-1")
    operator.perform("plug_in", fields={"protocol": "iso2; reboot", "ev_netns": "", "tls": "yes",
                                        "harness": "python3 -m harness"})
    # a wish is data, one word however it is spelt; an empty field is no word; {harness} is a command line
    assert log.read_text() == "iso2; reboot|yes|python3|-m|harness|"
