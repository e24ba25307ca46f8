"""``harness slac ev|evse|modem --iface IF``: one SLAC match as EV or EVSE, or a modem emulator.

With these a lab checks a Green PHY NIC and a charger's SLAC alone: ``slac ev`` plays the EV
(the charger's CP must already be in state B with 5 % duty), ``slac evse`` plays the EVSE with
pyslac (the EV's CP state is taken as B), ``slac modem`` answers on an interface as a QCA7000
would (CM_SET_KEY, CM_ATTEN_PROFILE.IND for the sounds it hears), optionally bridging to a
second interface that stands in for the power line.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from harness.cli import UsageError, shown


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("slac", help="SLAC (ISO 15118-3) on an interface: EV, EVSE or modem emulator")
    sub = parser.add_subparsers(dest="slac_command", metavar="ROLE", required=True)
    for role, text in (("ev", "one SLAC match as the EV; prints NID, EVSE MAC, attenuation, timings"),
                       ("evse", "one SLAC match as the EVSE (pyslac); prints NID, EV MAC, timings"),
                       ("modem", "a Green PHY modem emulator on an interface, until Ctrl-C")):
        command = sub.add_parser(role, help=text, description=text)
        command.add_argument("--iface", required=True, help="the network interface (host side for the modem)")
        command.add_argument("--netns", help="a network namespace the interface is in")
        command.add_argument("--scale", type=float, default=1.0,
                             help="multiply the ISO 15118-3 timers by this (0 < scale <= 1; default 1)")
        command.add_argument("-v", "--verbose", action="store_true", help="print every SLAC event")
        if role in ("ev", "evse"):
            command.add_argument("--timeout", type=float, default=None, help="give up after this many seconds")
        if role == "ev":
            command.add_argument("--attenuation-limit", type=float, default=None, metavar="DB",
                                 help="highest average attenuation the EV accepts (default 40 dB)")
        if role == "modem":
            command.add_argument("--line", help="the interface standing in for the power line (bridged)")
            command.add_argument("--role", choices=("evse", "ev"), default="evse",
                                 help="an EVSE's modem reports attenuation profiles (default evse)")
            command.add_argument("--attenuation", type=float, default=20.0, metavar="DB",
                                 help="attenuation reported for every EV's sounds (default 20 dB)")
            command.add_argument("--firmware", choices=("qualcomm", "homeplug"), default="qualcomm",
                                 help="CM_SET_KEY.CNF as QCA700x modems answer it (RESULT 0x01, the default) or as "
                                      "the HomePlug Green PHY text says (RESULT 0x00)")
        command.set_defaults(handler=slac_command)


def slac_command(args: argparse.Namespace, extra: list[str]) -> int:
    from harness.netns import Netns, NetnsError
    from harness.slac.io import Endpoint
    from harness.slac.timing import STANDARD
    from harness.trace import Recorder

    if not 0.0 < args.scale <= 1.0:
        raise UsageError("--scale must be in (0, 1]")
    timers = STANDARD.scaled(args.scale) if args.scale != 1.0 else STANDARD
    namespace = Netns(args.netns) if args.netns else None
    if namespace is not None and not namespace.exists:
        raise UsageError(f"no network namespace {args.netns} (`ip netns list`)")
    endpoint = Endpoint(args.iface, namespace)
    recorder = Recorder()
    if args.verbose:
        recorder.subscribe(lambda e: print(f"{e.mono:12.3f}  {e.observer:10}  {shown(e.summary)}", flush=True))
    try:
        runner = {"ev": _ev, "evse": _evse, "modem": _modem}[args.slac_command]
        return asyncio.run(runner(args, recorder, endpoint, timers))
    except NetnsError as exc:
        raise UsageError(str(exc)) from None


async def _ev(args, recorder, endpoint, timers) -> int:
    from harness.slac.ev import Matched
    from harness.slac.io import EvSlacSession

    session = EvSlacSession(recorder, endpoint, timers=timers, attenuation_limit_db=args.attenuation_limit).open()
    ev_mac = session.mac
    timeout = args.timeout or (timers.TT_matching_repetition + 5)
    try:
        async with asyncio.timeout(timeout):
            result = await session.match()
    except TimeoutError:
        print(f"no result within {timeout:g} s", file=sys.stderr)
        return 1
    finally:
        session.close()
    took = session.ended_at - session.started_at
    if not isinstance(result, Matched):
        print(f"SLAC failed after {result.attempts} attempt(s), {took:.3f} s: {result.reason}")
        return 1
    print(f"matched     EVSE {result.evse_mac} on {endpoint} (EV {ev_mac})")
    print(f"NID         {result.nid.hex().upper()}")
    print(f"attenuation {result.attenuation_db:.1f} dB average")
    for mac, db in sorted(result.candidates.items(), key=lambda item: item[1]):
        print(f"  candidate {mac}  {db:.1f} dB")
    print(f"RunID       {result.run_id.hex().upper()}")
    print(f"timing      {took:.3f} s, {result.attempts} attempt(s)")
    return 0


async def _evse(args, recorder, endpoint, timers) -> int:
    from harness.iec61851.pilot import CpState
    from harness.slac.evse import PyslacEvse

    evse = PyslacEvse(recorder, endpoint, timers=timers, apply_digital_duty=False)
    started = time.monotonic()
    timeout = args.timeout or (timers.TT_EVSE_SLAC_init + timers.TT_EVSE_match_session)
    try:
        await evse.start()
        await evse.cp_state(CpState.B)  # without pilot hardware: the EV is taken as plugged in
        match = await evse.wait_matched(timeout)
    except TimeoutError:
        print(f"no match within {timeout:g} s", file=sys.stderr)
        return 1
    finally:
        await evse.stop()
    print(f"matched     EV {match.ev_mac} on {endpoint} (EVSE {evse.mac})")
    print(f"NID         {match.nid.hex().upper()}")
    print(f"RunID       {match.run_id.hex().upper()}")
    print(f"timing      {time.monotonic() - started:.3f} s from start")
    return 0


async def _modem(args, recorder, endpoint, timers) -> int:
    from harness.emulators.greenphy import ModemEmulator, ModemRole
    from harness.slac.io import Endpoint

    line = Endpoint(args.line, endpoint.netns) if args.line else None
    modem = ModemEmulator(recorder, endpoint, line, role=ModemRole(args.role), name="modem",
                          default_attenuation_db=args.attenuation, firmware=args.firmware)
    modem.start()
    print(f"modem {modem.mac} ({args.role}) on {endpoint}" + (f", line {line}" if line else "") + "; Ctrl-C stops",
          flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        modem.stop()
    return 0
