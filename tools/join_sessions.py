#!/usr/bin/env python3
"""Join a trace.jsonl's charging sessions from the SLAC run to the OCPP transaction with nothing
but the trace format the README documents: one JSON object per line with ``layer``, ``name``,
``observer``, ``mono`` and ``keys``. It imports nothing of the harness, so a lab can copy it into
its own tools; the harness's own join (``harness trace sessions``) must agree with it.

Usage: ``python tools/join_sessions.py reports/<run-id>/trace.jsonl``. One line per ISO 15118
session: ``run_id ev_mac -> session_id evccid emaid -> transaction_id id_token``.
"""

from __future__ import annotations

import json
import sys


def mac(value):
    digits = "".join(c for c in value or "" if c.isalnum()).upper()
    return digits if len(digits) == 12 else None


def main(path):
    events = [json.loads(line) for line in open(path, encoding="utf-8") if line.strip()]
    ev = [e for e in events if e.get("observer") == "ev"]
    matches = [e for e in ev if e["layer"] == "slac" and e["name"] == "SlacMatched"]
    sessions = {}
    for event in ev:
        session_id = event.get("keys", {}).get("session_id")
        if event["layer"] != "v2g" or not session_id or set(session_id) == {"0"}:
            continue
        session = sessions.setdefault(session_id, {"start": event["mono"], "end": event["mono"], "keys": {}})
        session["end"] = event["mono"]
        session["keys"].update(event["keys"])
    # OCPP transactions as the CSMS saw them: the frames that carry a transaction_id key
    transactions = {}
    for event in events:
        keys = event.get("keys", {})
        if event["layer"] == "ocpp" and event.get("observer") == "csms" and "transaction_id" in keys:
            tx = transactions.setdefault(keys["transaction_id"], {"start": event["mono"], "id_tokens": set()})
            tx["end"] = event["mono"]
            if "id_token" in keys:
                tx["id_tokens"].add(keys["id_token"])
    lines = []
    for session_id, session in sorted(sessions.items(), key=lambda item: item[1]["start"]):
        keys = session["keys"]
        slac = [m for m in matches if m["mono"] <= session["start"]
                and mac(m["keys"].get("ev_mac")) == mac(keys.get("evccid"))]
        run_id = slac[-1]["keys"]["run_id"] if slac else "-"
        ev_mac = mac(slac[-1]["keys"]["ev_mac"]) if slac else "-"
        # the transaction that ran longest together with the session; the eMAID as its idToken
        overlap = {tx_id: min(session["end"], tx["end"]) - max(session["start"], tx["start"])
                   for tx_id, tx in transactions.items()}
        candidates = [tx_id for tx_id in overlap if overlap[tx_id] >= 0
                      and (not keys.get("emaid") or keys["emaid"] in transactions[tx_id]["id_tokens"])]
        tx_id = max(candidates, key=lambda t: overlap[t]) if candidates else "-"
        tokens = ",".join(sorted(transactions[tx_id]["id_tokens"])) if candidates else "-"
        lines.append(f"{run_id} {ev_mac} -> {session_id} {keys.get('evccid', '-')} {keys.get('emaid', '-')} -> "
                     f"{tx_id} {tokens}")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
