"""``harness exi``: decode EXI to JSON (or XML) and encode JSON to EXI.

    harness exi decode --schema S [--fragment] [--xml] HEX|FILE|-
    harness exi encode --schema S [--fragment] [--unchecked] JSON|FILE|-

The input is given on the command line, as a file, or on stdin (``-``). EXI input may be hex
text (whitespace allowed) or raw bytes; JSON input is the form the decoder prints.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from harness.cli import UsageError
from harness.exi import SCHEMAS  # light: the grammar tables load on first use

_HEX_TEXT = re.compile(rb"[0-9A-Fa-f\s]*")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "exi", help="decode and encode ISO 15118 / DIN 70121 EXI messages",
        description="Schema-informed EXI codec for DIN 70121, ISO 15118-2 and ISO 15118-20.")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    decode = actions.add_parser("decode", help="EXI -> JSON on stdout",
                                description="Decode an EXI stream and print its JSON form.")
    _common(decode)
    decode.add_argument("--xml", action="store_true", help="print XML instead of JSON")
    decode.add_argument("input", metavar="HEX|FILE|-",
                        help="hex text, a file with hex text or raw EXI bytes, or - for stdin")
    decode.set_defaults(handler=_decode)

    encode = actions.add_parser("encode", help="JSON -> EXI hex on stdout",
                                description="Encode a message in JSON form and print the EXI "
                                            "stream as uppercase hex.")
    _common(encode)
    encode.add_argument("--unchecked", action="store_true",
                        help="UNSAFE, for negative tests: encode schema violations (facets, "
                             "unknown enumeration values, missing required content) as far as "
                             "EXI can represent them instead of rejecting them")
    encode.add_argument("input", metavar="JSON|FILE|-",
                        help="a JSON text, a JSON file, or - for stdin")
    encode.set_defaults(handler=_encode)


def _common(parser) -> None:
    parser.add_argument("--schema", required=True, choices=SCHEMAS,
                        help="the schema: sap (supportedAppProtocol), din, iso2, iso20 (-20 "
                             "common messages), iso20-ac/-dc/-wpt/-acdp, xmldsig")
    parser.add_argument("--fragment", action="store_true",
                        help="an EXI fragment (what ISO 15118 signs) instead of a document")


def _read_input(argument: str) -> tuple[bytes, str]:
    """The raw input and where it came from."""
    if argument == "-":
        return sys.stdin.buffer.read(), "stdin"
    path = Path(argument)
    try:
        if path.is_file():
            return path.read_bytes(), str(path)
    except OSError as error:
        raise UsageError(f"cannot read {argument}: {error.strerror}") from None
    return argument.encode("utf-8", "replace"), "the argument"


def _decode(args, extra) -> int:
    from harness import exi

    raw, source = _read_input(args.input)
    if _HEX_TEXT.fullmatch(raw):
        text = re.sub(rb"\s", b"", raw)
        if len(text) % 2:
            raise UsageError(f"hex input from {source} has an odd number of digits")
        data = bytes.fromhex(text.decode("ascii"))
    elif source == "the argument":
        raise UsageError(f"{args.input!r} is neither hex nor an existing file")
    else:
        data = raw
    try:
        message = exi.decode(data, args.schema, fragment=args.fragment)
    except exi.DecodeError as error:
        print(f"harness exi decode: {error}", file=sys.stderr)
        return 1
    if args.xml:
        from harness.exi.xmltext import to_xml

        sys.stdout.write(to_xml(message, args.schema, fragment=args.fragment))
    else:
        print(json.dumps(message, indent=2, ensure_ascii=False))
    return 0


def _encode(args, extra) -> int:
    from harness import exi

    raw, source = _read_input(args.input)
    try:
        message = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UsageError(f"{source} is not JSON: {error}") from None
    encoder = exi.encode_unchecked if args.unchecked else exi.encode
    try:
        data = encoder(message, args.schema, fragment=args.fragment)
    except exi.EncodeError as error:
        print(f"harness exi encode: {error}", file=sys.stderr)
        return 1
    print(data.hex().upper())
    return 0
