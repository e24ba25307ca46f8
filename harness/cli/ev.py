"""``harness ev run``: one charging session as the EV against whatever EVSE answers on an
interface (SDP, then the protocol the profile offers), with a summary of what happened."""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime as _dt
import signal
import ssl
import tempfile
from pathlib import Path

from harness.cli import UsageError, pki, shown

PROTOCOLS = ("din", "iso2", "iso20-ac", "iso20-dc")

#: rules this EV can be told to break, so that the EV-side suites can be seen to fail against an
#: EV that breaks them (their names say what the EV does instead of the rule)
MISBEHAVIOURS = {
    "trust-any-secc": "accepts any SECC certificate chain (ISO 15118-2 7.7.3: the EVCC authenticates the SECC)",
    "no-message-timeout": "waits 60 s for every response instead of V2G_EVCC_Msg_Timeout (ISO 15118-2 Table 109)",
    "wrong-challenge": "answers another GenChallenge in its Plug & Charge AuthorizationReq than the charger gave it "
                       "(the charger's refusal names the rule)",
}

#: where the GenChallenge of a Plug & Charge AuthorizationReq is, per protocol generation
_CHALLENGE = {"iso2": "AuthorizationReq.GenChallenge",
              "iso20": "AuthorizationReq.PnC_AReqAuthorizationMode.GenChallenge"}


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("ev", help="the EV emulator (ISO 15118 / DIN 70121)")
    sub = parser.add_subparsers(dest="ev_command", metavar="ACTION", required=True)
    run = sub.add_parser(
        "run", help="run one session as the EV and print a summary",
        description="Find the EVSE with SDP on --iface (multicast ff02::1, or unicast with --sdp-target), "
                    "connect over TCP or TLS and run one session with the protocol and options given (by "
                    "default the profile's). With --slac the EV first matches the EVSE over SLAC "
                    "(ISO 15118-3) on --iface, as when its cable was just plugged in; without it the link "
                    "must already carry IPv6 (a veth, an Ethernet port, a matched PLC modem).")
    run.add_argument("--iface", required=True, help="the interface to the EVSE (lo for a local `evse serve`)")
    run.add_argument("--profile", type=Path, help="EV profile (default fixtures/ev/default.yaml)")
    run.add_argument("--protocol", action="append", choices=PROTOCOLS, default=[],
                     help="protocol to offer, most wanted first (repeatable; default: the profile's for the energy mode)")
    run.add_argument("--energy", choices=("AC", "DC", "AC_BPT", "DC_BPT"), help="energy mode (default: the profile's)")
    run.add_argument("--identification", choices=("EIM", "PnC"), help="EIM or Plug & Charge")
    run.add_argument("--control", choices=("scheduled", "dynamic"), help="ISO 15118-20 control mode")
    tls = run.add_mutually_exclusive_group()
    tls.add_argument("--tls", dest="tls", action="store_true", default=None, help="ask for TLS in SDP")
    tls.add_argument("--no-tls", dest="tls", action="store_false", help="ask for plain TCP in SDP")
    run.add_argument("--cycles", type=int, help="charge-loop requests before stopping (default: the profile's)")
    run.add_argument("--discharge", action="store_true", help="BPT: feed energy back")
    pki.add_arguments(run, folder_help="ISO 15118 certificates: a `harness certs generate` or `evse serve` folder; "
                                       "the EV trusts its V2G roots and presents its contract")
    run.add_argument("--sdp-target", help="send SDP to this address instead of ff02::1 (e.g. ::1 on lo)")
    run.add_argument("--sdp-port", type=int, default=15118)
    run.add_argument("--time-scale", type=float, default=1.0,
                     help="shrink the standards' timers (1 = as the standards say; for emulated peers only)")
    run.add_argument("--slac", action="store_true",
                     help="match the EVSE over SLAC on --iface first (raw sockets: root or CAP_NET_RAW)")
    run.add_argument("--misbehave", action="append", choices=tuple(MISBEHAVIOURS), default=[],
                     help="break a rule on purpose (repeatable): " + "; ".join(f"{k}: {v}" for k, v in
                                                                                MISBEHAVIOURS.items()))
    run.add_argument("--out", type=Path, help="folder for trace.jsonl and the TLS key log")
    run.add_argument("--quiet", action="store_true", help="only the summary, not every message")
    run.set_defaults(handler=run_command)


