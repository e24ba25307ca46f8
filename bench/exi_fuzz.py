#!/usr/bin/env python3
"""Mutation fuzzing of the EXI decoder: every input must decode or raise DecodeError.

    python bench/exi_fuzz.py [--inputs 1000000] [--jobs 2] [--seed 1] [--out DIR]

Inputs are the vectors (documents and fragments, incl. Annex J.2) mutated by bit flips, byte
replacement, insertion, deletion, truncation, duplication of a slice and splicing of two
vectors, plus random bytes with and without the 0x80 header; each is decoded with its own schema
most of the time and with another schema otherwise, as a document or as a fragment.

Findings are: any exception other than DecodeError (a crash; the input is saved in DIR), an
input taking longer than 50 ms, and a decoded message that does not decode to itself after
encode_unchecked (the decoder and encoder disagreeing). The report counts inputs, outcomes and
the distinct DecodeError reasons (numbers replaced by #).
"""

from __future__ import annotations

import argparse
import collections
import json
import multiprocessing
import random
import re
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from harness import exi  # noqa: E402
from harness.exi.codec import codec_for  # noqa: E402

VECTORS = REPO_ROOT / "tests" / "vectors"
SLOW_SECONDS = 0.05


def seeds() -> list[tuple[str, bool, bytes]]:
    """(schema, fragment, bytes) of every vector."""
    result = []
    for name in ("exi_known.jsonl", "exi_sessions.jsonl"):
        for line in (VECTORS / name).read_text().splitlines():
            if line.strip():
                vector = json.loads(line)
                result.append((vector["schema"], False, bytes.fromhex(vector["hex"])))
    annex = json.loads((VECTORS / "xmldsig_iso2_annex_j2.json").read_text())
    result.append(("iso2", True, bytes.fromhex(annex["authorization_req_fragment"]["hex"])))
    result.append(("xmldsig", True, bytes.fromhex(annex["signed_info_fragment"]["hex"])))
    return result


def mutate(rng: random.Random, data: bytes, corpus) -> bytes:
    data = bytearray(data)
    for _ in range(rng.choice((1, 1, 1, 2, 3, 5))):
        if not data:
            data = bytearray(b"\x80")
        kind = rng.randrange(8)
        position = rng.randrange(len(data))
        if kind <= 2:  # flip a bit (most often: small changes go deep into the message)
            data[position] ^= 1 << rng.randrange(8)
        elif kind == 3:
            data[position] = rng.randrange(256)
        elif kind == 4:
            data.insert(position, rng.randrange(256))
        elif kind == 5:
            del data[position]
        elif kind == 6:
            del data[position:]
        else:
            if rng.random() < 0.5:  # duplicate a slice
                end = min(len(data), position + rng.randrange(1, 16))
                data[position:position] = data[position:end]
            else:  # splice with another vector
                other = rng.choice(corpus)[2]
                cut = rng.randrange(len(other))
                data = data[:position] + other[cut:]
    return bytes(data)


def generate(rng: random.Random, corpus):
    """One input: (schema, fragment, data)."""
    roll = rng.random()
    schema, fragment, data = rng.choice(corpus)
    if roll < 0.85:
        data = mutate(rng, data, corpus)
    elif roll < 0.95:
        data = b"\x80" + rng.randbytes(rng.randrange(64))
    else:
        data = rng.randbytes(rng.randrange(64))
    if rng.random() < 0.1:
        schema = rng.choice(exi.SCHEMAS)
    if rng.random() < 0.1:
        fragment = not fragment
    return schema, fragment, data


def reason_kind(error: exi.DecodeError) -> str:
    return re.sub(r"0x[0-9A-Fa-f]+|\d+", "#", error.reason)


