#!/usr/bin/env python3
"""The whole chain on the netns rig, timed (needs root): rig set-up, SLAC, SDP, an ISO 15118-2
Plug & Charge session over TLS to SessionStop, teardown.

    sudo .venv/bin/python bench/netns_chain.py [--runs 5] [--sessions 3]

Each run builds rigs/emulated-netns.yaml as `harness run` does (mock CSMS, the emulated power
line with its namespaces and modem emulators, the reference EVSE booting over OCPP with its SDP
server and SECC on the EVSE host's plc0, pyslac's EVSE, the EV), then plugs the EV in
``--sessions`` times: CP state B and 5 %, SLAC, SDP by multicast on the line, TLS to the SECC's
link-local address, an AC PnC session with 3 charge loops, SessionStop, unplug. Timers run at the
rig file's scale (0.1). The figures come from the timeline; they are the median and the worst of
all runs. Not a test: the figures depend on the machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from harness.netns import unavailable_reason  # noqa: E402
from harness.rig.config import load_rig  # noqa: E402
from harness.rig.rig import Rig  # noqa: E402
from harness.slac.ev import Matched  # noqa: E402
from harness.trace import Recorder  # noqa: E402


def one_run(sessions: int) -> dict[str, list[float]]:
    figures: dict[str, list[float]] = {}

    def note(name: str, seconds: float) -> None:
        figures.setdefault(name, []).append(seconds)

    with tempfile.TemporaryDirectory(prefix="netns-chain-") as folder:
        trace = Recorder()
        rig = Rig(load_rig(REPO_ROOT / "rigs" / "emulated-netns.yaml"), run_dir=Path(folder), trace=trace)
        started = time.monotonic()
        rig.setup()
        try:
            note("rig_setup_s", time.monotonic() - started)
            line_up = trace.first(name="PowerLineUp")
            note("power_line_s", line_up.payload["setup_s"])
            rig.evse.wait_registered(30)
            note("rig_ready_s", time.monotonic() - started)
            for _ in range(sessions):
                mark = trace.now()
                rig.ev.hlc.plug_in()
                matched = rig.link.match()
                if not isinstance(matched, Matched):
                    raise SystemExit(f"no SLAC match: {matched.reason}")
                result = rig.ev.charge(protocol="iso2", energy="AC", identification="PnC", tls=True, cycles=3)
                if not result.ok:
                    raise SystemExit(f"the session failed: {result.outcome.reason}")
                slac = trace.first(name="SlacMatched", observer="ev", since=mark)
                request = trace.first(name="SdpRequest", observer="ev", since=mark)
                response = trace.first(name="SdpResponse", observer="ev", since=mark)
                connected = trace.first(name="TcpConnected", observer="ev", since=mark)
                ended = trace.first(name="SessionEnded", observer="ev", since=mark)
                note("slac_match_s", slac.payload["duration_s"])
                note("sdp_s", response.mono - request.mono)
                note("tls_connect_s", connected.mono - response.mono)
                note("session_s", ended.mono - connected.mono)
                note("plug_in_to_stop_s", ended.mono - mark)
                rig.ev.unplug()
                rig.restore()
        finally:
            stopping = time.monotonic()
            rig.teardown()
            note("teardown_s", time.monotonic() - stopping)
    # set-up of the rig plus the first SLAC match: what the 3 s goal is about
    note("setup_plus_slac_s", figures["rig_ready_s"][0] + figures["slac_match_s"][-sessions])
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="rigs built and torn down")
    parser.add_argument("--sessions", type=int, default=3, help="plug-ins (SLAC + SDP + session) per rig")
    args = parser.parse_args()
    reason = unavailable_reason()
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    totals: dict[str, list[float]] = {}
    for _ in range(args.runs):
        for name, values in one_run(args.sessions).items():
            totals.setdefault(name, []).extend(values)
    print(f"{args.runs} rigs, {args.sessions} sessions each, timers x0.1 (rigs/emulated-netns.yaml)")
    for name, values in totals.items():
        print(f"  {name:18} median {statistics.median(values) * 1000:8.1f} ms   worst {max(values) * 1000:8.1f} ms"
              f"   (n={len(values)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