def run_command(args: argparse.Namespace, extra: list[str]) -> int:
    from harness.emulators.hlc_ev import HlcEv
    from harness.emulators.power import PowerFlow
    from harness.emulators.profiles import DEFAULT_EV_PROFILE, ProfileError, load_ev_profile
    from harness.iec61851.pilot import SimulatedPilot
    from harness.pki.files import CertificateFileError
    from harness.rig.hlc import PROTOCOLS_FOR
    from harness.trace import Layer, Recorder
    from harness.trace.recorder import SERVER_MEMORY_BUDGET
    from harness.v2g.battery import Battery
    from harness.v2g.faults import FaultPlan, replace
    from harness.v2g.links import InterfaceError, interface_address, interface_evccid
    from harness.v2g.sap import pki_generation
    from harness.v2g.sdp import ALL_NODES, SdpError, discover
    from harness.v2g.timers import Timing
    from harness.v2g.vehicle import Vehicle

    try:
        profile = load_ev_profile(args.profile or DEFAULT_EV_PROFILE)
        interface_address(args.iface)
    except (ProfileError, InterfaceError) as exc:
        raise UsageError(str(exc)) from None
    if not 0 < args.time_scale <= 1:
        raise UsageError("--time-scale must be above 0 and at most 1")
    energy = args.energy or profile.plan.energy
    protocols = tuple(args.protocol) or tuple(p for p in profile.protocols if p in PROTOCOLS_FOR[energy])
    if not protocols:
        raise UsageError(f"the profile offers no protocol for {energy}")
    plan = profile.plan.with_(protocols=protocols, energy=energy,
                              identification=args.identification or profile.plan.identification,
                              control=args.control or profile.plan.control,
                              cycles=args.cycles if args.cycles is not None else profile.plan.cycles,
                              discharge=args.discharge)
    generation = pki_generation(protocols[0])
    tls = args.tls if args.tls is not None else (generation == "iso20" or plan.identification == "PnC")
    out = args.out or Path(tempfile.mkdtemp(prefix="harness-ev-"))
    out.mkdir(parents=True, exist_ok=True)
    material = None
    if args.pki:
        material = pki.material(args, "ev", out)
    elif tls:
        raise UsageError("TLS and Plug & Charge need --pki (the V2G roots to trust, the contract to use)")
    vehicle = Vehicle(interface_evccid(args.iface) or profile.evccid,
                      Battery(profile.capacity_kwh * 1000.0, profile.soc, profile.max_charge_kw * 1000.0,
                              profile.max_discharge_kw * 1000.0), plan=plan,
                      ac_max_current=profile.ac_max_current, dc_max_voltage=profile.dc_max_voltage,
                      dc_max_current=profile.dc_max_current, pack_voltage_empty=profile.pack_voltage[0],
                      pack_voltage_full=profile.pack_voltage[1], departure_time=profile.departure_time,
                      target_soc=profile.target_soc, min_soc=profile.min_soc, vin=profile.vin)
    if material is not None and plan.identification == "PnC":
        # the contract of each generation offered; the session uses the one of the protocol chosen
        try:
            vehicle.wallet = {g: material.ev_credentials(g) for g in {pki_generation(p) for p in protocols}}
        except CertificateFileError as exc:
            raise UsageError(f"--pki: {exc}") from None
        vehicle.credentials = vehicle.wallet[generation]
    trace = Recorder(out / "trace.jsonl", memory_budget=SERVER_MEMORY_BUDGET)
    if not args.quiet:
        trace.subscribe(_print_event)
    timing = Timing(scale=args.time_scale)
    if "no-message-timeout" in args.misbehave:
        timing = timing.with_msg_timeout(60.0 / args.time_scale)
    for misbehaviour in args.misbehave:
        trace.emit(Layer.FAULT, "EvMisbehaves", f"this EV {MISBEHAVIOURS[misbehaviour]}", src="ev",
                   payload={"misbehaviour": misbehaviour})

    async def session():
        if args.slac:
            matched = await _slac(trace, args.iface, args.time_scale)
            if matched is not None:
                raise UsageError(f"SLAC on {args.iface} failed: {matched}")
        try:
            found = await discover(trace, tls=tls, target=args.sdp_target or ALL_NODES, port=args.sdp_port,
                                   iface=args.iface, timers=timing.sdp, timeout_scale=timing.timeout)
        except SdpError as exc:
            raise UsageError(f"no EVSE answered on {args.iface}: {exc}") from None
        context = material.evcc_context(protocols) if found.tls and material is not None else None
        if found.tls and context is None:
            raise UsageError("the EVSE answered with a TLS port but no --pki was given")
        if context is not None and "trust-any-secc" in args.misbehave:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        ev = HlcEv(trace, vehicle, timing=timing, self_metered=True)
        await ev.plug_in(SimulatedPilot(trace), PowerFlow())
        faults = FaultPlan(recorder=trace, side="ev")
        if "wrong-challenge" in args.misbehave and plan.identification == "PnC":
            faults.add(replace("AuthorizationReq", _CHALLENGE[generation], base64.b64encode(b"\xee" * 16).decode()))
        try:
            return await ev.charge(found.address, found.port, context=context, faults=faults)
        finally:
            await ev.unplug()

    soc_before = vehicle.battery.soc
    # unplugged (SIGTERM from whoever started it): end like Ctrl-C, the trace closed
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        outcome = asyncio.run(session())
    except KeyboardInterrupt:
        print("\nunplugged before the session ended", flush=True)
        return 130
    finally:
        trace.close()
    print(f"\noutcome:   {'OK' if outcome.ok else 'FAILED'}: {outcome.reason}")
    print(f"protocol:  {outcome.protocol or '-'}    session: {outcome.session_id or '-'}    "
          f"messages: {outcome.messages}")
    print(f"SoC:       {soc_before:.1%} -> {vehicle.battery.soc:.1%}")
    print(f"trace:     {out / 'trace.jsonl'}")
    return 0 if outcome.ok else 1


async def _slac(trace, iface: str, time_scale: float) -> str | None:
    """The EV's SLAC on ``iface`` (ISO 15118-3), at once: the cable is in and the EVSE's 5 % duty
    is assumed, as this EV has no pilot to read. Why it failed, or None once matched."""
    from harness.slac.ev import Failed
    from harness.slac.io import Endpoint, EvSlacSession
    from harness.slac.timing import for_scale

    session = EvSlacSession(trace, Endpoint(iface), timers=for_scale(time_scale))
    try:
        result = await session.match()
    except OSError as exc:
        return f"{iface}: {exc.strerror or exc}"
    finally:
        session.close()
    return result.reason if isinstance(result, Failed) else None


def _print_event(event) -> None:
    if event.layer.value not in ("v2g", "sdp", "fault", "slac"):
        return
    stamp = _dt.datetime.fromtimestamp(event.wall).strftime("%H:%M:%S.%f")[:-3]
    print(f"{stamp} {event.layer.value:4} {shown(event.summary)}", flush=True)
