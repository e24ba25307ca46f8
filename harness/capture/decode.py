"""A capture read into timeline events, the way the harness's own observers record them.

:func:`read_capture_file` takes a pcap or pcapng from any tool (the harness's link captures,
tcpdump, Wireshark, a charger vendor's) and an optional NSS key log, and writes a trace.jsonl
whose events carry the same names, payloads and correlation keys as a run's, with observer
``capture``: so ``harness trace sessions`` joins its sessions and ``harness trace show`` prints
them like any run's.

What it reads:

- SLAC (HomePlug AV, ethertype 0x88E1, on captures with Ethernet headers): every MME by name
  with its run id and MACs; CM_SLAC_MATCH.CNF also as ``SlacMatched`` with the EV and EVSE MACs
  it confirms (ISO 15118-3 A.9.5), the key that joins SLAC to a DIN/-2 session's EVCCID.
- SDP (UDP port 15118): requests and responses, a response with the SECC's address as ``secc``.
- V2GTP over TCP, in the clear or inside TLS: every message decoded with the harness's EXI
  codec, the protocol found from the supportedAppProtocol handshake, keys as the EV records them
  (SessionID, EVCCID, EVSEID, eMAID).
- OCPP-J over WebSocket, in the clear or inside TLS: the opening handshake (station id from the
  path, version from the subprotocol), every frame as the CSMS records it, with its keys.
- TLS: version, cipher suite, server name, alerts; decrypted with the key log (harness.capture.tls).

What it could not read is said, not skipped: a connection without keys, a record that does not
authenticate, bytes the capture lost, a payload that does not decode are events too, and
:class:`CaptureSummary` lists them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import exi
from harness.capture import streams
from harness.capture.packets import UDP, CaptureError, Packet, dissect, read_capture
from harness.capture.streams import Endpoint, Reassembly
from harness.capture.tls import KeyLog, Plain, TlsConnection, TlsNote
from harness.capture.websocket import Control, Message, Opening, Problem, WebSocketStream
from harness.ocpp import frames as ocpp_frames
from harness.ocpp.correlation import frame_event, message_keys
from harness.ocpp.versions import OcppVersion
from harness.slac import frames as slac_frames
from harness.trace import Layer, Recorder
from harness.v2g import messages, pnc, recording, sap
from harness.v2g.machine import Received, Send, Undecodable
from harness.v2g.sdp import SDP_PORT, SdpError, SdpRequest, SdpResponse
from harness.v2g.v2gtp import HeaderError, PayloadType, V2gtpReader

OBSERVER = "capture"
#: the largest V2GTP payload read from a capture (the standards' messages are far smaller)
MAX_V2G_PAYLOAD = 1024 * 1024

__all__ = ["CaptureError", "CaptureSummary", "OBSERVER", "read_capture_file"]


@dataclass
class CaptureSummary:
    packets: int = 0
    events: int = 0
    #: one line per TCP connection: who, what protocol, whether it was read
    connections: list[str] = field(default_factory=list)
    #: what could not be read
    problems: list[str] = field(default_factory=list)
    #: the capture file's own problem (cut short), after the packets before it were read
    truncated: str | None = None


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def read_capture_file(path: Path, out: Path | None = None, *, keylog: KeyLog | None = None) -> tuple[Recorder,
                                                                                                 CaptureSummary]:
    """Read ``path`` into a timeline (written to ``out`` when given); CaptureError when it is not a
    capture at all."""
    clock = _Clock()
    scratch = Recorder(clock=clock, wall_clock=clock)
    reader = _Reader(scratch, clock, keylog or KeyLog())
    summary = reader.summary
    try:
        for packet in read_capture(path):
            reader.packet(packet)
    except CaptureError as exc:
        if summary.packets == 0:
            raise
        summary.truncated = str(exc)
        summary.problems.append(str(exc))
    reader.finish()
    # the events were made as each connection's bytes arrived; the timeline is in time order
    final_clock = _Clock()
    recorder = Recorder(out, clock=final_clock, wall_clock=final_clock)
    for event in sorted(scratch, key=lambda e: (e.mono, e.seq)):
        final_clock.now = event.mono
        recorder.emit(event.layer, event.name, event.summary, src=event.src, dst=event.dst,
                      payload=event.payload, keys=event.keys, observer=event.observer)
    summary.events = len(recorder)
    return recorder, summary


class _Reader:
    def __init__(self, recorder: Recorder, clock: _Clock, keylog: KeyLog) -> None:
        self.recorder = recorder
        self.clock = clock
        self.keylog = keylog
        self.summary = CaptureSummary()
        self.tcp = Reassembly()
        self.flows: dict[int, _Flow] = {}
        #: SECC endpoints SDP announced: a connection to one is V2G even when it cannot be read
        self.seccs: set[Endpoint] = set()
        self.ev_macs: set[str] = set()
        self.evse_macs: set[str] = set()
        self.last = 0.0

    def emit(self, at: float, layer: Layer, name: str, summary: str, **fields: Any) -> None:
        self.clock.now = at
        self.recorder.emit(layer, name, summary, observer=OBSERVER, **fields)

    def packet(self, packet: Packet) -> None:
        self.summary.packets += 1
        self.clock.now = self.last = packet.at
        frame = packet.ethernet
        if frame is not None and slac_frames.mmtype_of(frame) is not None:
            self._slac(packet, frame)
            return
        segment = dissect(packet)
        if segment is None:
            return
        if segment.protocol == UDP:
            if SDP_PORT in (segment.sport, segment.dport):
                self._sdp(packet, segment.payload, segment.src, segment.sport == SDP_PORT)
            return
        for output in self.tcp.feed(packet.at, segment):
            self._tcp(output)

    def finish(self) -> None:
        for output in self.tcp.finish(self.last):
            self._tcp(output)

    # -- SLAC ----------------------------------------------------------------------------------

    def _slac(self, packet: Packet, frame: bytes) -> None:
        try:
            mme = slac_frames.parse(frame)
        except slac_frames.FrameError as exc:
            self.emit(packet.at, Layer.SLAC, "MalformedMme", f"frame {packet.number}: {exc}",
                      payload={"frame": frame.hex().upper(), "number": packet.number})
            return
        if mme is None:
            return  # a vendor MME (modem management), not part of matching
        sender = slac_frames.SENDER.get(mme.name)
        if sender == "ev":
            self.ev_macs.add(mme.src)
        elif sender == "evse":
            self.evse_macs.add(mme.src)
        src = sender or self._host(mme.src)
        dst = "modem" if mme.name == "CM_SET_KEY.REQ" else ("broadcast" if mme.dst == slac_frames.BROADCAST
                                                            else self._host(mme.dst))
        ev_mac = mme.src if src == "ev" else mme.dst if dst == "ev" else None
        evse_mac = mme.src if src == "evse" else mme.dst if dst == "evse" else None
        run_id = mme.run_id
        keys = {"run_id": run_id.hex().upper() if run_id else None, "ev_mac": ev_mac, "evse_mac": evse_mac}
        self.emit(packet.at, Layer.SLAC, mme.name, f"{mme.name} {mme.src} -> {mme.dst} [frame {packet.number}]",
                  src=src, dst=dst, payload={"frame": frame.hex().upper(), "src_mac": mme.src, "dst_mac": mme.dst,
                                             "number": packet.number}, keys=keys)
        if mme.name == "CM_SLAC_MATCH.CNF":
            fields = mme.body.VariableField
            ev, evse = str(fields.EVMAC), str(fields.EVSEMAC)
            nid = bytes(fields.NetworkID).hex().upper()
            self.emit(packet.at, Layer.SLAC, "SlacMatched", f"matched EV {ev} with EVSE {evse}, NID {nid}",
                      src="evse", dst="ev", payload={"nid": nid, "evse_mac": evse, "ev_mac": ev},
                      keys={"run_id": bytes(fields.RunID).hex().upper(), "ev_mac": ev, "evse_mac": evse})

    def _host(self, mac: str) -> str:
        return "ev" if mac in self.ev_macs else "evse" if mac in self.evse_macs else mac

    # -- SDP -----------------------------------------------------------------------------------

    def _sdp(self, packet: Packet, datagram: bytes, source: str, from_server: bool) -> None:
        raw = {"datagram": datagram.hex().upper(), "number": packet.number}
        kind = int.from_bytes(datagram[2:4], "big") if len(datagram) >= 8 else None
        try:
            if len(datagram) < 8 or datagram[0] != 0x01 or datagram[1] != 0xFE:
                raise SdpError(f"not a V2GTP header ({datagram[:8].hex()})")
            if kind == PayloadType.SDP_REQUEST:
                request = SdpRequest.parse(datagram[8:])
                self.emit(packet.at, Layer.SDP, "SdpRequest", f"SDP request from [{source}] for "
                          f"{'TLS' if request.tls else 'TCP'} [frame {packet.number}]", src="ev", dst="evse",
                          payload={**raw, "tls": request.tls})
                return
            if kind == PayloadType.SDP_RESPONSE:
                response = SdpResponse.parse(datagram[8:])
                self.seccs.add(Endpoint(response.address, response.port))
                self.emit(packet.at, Layer.SDP, "SdpResponse", f"SDP response: SECC at [{response.address}]:"
                          f"{response.port} ({'TLS' if response.tls else 'TCP'}) [frame {packet.number}]",
                          src="evse", dst="ev", payload={**raw, "address": response.address, "port": response.port,
                                                         "tls": response.tls},
                          keys={"secc": recording.endpoint_key(response.address, response.port)})
                return
            raise SdpError(f"payload type 0x{kind:04X} is not an SDP request or response" if kind is not None
                           else "too short for a V2GTP header")
        except SdpError as exc:
            self.emit(packet.at, Layer.SDP, "SdpMalformed", f"SDP datagram from [{source}]: {exc} "
                      f"[frame {packet.number}]", src="evse" if from_server else "ev", payload=raw)

    # -- TCP -----------------------------------------------------------------------------------

    def _tcp(self, output: streams.Output) -> None:
        connection = output.connection
        flow = self.flows.get(connection.number)
        if flow is None:
            flow = self.flows[connection.number] = _Flow(self, connection)
        if isinstance(output, streams.Data):
            flow.data(output.side, output.at, output.data)
        elif isinstance(output, streams.Gap):
            flow.problem(output.at, f"{output.side} sent {output.missing} bytes the capture does not have")
        elif isinstance(output, streams.Closed):
            flow.closed(output)
            self.summary.connections.append(flow.describe())
            del self.flows[connection.number]


class _Flow:
    """One TCP connection: TLS if it is, then V2G or OCPP."""

    def __init__(self, reader: _Reader, connection: streams.Connection) -> None:
        self.reader = reader
        self.connection = connection
        self.tls: TlsConnection | None = None
        self.app: _V2g | _Ocpp | None = None
        self.kind: str | None = None  # "v2g", "ocpp", "other"
        self.pending: list[TlsNote] = []  # TLS notes before the application is known
        self.problems: list[str] = []
        self.tls_summary = ""

    @property
    def name(self) -> str:
        return f"{self.connection.client} -> {self.connection.server}"

    def data(self, side: str, at: float, data: bytes) -> None:
        if self.kind is None and self.tls is None:
            if data[:1] == b"\x16" and data[1:2] == b"\x03":
                self.tls = TlsConnection(self.reader.keylog)
                if self.connection.server in self.reader.seccs:
                    self._start("v2g", at)
            else:
                self._identify(data, at)
        if self.tls is not None:
            for item in self.tls.feed(side, at, data):
                if isinstance(item, Plain):
                    if self.kind is None:
                        self._identify(item.data, item.at)
                    self._app(item.side, item.at, item.data)
                else:
                    self._tls_note(item)
        else:
            self._app(side, at, data)

    def _identify(self, data: bytes, at: float) -> None:
        if data[:2] == b"\x01\xfe":
            self._start("v2g", at)
        elif data[:4] in (b"GET ", b"HTTP"):
            self._start("ocpp", at)
        else:
            self.kind = "other"

    def _start(self, kind: str, at: float) -> None:
        self.kind = kind
        self.app = _V2g(self) if kind == "v2g" else _Ocpp(self)
        self.app.opened(self.connection.opened)
        for note in self.pending:
            self._tls_note(note)
        self.pending = []

    def _app(self, side: str, at: float, data: bytes) -> None:
        if self.app is not None:
            self.app.data(side, at, data)

    @property
    def layer(self) -> Layer:
        return Layer.OCPP if self.kind == "ocpp" else Layer.V2G

    def _tls_note(self, note: TlsNote) -> None:
        if note.name == "TlsHandshake":
            self.tls_summary = note.summary
        if note.name in ("TlsUnsupported", "TlsDecryptFailed", "TlsFraming"):
            self.problems.append(note.summary)
        if self.kind is None:
            self.pending.append(note)
            return
        src = self.app.role(note.side) if self.app is not None else note.side
        self.reader.emit(note.at, self.layer, note.name, f"{self.name}: {note.summary}", src=src,
                         payload=note.details or None, keys=self.app.keys() if self.app is not None else None)

    def problem(self, at: float, summary: str) -> None:
        self.problems.append(summary)
        self.reader.emit(at, self.layer if self.kind in ("v2g", "ocpp") else Layer.RIG, "CaptureGap",
                         f"{self.name}: {summary}", keys=self.app.keys() if self.app is not None else None)

    def closed(self, closed: streams.Closed) -> None:
        if self.kind is None and self.pending:
            # TLS that could not be read, to a server nobody announced: say what was seen of it
            self.kind = "other"
            for note in self.pending:
                self.reader.emit(note.at, Layer.RIG, note.name, f"{self.name}: {note.summary}", src=note.side,
                                 payload=note.details or None)
        if self.app is not None:
            self.app.closed(closed)
        unread = self.tls.unread() if self.tls is not None else None
        if unread is not None:
            self.problems.append(unread)
            self.reader.emit(closed.at, self.layer if self.kind in ("v2g", "ocpp") else Layer.RIG, "TlsNotDecrypted",
                             f"{self.name}: {unread}", keys=self.app.keys() if self.app is not None else None)
        self.reader.summary.problems += [f"{self.name}: {p}" for p in self.problems]

    def describe(self) -> str:
        what = {"v2g": "V2G", "ocpp": "OCPP", "other": "not V2G or OCPP", None: "no data"}[self.kind]
        tls = f" over {self.tls_summary}" if self.tls_summary else (" over TLS" if self.tls else "")
        detail = self.app.describe() if self.app is not None else ""
        return f"{self.name}: {what}{tls}{detail}" + (f" ({'; '.join(self.problems)})" if self.problems else "")


@dataclass
class _WireSession:
    """What the messages of one V2G connection have shown so far, as the EV's session keeps it
    (the attributes :func:`harness.v2g.recording.keys_of` reads)."""

    session_id: str | None = None
    evccid: str | None = None
    evse_id: str | None = None
    emaid: str | None = None
    protocol: sap.AppProtocol | None = None


class _V2g:
    def __init__(self, flow: _Flow) -> None:
        self.flow = flow
        self.readers = {side: V2gtpReader(max_payload=MAX_V2G_PAYLOAD) for side in (streams.CLIENT, streams.SERVER)}
        self.session = _WireSession()
        self.offered: dict[int, Any] = {}  # SchemaID -> namespace
        self.messages = 0
        self.secc = recording.endpoint_key(flow.connection.server.address, flow.connection.server.port)

    @staticmethod
    def role(side: str) -> str:
        return recording.EV if side == streams.CLIENT else recording.EVSE

    def keys(self) -> dict[str, str | None]:
        return {**recording.keys_of(self.session), "secc": self.secc}

    def opened(self, at: float) -> None:
        self.flow.reader.emit(at, Layer.V2G, "TcpConnected", f"EV {self.flow.connection.client} connected to "
                              f"SECC {self.flow.connection.server}", src=recording.EV, dst=recording.EVSE,
                              keys=self.keys())

    def data(self, side: str, at: float, data: bytes) -> None:
        for item in self.readers[side].feed(data):
            if isinstance(item, HeaderError):
                self.flow.problem(at, f"{self.role(side)}: V2GTP header refused: {item}")
                continue
            self._message(side, at, item.payload_type, item.payload)

    def _message(self, side: str, at: float, payload_type: int, payload: bytes) -> None:
        reader, ev = self.flow.reader, self.role(side) == recording.EV
        family = self.session.protocol.family if self.session.protocol is not None else None
        reader.clock.now = at
        try:
            schema, message = messages.decode(family, payload_type, payload)
        except exi.DecodeError as exc:
            recording.record_undecodable(reader.recorder, recording.peer_of(self.role(side)),
                                         Undecodable(payload, payload_type, str(exc)), self.session,
                                         observer=OBSERVER)
            self.flow.problems.append(f"a payload from the {self.role(side)} does not decode: {exc}")
            return
        name = messages.name_of(message)
        self._learn(name, message)
        self.messages += 1
        event = (Send if ev else Received)(name, message, payload, payload_type, schema)
        recording.record_message(reader.recorder, recording.EV, event, self.session, observer=OBSERVER,
                                 extra={"secc": self.secc})

    def _learn(self, name: str, message: dict) -> None:
        """The keys a message shows, kept as the EV's session keeps them."""
        body = messages.body_of(message) if isinstance(message, dict) else {}
        session = self.session
        if name == "supportedAppProtocolReq":
            offers = body.get("AppProtocol", [])
            for offer in offers if isinstance(offers, list) else [offers]:
                if isinstance(offer, dict) and isinstance(offer.get("SchemaID"), int):
                    self.offered[offer["SchemaID"]] = offer.get("ProtocolNamespace")
            return
        if name == "supportedAppProtocolRes":
            chosen = body.get("SchemaID")
            namespace = self.offered.get(chosen) if isinstance(chosen, int) else None
            session.protocol = next((p for p in sap.PROTOCOLS.values() if p.namespace == namespace), None)
            return
        session_id = messages.session_id_of(message)
        if session_id and not messages.is_zero_session(session_id):
            session.session_id = session_id
        if name == "SessionSetupReq":
            session.evccid = body.get("EVCCID", session.evccid)
        elif name == "SessionSetupRes":
            session.evse_id = body.get("EVSEID", session.evse_id)
        elif name == "PaymentDetailsReq" and isinstance(body.get("eMAID"), str):
            session.emaid = body["eMAID"]
        elif name == "AuthorizationReq" and isinstance(body.get("PnC_AReqAuthorizationMode"), dict):
            chain = body["PnC_AReqAuthorizationMode"].get("ContractCertificateChain")
            try:
                session.emaid = pnc.common_name(pnc.chain_from_json(chain, "ContractCertificateChain")[0])
            except (pnc.CertificateDataError, TypeError, KeyError, IndexError):
                pass

    def closed(self, closed: streams.Closed) -> None:
        for side, reader in self.readers.items():
            if reader.pending:
                self.flow.problem(closed.at, f"{self.role(side)} sent {reader.pending} bytes of a V2GTP message "
                                             "that did not end before the connection closed")
        self.flow.reader.emit(closed.at, Layer.V2G, "TcpClosed", f"{self.flow.name}: {_how(closed, self.role)}",
                              src=self.role(closed.side), keys=self.keys())

    def describe(self) -> str:
        protocol = self.session.protocol.key if self.session.protocol else "no protocol agreed"
        return f", {self.messages} messages, {protocol}, SessionID {self.session.session_id or '-'}"


