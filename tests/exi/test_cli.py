"""``harness exi decode`` and ``harness exi encode``."""

from __future__ import annotations

import io
import json
import sys

import pytest

from harness.cli import main
from tests.exi.testdata import load_annex_j2, load_vectors

VECTORS = load_vectors()
SESSION_SETUP = next(v for v in VECTORS if v["message"] == "SessionSetupReq" and
                     v["schema"] == "iso2")
AUTHORIZATION = load_annex_j2()["authorization_req_fragment"]


def run(capsys, *argv, stdin: bytes | None = None, monkeypatch=None):
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_decode_hex_argument_prints_json(capsys):
    status, out, err = run(capsys, "exi", "decode", "--schema", "iso2", SESSION_SETUP["hex"])
    assert (status, err) == (0, "")
    assert json.loads(out) == SESSION_SETUP["json"]


def test_decode_fragment_as_xml(capsys):
    status, out, _ = run(capsys, "exi", "decode", "--schema", "iso2", "--fragment", "--xml",
                         AUTHORIZATION["hex"])
    assert status == 0
    assert out == ('<v2gci_b:AuthorizationReq xmlns:v2gci_b="urn:iso:15118:2:2013:MsgBody" '
                   'v2gci_b:Id="ID1">\n'
                   '  <v2gci_b:GenChallenge>U29tZSBSYW5kb20gRGF0YQ==</v2gci_b:GenChallenge>\n'
                   '</v2gci_b:AuthorizationReq>\n')


@pytest.mark.parametrize("content", ["hex", "binary"])
def test_decode_reads_a_file_of_hex_or_bytes(capsys, tmp_path, content):
    data = bytes.fromhex(SESSION_SETUP["hex"])
    path = tmp_path / "message.exi"
    path.write_bytes(data if content == "binary" else data.hex().encode() + b"\n")
    status, out, _ = run(capsys, "exi", "decode", "--schema", "iso2", str(path))
    assert status == 0
    assert json.loads(out) == SESSION_SETUP["json"]


def test_decode_reads_stdin(capsys, monkeypatch):
    status, out, _ = run(capsys, "exi", "decode", "--schema", "iso2", "-",
                         stdin=SESSION_SETUP["hex"].encode(), monkeypatch=monkeypatch)
    assert status == 0
    assert json.loads(out) == SESSION_SETUP["json"]


def test_encode_json_argument_prints_uppercase_hex(capsys):
    status, out, _ = run(capsys, "exi", "encode", "--schema", "iso2",
                         json.dumps(SESSION_SETUP["json"]))
    assert (status, out) == (0, SESSION_SETUP["hex"].upper() + "\n")


def test_encode_reads_a_json_file_and_stdin(capsys, tmp_path, monkeypatch):
    path = tmp_path / "fragment.json"
    path.write_text(json.dumps(AUTHORIZATION["content"]))
    status, out, _ = run(capsys, "exi", "encode", "--schema", "iso2", "--fragment", str(path))
    assert (status, out) == (0, AUTHORIZATION["hex"].upper() + "\n")
    status, out, _ = run(capsys, "exi", "encode", "--schema", "iso2", "--fragment", "-",
                         stdin=path.read_bytes(), monkeypatch=monkeypatch)
    assert (status, out) == (0, AUTHORIZATION["hex"].upper() + "\n")


def test_decode_error_is_one_line_with_status_1(capsys):
    status, out, err = run(capsys, "exi", "decode", "--schema", "iso2", SESSION_SETUP["hex"][:20])
    assert (status, out) == (1, "")
    assert err.count("\n") == 1
    assert err.startswith("harness exi decode: bit ")
    assert "Traceback" not in err


def test_encode_error_names_the_path(capsys):
    message = json.loads(json.dumps(SESSION_SETUP["json"]))
    message["V2G_Message"]["Header"]["SessionID"] = "XYZ"
    status, out, err = run(capsys, "exi", "encode", "--schema", "iso2", json.dumps(message))
    assert (status, out) == (1, "")
    assert err == ("harness exi encode: V2G_Message.Header.SessionID: not valid hex "
                   "(sessionIDType): 'XYZ'\n")


def test_encode_unchecked_writes_violations(capsys):
    message = {"supportedAppProtocolRes": {"ResponseCode": "OK_Maybe", "SchemaID": 1}}
    status, out, err = run(capsys, "exi", "encode", "--schema", "sap", "--unchecked",
                           json.dumps(message))
    assert (status, err) == (0, "")
    status, decoded, _ = run(capsys, "exi", "decode", "--schema", "sap", out.strip())
    assert json.loads(decoded) == message


@pytest.mark.parametrize("argv, reason", [
    (["decode", "--schema", "iso2", "not-hex"], "'not-hex' is neither hex nor an existing file"),
    (["decode", "--schema", "iso2", "809"], "odd number of digits"),
    (["encode", "--schema", "iso2", "{nope"], "the argument is not JSON"),
])
def test_usage_errors_have_status_2(capsys, argv, reason):
    status, out, err = run(capsys, "exi", *argv)
    assert (status, out) == (2, "")
    assert err.startswith("harness exi: ") and reason in err


def test_unknown_schema_is_rejected_by_the_parser(capsys):
    with pytest.raises(SystemExit) as caught:
        main(["exi", "decode", "--schema", "iso3", "80"])
    assert caught.value.code == 2
