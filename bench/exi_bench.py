#!/usr/bin/env python3
"""Encode and decode time of the EXI codec per message: median and p99 per schema over the
vectors, plus large certificate-carrying messages (CertificateInstallationRes of -2 and -20).

    python bench/exi_bench.py [--repeat N] [--by-message] [--profile SCHEMA:MESSAGE]

Each message is decoded and encoded ``repeat`` times; every call is one sample. Not a test: the
figures depend on the machine. The goal: median under 50 us per typical message each way, under
1 ms for a certificate-carrying one.
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import gc
import json
import os
import platform
import pstats
import statistics
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from harness import exi  # noqa: E402

VECTORS = REPO_ROOT / "tests" / "vectors"


def load_vectors() -> list[dict]:
    vectors = []
    for name in ("exi_known.jsonl", "exi_sessions.jsonl"):
        for line in (VECTORS / name).read_text().splitlines():
            if line.strip():
                vectors.append(json.loads(line))
    return vectors


def _certificate(seed: int, size: int = 800) -> str:
    """A certificate-sized base64 value (DER-like bytes; the codec does not look inside)."""
    raw = bytes((seed * 131 + i * 17) & 0xFF for i in range(size))
    return base64.b64encode(raw).decode("ascii")


def _signature_header(session_id: str) -> dict:
    return {
        "SessionID": session_id,
        "Signature": {
            "SignedInfo": {
                "CanonicalizationMethod": {"Algorithm": "http://www.w3.org/TR/canonical-exi/"},
                "SignatureMethod": {
                    "Algorithm": "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"},
                "Reference": [
                    {"URI": f"#id{i}",
                     "Transforms": {"Transform": [
                         {"Algorithm": "http://www.w3.org/TR/canonical-exi/"}]},
                     "DigestMethod": {"Algorithm": "http://www.w3.org/2001/04/xmlenc#sha256"},
                     "DigestValue": base64.b64encode(bytes([i]) * 32).decode("ascii")}
                    for i in range(1, 5)],
            },
            "SignatureValue": {"value": base64.b64encode(bytes(range(64))).decode("ascii")},
        },
    }


def certificate_installation_res_iso2() -> dict:
    """-2 CertificateInstallationRes with two chains of three 800-byte certificates (the
    maximum certificate size of the -2 schema), signed."""
    def chain(seed, identifier):
        return {"Id": identifier, "Certificate": _certificate(seed),
                "SubCertificates": {"Certificate": [_certificate(seed + 1),
                                                    _certificate(seed + 2)]}}
    return {"V2G_Message": {
        "Header": _signature_header("B4317552719E3447"),
        "Body": {"CertificateInstallationRes": {
            "ResponseCode": "OK",
            "SAProvisioningCertificateChain": chain(1, "id0"),
            "ContractSignatureCertChain": chain(4, "id1"),
            "ContractSignatureEncryptedPrivateKey": {
                "Id": "id2", "value": base64.b64encode(bytes(48)).decode("ascii")},
            "DHpublickey": {"Id": "id3", "value": base64.b64encode(bytes(65)).decode("ascii")},
            "eMAID": {"Id": "id4", "value": "DEV2G1234567890"},
        }}}}


def certificate_installation_res_iso20() -> dict:
    """-20 CertificateInstallationRes: CPS chain and contract chain (three certificates each,
    1200 bytes), signed installation data with an encrypted SECP521 key."""
    def chain(seed):
        return {"Certificate": _certificate(seed, 1200),
                "SubCertificates": {"Certificate": [_certificate(seed + 1, 1200),
                                                    _certificate(seed + 2, 1200)]}}
    header = _signature_header("9D877D56AD17DB1E")
    header["TimeStamp"] = 1795750446
    header = {"SessionID": header["SessionID"], "TimeStamp": header["TimeStamp"],
              "Signature": header["Signature"]}
    return {"CertificateInstallationRes": {
        "Header": header,
        "ResponseCode": "OK",
        "EVSEProcessing": "Finished",
        "CPSCertificateChain": chain(1),
        "SignedInstallationData": {
            "Id": "id1",
            "ContractCertificateChain": chain(4),
            "ECDHCurve": "SECP521",
            "DHPublicKey": base64.b64encode(bytes(133)).decode("ascii"),
            "SECP521_EncryptedPrivateKey": base64.b64encode(bytes(94)).decode("ascii"),
        },
        "RemainingContractCertificateChains": 0,
    }}


def sample(function, argument, repeat: int) -> list[float]:
    """Per-call times in microseconds."""
    times = []
    clock = time.perf_counter_ns
    for _ in range(repeat):
        start = clock()
        function(argument)
        times.append((clock() - start) / 1000)
    return times


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def measure(cases, repeat: int) -> dict:
    """cases: (group, name, schema, data, message) -> {group: (decode times, encode times)}"""
    results: dict = {}
    for group, name, schema, data, message in cases:
        decode_times = sample(lambda d: exi.decode(d, schema), data, repeat)
        encode_times = sample(lambda m: exi.encode(m, schema), message, repeat)
        entry = results.setdefault(group, ([], [], []))
        entry[0].extend(decode_times)
        entry[1].extend(encode_times)
        entry[2].append((name, len(data), statistics.median(decode_times),
                         statistics.median(encode_times)))
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=200, help="calls per message and way")
    parser.add_argument("--by-message", action="store_true", help="also list every message")
    parser.add_argument("--profile", metavar="SCHEMA:MESSAGE",
                        help="profile decoding and encoding of one vector (or 'large-iso2', "
                             "'large-iso20') with cProfile instead of timing")
    args = parser.parse_args(argv)

    large = [("large", "CertificateInstallationRes (-2, 6 x 800 B certificates)", "iso2",
              certificate_installation_res_iso2()),
             ("large", "CertificateInstallationRes (-20, 6 x 1200 B certificates)", "iso20",
              certificate_installation_res_iso20())]
    cases = []
    for vector in load_vectors():
        cases.append((vector["schema"], vector["message"], vector["schema"],
                      bytes.fromhex(vector["hex"]), vector["json"]))
    for group, name, schema, message in large:
        data = exi.encode(message, schema)
        assert exi.decode(data, schema) == message
        cases.append((group, name, schema, data, message))

    if args.profile:
        return profile(args.profile, cases, args.repeat)

    for _, _, schema, data, message in cases:  # load the tables and warm up
        exi.decode(data, schema)
        exi.encode(message, schema)
    gc.disable()
    try:
        results = measure(cases, args.repeat)
    finally:
        gc.enable()

    print(f"EXI codec, {args.repeat} calls per message and way; Python "
          f"{platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs")
    print(f"{'group':<10} {'msgs':>4} {'bytes(med)':>10}  {'decode med':>10} {'p99':>8}  "
          f"{'encode med':>10} {'p99':>8}   (microseconds)")
    for group, (decode_times, encode_times, messages) in results.items():
        sizes = [size for _, size, _, _ in messages]
        print(f"{group:<10} {len(messages):>4} {statistics.median(sizes):>10.0f}  "
              f"{statistics.median(decode_times):>10.1f} {percentile(decode_times, .99):>8.1f}  "
              f"{statistics.median(encode_times):>10.1f} {percentile(encode_times, .99):>8.1f}")
    typical_decode = [t for g, (d, _, _) in results.items() if g != "large" for t in d]
    typical_encode = [t for g, (_, e, _) in results.items() if g != "large" for t in e]
    print(f"{'all vectors':<10} {'':>4} {'':>10}  {statistics.median(typical_decode):>10.1f} "
          f"{percentile(typical_decode, .99):>8.1f}  {statistics.median(typical_encode):>10.1f} "
          f"{percentile(typical_encode, .99):>8.1f}")
    print()
    for name, size, decode_median, encode_median in results["large"][2]:
        print(f"{name}: {size} bytes, decode {decode_median:.0f} us, encode "
              f"{encode_median:.0f} us (medians)")
    if args.by_message:
        print()
        for group, (_, _, messages) in results.items():
            for name, size, decode_median, encode_median in messages:
                print(f"{group:<10} {name:<58} {size:>5} B  decode {decode_median:7.1f}  "
                      f"encode {encode_median:7.1f}")
    return 0


def profile(which: str, cases, repeat: int) -> int:
    if which.startswith("large-"):
        schema = which.split("-", 1)[1]
        case = next(c for c in cases if c[0] == "large" and c[2] == schema)
    else:
        schema, _, name = which.partition(":")
        case = next(c for c in cases if c[2] == schema and c[1] == name)
    _, name, schema, data, message = case
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(repeat):
        exi.decode(data, schema)
        exi.encode(message, schema)
    profiler.disable()
    print(f"{name} ({schema}), {repeat} decodes and encodes")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(15)
    return 0


if __name__ == "__main__":
    sys.exit(main())