class _Ocpp:
    CSMS, STATION = "csms", "evse"

    def __init__(self, flow: _Flow) -> None:
        self.flow = flow
        self.websocket = WebSocketStream()
        self.version: OcppVersion | None = None
        self.station_id = ""
        #: calls waiting for their answer, by (side that called, message id): (action, payload)
        self.pending: dict[tuple[str, str], tuple[str, Any]] = {}
        self.frames = 0

    def role(self, side: str) -> str:
        return self.STATION if side == streams.CLIENT else self.CSMS

    def keys(self) -> dict[str, str]:
        return {"station_id": self.station_id} if self.station_id else {}

    def opened(self, at: float) -> None:
        pass  # the WebSocket handshake says who it is

    def data(self, side: str, at: float, data: bytes) -> None:
        for item in self.websocket.feed(side, at, data):
            if isinstance(item, Opening):
                self._opening(item)
            elif isinstance(item, Message):
                self._frame(item)
            elif isinstance(item, Control):
                if item.kind == "close":
                    self.flow.reader.emit(item.at, Layer.OCPP, "WebSocketClose", f"{self.role(item.side)} closes "
                                          f"the WebSocket: {item.code} {item.reason}".rstrip(),
                                          src=self.role(item.side), payload={"code": item.code, "reason": item.reason},
                                          keys=self.keys())
            elif isinstance(item, Problem):
                self.flow.problem(item.at, item.summary)

    def _opening(self, opening: Opening) -> None:
        self.station_id = opening.station_id
        self.version = OcppVersion.from_subprotocol(opening.chosen) if opening.chosen else None
        reader = self.flow.reader
        if opening.status != 101:
            reader.emit(opening.at, Layer.OCPP, "ConnectionRefused", f"{self.station_id} from "
                        f"{self.flow.connection.client}: HTTP {opening.status}", src=self.CSMS, dst=self.STATION,
                        payload={"status": opening.status, "path": opening.path}, keys=self.keys())
            return
        reader.emit(opening.at, Layer.OCPP, "Connected", f"{self.station_id} connected from "
                    f"{self.flow.connection.client} speaking {opening.chosen or 'no subprotocol'}",
                    src=self.STATION, dst=self.CSMS,
                    payload={"remote": str(self.flow.connection.client), "subprotocol": opening.chosen,
                             "offered": list(opening.offered), "basic_auth": opening.basic_auth}, keys=self.keys())
        if self.version is None:
            self.flow.problem(opening.at, f"subprotocol {opening.chosen!r} is no OCPP version the harness reads")

    def _frame(self, message: Message) -> None:
        if self.version is None:
            return
        self.frames += 1
        text = message.data.decode("utf-8", "replace") if message.text else message.data
        frame, problem = None, None
        try:
            frame = ocpp_frames.parse(text, self.version)
        except ocpp_frames.FrameError as exc:
            problem = exc
        action, extra = None, None
        if isinstance(frame, (ocpp_frames.Call, ocpp_frames.Send)):
            if isinstance(frame, ocpp_frames.Call):
                self.pending[(message.side, frame.message_id)] = (frame.action, frame.payload)
        elif frame is not None:
            other = streams.SERVER if message.side == streams.CLIENT else streams.CLIENT
            call = self.pending.pop((other, frame.message_id), None)
            if call is not None:
                action, extra = call[0], message_keys(*call)
        name, summary, body, keys = frame_event(frame, text, station_id=self.station_id, action=action,
                                                problem=problem, extra_keys=extra)
        self.flow.reader.emit(message.at, Layer.OCPP, name, summary, src=self.role(message.side),
                              dst=self.role(streams.SERVER if message.side == streams.CLIENT else streams.CLIENT),
                              payload=body, keys=keys)

    def closed(self, closed: streams.Closed) -> None:
        self.flow.reader.emit(closed.at, Layer.OCPP, "Disconnected", f"{self.station_id or self.flow.name}: "
                              f"{_how(closed, self.role)}", src=self.STATION, dst=self.CSMS, keys=self.keys())

    def describe(self) -> str:
        version = self.version.value if self.version else "unknown version"
        return f", station {self.station_id or '?'}, OCPP {version}, {self.frames} frames"


def _how(closed: streams.Closed, role) -> str:
    if closed.how == "end of capture":
        first = closed.connection.first_fin
        return "still open when the capture ended" + (f" ({role(first)} had sent FIN)" if first else "")
    return f"{'reset' if closed.how == 'rst' else 'closed'} by the {role(closed.side)}"
