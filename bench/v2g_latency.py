"""How long the harness itself takes to carry a grid signal to the power stage, hop by hop, on the
emulated rig, leaving out the waits the standards impose.

    .venv/bin/python bench/v2g_latency.py --events 40

It runs ISO 15118-20 sessions in dynamic control mode (AC_BPT and DC_BPT in turn) and, while each
EV's charge loop runs, sends grid events through the CSMS's setpoint strategy, alternating export
and import requests, each once the one before has reached the power stage. The timeline gives
each hop as processing time:

- ``csms decides``: the GridSignal until the strategy's CsmsDecision (the CSMS finds the
  transaction and builds the profile);
- ``csms sends``: the decision until the SetChargingProfile CALL leaves the CSMS;
- ``to station``: the CALL leaving the CSMS until the station has it (WebSocket on loopback);
- ``station applies``: the CALL received until the composite schedule is in force
  (ChargingLimitApplied);
- ``secc``: the EV's next charge-loop request received until the response carrying the new target
  goes out (the wait for that request is the EV's loop interval: not counted);
- ``ev applies``: AC: that response leaving the SECC until the EV draws the new power
  (PowerApplied: delivered, decoded, applied); DC: the charger's stage takes the target inside
  ``secc``, so 0;
- ``chain``: the sum of the hops above.

Not counted: the EV's loop interval, the station's answer to the CSMS (it runs beside the
application), the DC current ramp and the analyzer's sampling. Timers are scaled as on the default
rig. Prints p50, p95 and max in milliseconds per hop. Goal: chain p95 under 20 ms.
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hop_table import print_hops  # noqa: E402  (bench/ is on the path as the script's folder)

from harness.ocpp import commands, grid  # noqa: E402
from harness.rig.config import load_rig  # noqa: E402
from harness.rig.rig import Rig  # noqa: E402
from harness.trace import Recorder  # noqa: E402

HOPS = ("csms decides", "csms sends", "to station", "station applies", "secc", "ev applies", "chain")
LOOPS = ("AC_ChargeLoopReq", "DC_ChargeLoopReq")
ANSWERS = ("AC_ChargeLoopRes", "DC_ChargeLoopRes")
#: the powers the events ask for in turn (kW; negative: export)
REQUESTS = (-5.0, 4.0, -3.0, 6.0)


def _after(events, since, where):
    return next(e for e in events if e.mono >= since and where(e))


def _frame(name, observer, kind):
    return lambda e: (e.name == name and e.observer == observer and isinstance(e.payload, dict)
                      and e.payload.get("type") == kind)


def hops_of(rig: Rig, signal_at: float, wanted_w: float) -> dict[str, float]:
    events = rig.trace.select(since=signal_at)
    decided = _after(events, signal_at, lambda e: e.name == "CsmsDecision")
    sent = _after(events, decided.mono, _frame("SetChargingProfile", "csms", "CALL"))
    received = _after(events, sent.mono, _frame("SetChargingProfile", "evse", "CALL"))
    applied = _after(events, received.mono, lambda e: e.name == "ChargingLimitApplied")
    target = _after(events, applied.mono, lambda e: e.name == "TargetPower" and e.src == "evse"
                    and abs(e.payload["target_w"] - wanted_w) <= 50.0)
    request = max((e for e in events if e.name in LOOPS and e.observer == "evse" and e.mono <= target.mono),
                  key=lambda e: e.mono)
    response = _after(events, target.mono, lambda e: e.name.replace("Res", "Req") in LOOPS and e.observer == "evse"
                      and e.src == "evse")
    if response.name.startswith("DC"):
        ev_applies = 0.0
    else:
        power = _after(events, response.mono, lambda e: e.name == "PowerApplied" and e.src == "ev")
        ev_applies = power.mono - response.mono
    hops = {"csms decides": decided.mono - signal_at, "csms sends": sent.mono - decided.mono,
            "to station": received.mono - sent.mono, "station applies": applied.mono - received.mono,
            "secc": response.mono - request.mono, "ev applies": ev_applies}
    hops["chain"] = sum(hops.values())
    return hops


def one_session(rig: Rig, energy: str, events: int, session_no: int) -> list[dict[str, float]]:
    version = rig.evse.version
    token = f"BENCH-V2G-{session_no}"
    assert rig.csms.call(*commands.remote_start(version, token))["status"] == "Accepted"
    mark = rig.trace.now()
    found: list[dict[str, float]] = []
    problems: list[BaseException] = []

    def grid_events() -> None:
        try:
            rig.trace.wait_for(30, name=LOOPS, observer="evse", since=mark)
            for n in range(events):
                kw = REQUESTS[n % len(REQUESTS)]
                event = grid.event(f"bench {session_no}.{n}", **({"export_kw": -kw} if kw < 0 else {"import_kw": kw}))
                outcome = rig.csms.grid_event(event, "setpoint")
                if outcome.status != "Accepted":
                    raise RuntimeError(f"SetChargingProfile answered {outcome.status}")
                for name in ("PowerApplied", "TargetPower"):  # on DC the stage applies before the answer leaves
                    rig.trace.wait_for(10, name=name, since=outcome.signalled_at,
                                       where=lambda e: abs(e.payload.get("target_w", 0.0) - kw * 1000) <= 50.0)
                rig.trace.wait_for(10, name=ANSWERS, observer="ev", since=rig.trace.now())  # the next answer came
                found.append(hops_of(rig, outcome.signalled_at, kw * 1000))
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            problems.append(exc)
        finally:
            rig.ev.end_session()

    helper = threading.Thread(target=grid_events)
    helper.start()
    result = rig.ev.charge(protocol="iso20-ac" if energy == "AC_BPT" else "iso20-dc", energy=energy,
                           control="dynamic", cycles=None)
    helper.join(60)
    if problems:
        raise problems[0]
    if not result.ok:
        raise RuntimeError(f"the {energy} session failed: {result.outcome.reason}")
    rig.restore()
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=40, help="grid events in all (default 40)")
    parser.add_argument("--per-session", type=int, default=10, help="grid events per EV session (default 10)")
    parser.add_argument("--energy", choices=("AC_BPT", "DC_BPT"), action="append",
                        help="the energy modes in turn (default both)")
    parser.add_argument("--rig", type=Path, default=ROOT / "rigs" / "emulated.yaml")
    args = parser.parse_args()
    rounds: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        rig = Rig(load_rig(args.rig), run_dir=folder / "run", trace=Recorder(folder / "trace.jsonl"), run_id="bench")
        rig.setup()
        try:
            session = 0
            while len(rounds) < args.events:
                modes = args.energy or ["AC_BPT", "DC_BPT"]
                energy = modes[session % len(modes)]
                gc.collect()
                rounds += one_session(rig, energy, min(args.per_session, args.events - len(rounds)), session)
                session += 1
        finally:
            rig.teardown()
    print(f"{len(rounds)} grid events during ISO 15118-20 dynamic AC_BPT/DC_BPT sessions, {args.rig.name} "
          f"(time scale {rig.config.time_scale:g}); harness processing per hop, ms")
    print_hops(HOPS, rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