def worker(job: tuple[int, int, int]) -> dict:
    seed, count, index = job
    rng = random.Random(seed * 1000003 + index)
    corpus = seeds()
    outcomes = collections.Counter()
    reasons = collections.Counter()
    crashes, slow, disagreements = [], [], []
    slowest = 0.0
    for _ in range(count):
        schema, fragment, data = generate(rng, corpus)
        codec = codec_for(schema)
        start = time.perf_counter()
        try:
            message = codec.decode(data, fragment)
        except exi.DecodeError as error:
            outcomes["DecodeError"] += 1
            reasons[reason_kind(error)] += 1
            message = None
        except Exception as error:  # noqa: BLE001 - this is what the campaign looks for
            outcomes["crash"] += 1
            crashes.append((schema, fragment, data.hex(), f"{type(error).__name__}: {error}"))
            message = None
        else:
            outcomes["decoded"] += 1
        elapsed = time.perf_counter() - start
        slowest = max(slowest, elapsed)
        if elapsed > SLOW_SECONDS:
            slow.append((schema, fragment, data.hex(), elapsed))
        if message is not None:
            try:
                again = codec.decode(codec.encode(message, fragment, checked=False), fragment)
                if again != message:
                    disagreements.append((schema, fragment, data.hex(), "decoded differently"))
            except Exception as error:  # noqa: BLE001
                disagreements.append((schema, fragment, data.hex(),
                                      f"{type(error).__name__}: {error}"))
    return {"outcomes": outcomes, "reasons": reasons, "crashes": crashes, "slow": slow,
            "disagreements": disagreements, "slowest": slowest}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=1_000_000)
    parser.add_argument("--jobs", type=int, default=multiprocessing.cpu_count())
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--chunk", type=int, default=20_000)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "reports" / "exi-fuzz")
    args = parser.parse_args(argv)

    jobs = [(args.seed, min(args.chunk, args.inputs - start), i)
            for i, start in enumerate(range(0, args.inputs, args.chunk))]
    outcomes, reasons = collections.Counter(), collections.Counter()
    crashes, slow, disagreements = [], [], []
    slowest = 0.0
    started = time.perf_counter()
    with multiprocessing.Pool(args.jobs) as pool:
        for done, result in enumerate(pool.imap_unordered(worker, jobs), 1):
            outcomes.update(result["outcomes"])
            reasons.update(result["reasons"])
            crashes += result["crashes"]
            slow += result["slow"]
            disagreements += result["disagreements"]
            slowest = max(slowest, result["slowest"])
            if done % 10 == 0 or done == len(jobs):
                print(f"  {sum(outcomes.values()):>9} inputs, {time.perf_counter() - started:6.1f}"
                      f" s, crashes {len(crashes)}", file=sys.stderr)
    elapsed = time.perf_counter() - started
    total = sum(outcomes.values())
    print(f"EXI decoder fuzzing: {total} inputs in {elapsed:.1f} s with {args.jobs} processes "
          f"(seed {args.seed})")
    for name in ("decoded", "DecodeError", "crash"):
        print(f"  {name:<12} {outcomes[name]:>9}")
    print(f"  slowest input {slowest * 1000:.2f} ms; over {SLOW_SECONDS * 1000:.0f} ms: "
          f"{len(slow)}")
    print(f"  decode -> encode_unchecked -> decode disagreements: {len(disagreements)}")
    print(f"  distinct DecodeError reasons: {len(reasons)}")
    for reason, count in reasons.most_common():
        print(f"    {count:>8}  {reason}")
    findings = crashes + [(s, f, d, f"slow {t:.3f} s") for s, f, d, t in slow] + disagreements
    if findings:
        args.out.mkdir(parents=True, exist_ok=True)
        path = args.out / f"findings-seed{args.seed}.jsonl"
        with path.open("w") as handle:
            for schema, fragment, data, what in findings:
                handle.write(json.dumps({"schema": schema, "fragment": fragment, "hex": data,
                                         "finding": what}) + "\n")
        print(f"  findings written to {path}")
        for schema, fragment, data, what in findings[:10]:
            print(f"    {schema} {'fragment' if fragment else 'document'} {data[:60]}: {what}")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
