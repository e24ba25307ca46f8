"""SCPI program messages as an instrument parses them (SCPI-99 Vol. 1 §6, IEEE 488.2 §7)."""

from __future__ import annotations

import pytest

from harness.power.scpi import (
    ScpiSyntaxError,
    canonical_state,
    compile_pattern,
    keyword,
    match_path,
    parse_message,
    split_units,
)


def test_compound_message_headers_are_relative_to_the_previous_path():
    units = parse_message(":NUM:NORM:ITEM1 U,1;ITEM2 I,1;*CLS;ITEM3 P,SIGMA;:INTEG:STAT?")
    assert [u.path for u in units] == [("NUM", "NORM", "ITEM1"), ("NUM", "NORM", "ITEM2"), ("*CLS",),
                                       ("NUM", "NORM", "ITEM3"), ("INTEG", "STAT")]
    assert units[0].arguments == ("U", "1") and units[-1].query and not units[2].query


def test_quoted_strings_keep_their_separators():
    assert split_units(':SYST:DATE "05;01,01";*IDN?') == [':SYST:DATE "05;01,01"', "*IDN?"]
    with pytest.raises(ScpiSyntaxError):
        split_units(':SYST:DATE "unterminated')


@pytest.mark.parametrize("header", [":NUMERIC:NORMAL:VALUE?", ":num:norm:val?", ":Numeric:Value?", "NUM:VAL?"])
def test_long_and_short_forms_in_any_case_with_optional_nodes(header):
    nodes = compile_pattern(":NUMeric[:NORMal]:VALue")
    assert match_path(nodes, parse_message(header)[0].path) == []


def test_half_forms_and_numeric_suffixes():
    nodes = compile_pattern(":NUMeric[:NORMal]:ITEM<n>")
    assert match_path(nodes, ("NUM", "ITEM12")) == [12]
    assert match_path(nodes, ("NUMERIC", "NORMAL", "ITEM")) == [1]
    assert match_path(nodes, ("NUME", "ITEM1")) is None  # neither the long nor the short form


def test_not_a_header_is_a_syntax_error():
    with pytest.raises(ScpiSyntaxError):
        parse_message(":NUM::VAL?")


def test_keywords_and_states_in_either_form():
    assert keyword("norm", "NORMal", "CONTinuous") == "NORMal"
    assert keyword("CONTINUOUS", "NORMal", "CONTinuous") == "CONTinuous"
    assert keyword("CONTIN", "NORMal", "CONTinuous") is None
    assert canonical_state("TIM", ("RESet", "STARt", "TIMeup")) == "TIMeup"
