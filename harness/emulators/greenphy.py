"""A HomePlug Green PHY modem (QCA7000-like) in software, speaking real frames.

A real modem sits between its host (Ethernet or SPI) and the power line. This one sits between two
interfaces: the *host side* (the peer of the host's interface) and the *line side* (a port of the
bridge that stands in for the power line, shared by every modem of the rig). It does what SLAC
needs from a modem:

- answers its host's CM_SET_KEY.REQ (sent to the modem's MAC or the QCA local address
  00:B0:52:00:00:01) with CM_SET_KEY.CNF and joins the network of that NID/NMK. How it answers
  is its firmware (:data:`FIRMWARES`): ``qualcomm`` (the default) as QCA700x modems do, RESULT
  0x01 for success and the request's nonces, PID, PRN and PMN echoed; ``homeplug`` as the HomePlug
  Green PHY text says, RESULT 0x00, YourNonce the request's MyNonce and a nonce of its own;
- carries the SLAC messages between hosts that are not in one network yet;
- for every CM_MNBC_SOUND.IND it hears on the line (an EVSE-side modem), hands the sound to its
  host followed by a CM_ATTEN_PROFILE.IND with the attenuation configured for the sending EV
  (per EV, so neighbouring chargers can be emulated: crosstalk);
- carries all other traffic (IPv6: SDP, V2GTP/TLS) only between modems with the same NID: the
  link is up once keys match, as on a real logical network (AVLN);
- with ``qualcomm`` firmware, answers the vendor messages lab tools identify a modem by
  (:mod:`harness.slac.vendor`): VS_SW_VER with its chip (QCA7000) and :data:`FIRMWARE_VERSION`,
  VS_NW_INFO with the network it joined and the modems it shares it with. A ``homeplug`` modem
  ignores them, as a modem of another make would.

Modems learn each other's network from beacons on the line side (local experimental ethertype
0x88B5; never forwarded to a host), sent when a key is set and answered by modems that do not know
the sender yet. :class:`GreenPhyModem` is the sans-IO core; :class:`ModemEmulator` runs it on
interfaces.
"""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass, field
from typing import Any, Union

from harness.netns import ETH_P_ALL
from harness.slac import frames as f
from harness.slac import vendor
from harness.slac.io import PACKET_OUTGOING, RawLink
from harness.trace import Layer, Recorder

ETH_P_BEACON = 0x88B5  # IEEE 802 local experimental ethertype 1
BEACON_MAGIC = b"HRN-GP-BEACON\x01"
QCA_OUI = "00:b0:52"
#: attenuation reported for an EV nobody configured, dB
DEFAULT_ATTENUATION_DB = 20.0
#: how a modem answers CM_SET_KEY.REQ (see the module docstring); the rig file's ``link.modem``
FIRMWARES = ("qualcomm", "homeplug")
#: what the emulated modem says in VS_SW_VER.CNF: a QCA7000, with a version that says what it is
FIRMWARE_VERSION = "MAC-QCA7000-0.0.0.0-HARNESS-EMULATOR"
QCA7000 = 0x22
#: the PHY rate the emulated modems report for each other (Mbit/s; Green PHY's is at most 10)
PHY_RATE = 9
#: a fixed ripple over the carrier groups (mean 0), so profiles look measured but average exactly
_RIPPLE = [((i * 7) % 5) - 2 for i in range(f.ATTEN_GROUPS)]
_RIPPLE[-1] -= sum(_RIPPLE)


class ModemRole(enum.StrEnum):
    EV = "ev"
    EVSE = "evse"


@dataclass(frozen=True)
class ToHost:
    frame: bytes
    name: str = ""


@dataclass(frozen=True)
class ToLine:
    frame: bytes
    name: str = ""


@dataclass(frozen=True)
class ModemNote:
    name: str
    summary: str
    payload: dict[str, Any] = field(default_factory=dict)


ModemOutput = Union[ToHost, ToLine, ModemNote]


def random_modem_mac() -> str:
    return QCA_OUI + ":" + ":".join(f"{b:02x}" for b in os.urandom(3))


class GreenPhyModem:
    """The modem's behaviour: frames from its host or from the line in, frames and notes out."""

    def __init__(self, *, role: ModemRole, mac: str | None = None, host_mac: str | None = None,
                 default_attenuation_db: float = DEFAULT_ATTENUATION_DB, firmware: str = "qualcomm") -> None:
        if firmware not in FIRMWARES:
            raise ValueError(f"modem firmware {firmware!r}: one of {', '.join(FIRMWARES)}")
        self.role = ModemRole(role)
        self.firmware = firmware
        self.mac = (mac or random_modem_mac()).lower()
        self.host_mac = host_mac.lower() if host_mac else None
        self.default_attenuation_db = default_attenuation_db
        #: attenuation by the sending EV host's MAC, dB
        self.attenuation: dict[str, float] = {}
        # a fresh modem is in a network of its own: a random key nobody else has
        self.nmk = os.urandom(16)
        self.nid = f.nid_from_nmk(self.nmk)
        #: other modems' hosts and the NID each is in, learned from beacons
        self.peers: dict[str, bytes] = {}
        #: other modems' own MACs, by their host's
        self.peer_modems: dict[str, str] = {}
        self.sounds_heard = 0
        #: the host set a network key (until then the modem is alone in a network of its own)
        self.keyed = False

    def set_attenuation(self, ev_host_mac: str, db: float) -> None:
        self.attenuation[ev_host_mac.lower()] = float(db)

    def attenuation_for(self, ev_host_mac: str) -> float:
        return self.attenuation.get(ev_host_mac.lower(), self.default_attenuation_db)

    @property
    def linked_hosts(self) -> list[str]:
        """Hosts on the line whose modems share this modem's network."""
        return [host for host, nid in self.peers.items() if nid == self.nid]

    # -- from the host ------------------------------------------------------------------------

    def from_host(self, frame: bytes) -> list[ModemOutput]:
        if len(frame) < 14:
            return []
        src = _mac(frame[6:12])
        if self.host_mac is None:
            self.host_mac = src
        dst = _mac(frame[0:6])
        if dst in (self.mac, f.QCA_LOCAL_MAC):
            return self._management(frame)
        return [ToLine(frame)]

    def _management(self, frame: bytes) -> list[ModemOutput]:
        request = vendor.parse(frame)
        if request is not None:
            return self._vendor(request)
        try:
            mme = f.parse(frame)
        except f.FrameError as exc:
            return [ModemNote("MalformedFrame", f"from the host: {exc}")]
        if mme is None:
            return [ModemNote("Unsupported", f"management message 0x{f.mmtype_of(frame) or 0:04X} not emulated")]
        reply_to = mme.src
        if mme.name == "CM_SET_KEY.REQ":
            nid, nmk = bytes(mme.body.NetworkID), bytes(mme.body.NewKey)
            changed = (nid, nmk) != (self.nid, self.nmk)
            self.nid, self.nmk = nid, nmk
            self.keyed = True
            out: list[ModemOutput] = [
                ToHost(f.build(self._set_key_cnf(mme.body), dst=reply_to, src=self.mac), "CM_SET_KEY.CNF"),
                ModemNote("KeySet", f"joined network NID {nid.hex().upper()}", {"nid": nid})]
            if changed:
                out.append(ToLine(self._beacon(reply=False), "beacon"))
                out += self._link_notes()
            return out
        if mme.name == "CM_AMP_MAP.REQ":
            return [ToHost(f.build(f.amp_map_cnf(0), dst=reply_to, src=self.mac), "CM_AMP_MAP.CNF")]
        return [ModemNote("Unsupported", f"{mme.name} to the modem is not emulated")]

    def _vendor(self, request: vendor.VendorMme) -> list[ModemOutput]:
        if self.firmware != "qualcomm":
            return [ModemNote("Unsupported", f"{request.name}: a {self.firmware} modem does not answer Qualcomm's "
                                             "vendor messages")]
        if request.mmtype == vendor.VS_SW_VER_REQ:
            version = vendor.SoftwareVersion(QCA7000, FIRMWARE_VERSION)
            return [ToHost(vendor.sw_ver_cnf(request.src, self.mac, version, request.body[:4]), "VS_SW_VER.CNF")]
        if request.mmtype == vendor.VS_NW_INFO_REQ:
            return [ToHost(vendor.nw_info_cnf(request.src, self.mac, self.networks(), request.mmv), "VS_NW_INFO.CNF")]
        return [ModemNote("Unsupported", f"{request.name} to the modem is not emulated")]

    def networks(self) -> list[vendor.Network]:
        """The logical network this modem is in, as VS_NW_INFO.CNF reports it: none until its host
        set a key; the EVSE's modem is the central coordinator (TEI 1), an EV's a station."""
        linked = [host for host in self.linked_hosts if host in self.peer_modems]
        if not linked and not self.keyed:
            return []
        cco = self.role is ModemRole.EVSE
        tei = 1 if cco else 2
        stations = tuple(vendor.Station(self.peer_modems[host], 2 if cco else 1, host, PHY_RATE, PHY_RATE)
                         for host in linked)
        cco_mac = self.mac if cco else (stations[0].mac if stations else "00:00:00:00:00:00")
        return [vendor.Network(self.nid, 0x01, tei, 2 if cco else 0, cco_mac, 1, stations)]

    def _set_key_cnf(self, request: Any) -> Any:
        run = dict(pid=request.PID, prn=request.ProtoRunNumber, pmn=request.ProtoMessNumber)
        if self.firmware == "qualcomm":
            return f.set_key_cnf(0x01, my_nonce=request.MyNonce, your_nonce=request.YourNonce, **run)
        return f.set_key_cnf(0x00, my_nonce=int.from_bytes(os.urandom(4), "big"), your_nonce=request.MyNonce, **run)

    # -- from the line ------------------------------------------------------------------------

    def from_line(self, frame: bytes) -> list[ModemOutput]:
        if len(frame) < 14:
            return []
        ethertype = int.from_bytes(frame[12:14], "big")
        if ethertype == ETH_P_BEACON:
            return self._on_beacon(frame)
        dst, src = _mac(frame[0:6]), _mac(frame[6:12])
        for_host = dst == self.host_mac or frame[0] & 0x01  # ours, or broadcast/multicast
        if not for_host or src == self.host_mac:
            return []
        mmtype = f.mmtype_of(frame)
        if mmtype == f.CODES["CM_MNBC_SOUND.IND"]:
            return self._on_sound(frame, src)
        if mmtype in f.SLAC_EXCHANGE:
            return [ToHost(frame)]
        if self.peers.get(src) == self.nid:
            return [ToHost(frame)]
        return []  # another network: a real modem could not decrypt it

    def _on_sound(self, frame: bytes, ev_host: str) -> list[ModemOutput]:
        out: list[ModemOutput] = [ToHost(frame, "CM_MNBC_SOUND.IND")]
        if self.role is ModemRole.EVSE and self.host_mac is not None:
            self.sounds_heard += 1
            db = self.attenuation_for(ev_host)
            groups = [max(0, min(255, round(db) + r)) for r in _RIPPLE]
            profile = f.build(f.atten_profile_ind(ev_host, groups), dst=self.host_mac, src=self.mac)
            out.append(ToHost(profile, "CM_ATTEN_PROFILE.IND"))
        return out

    def _beacon(self, *, reply: bool) -> bytes:
        host = f.mac_bytes(self.host_mac) if self.host_mac else b"\x00" * 6
        payload = BEACON_MAGIC + bytes([2 if reply else 1]) + host + f.mac_bytes(self.mac) + self.nid
        return (b"\xff" * 6 + f.mac_bytes(self.mac) + ETH_P_BEACON.to_bytes(2, "big") + payload).ljust(60, b"\x00")

    def _on_beacon(self, frame: bytes) -> list[ModemOutput]:
        payload = frame[14:]
        if not payload.startswith(BEACON_MAGIC) or len(payload) < len(BEACON_MAGIC) + 20:
            return []
        body = payload[len(BEACON_MAGIC):]
        kind, host, modem, nid = body[0], _mac(body[1:7]), _mac(body[7:13]), bytes(body[13:20])
        if modem == self.mac:
            return []
        known = self.peers.get(host)
        self.peers[host] = nid
        self.peer_modems[host] = modem
        out: list[ModemOutput] = []
        if kind == 1 and known is None:
            out.append(ToLine(self._beacon(reply=True), "beacon"))  # let a newcomer learn about us
        if known != nid:
            out += self._link_notes(host)
        return out

    def beacon(self) -> bytes:
        """An announcement to send when the modem comes up."""
        return self._beacon(reply=False)

    def _link_notes(self, host: str | None = None) -> list[ModemOutput]:
        hosts = [host] if host else list(self.peers)
        return [ModemNote("LinkUp" if self.peers.get(h) == self.nid else "LinkDown",
                          f"link to {h} {'up' if self.peers.get(h) == self.nid else 'down'} "
                          f"(NID {self.nid.hex().upper()})", {"peer_host": h, "nid": self.nid})
                for h in hosts]


def _mac(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


class ModemEmulator:
    """A :class:`GreenPhyModem` on a host-side and (optionally) a line-side interface."""

    def __init__(self, recorder: Recorder, host_side, line_side=None, *, role: ModemRole, name: str,
                 host_mac: str | None = None, default_attenuation_db: float = DEFAULT_ATTENUATION_DB,
                 firmware: str = "qualcomm") -> None:
        self.recorder = recorder
        self.host_side = host_side  # harness.slac.io.Endpoint
        self.line_side = line_side
        self.name = name
        self.core = GreenPhyModem(role=role, host_mac=host_mac, default_attenuation_db=default_attenuation_db,
                                  firmware=firmware)
        self._host: RawLink | None = None
        self._line: RawLink | None = None
        self.forwarded = {"to_host": 0, "to_line": 0}

    @property
    def mac(self) -> str:
        return self.core.mac

    def start(self) -> None:
        """Open both sides on the running loop and announce the modem on the line."""
        def from_host(data: bytes, kind: int) -> None:
            if kind != PACKET_OUTGOING:
                self._apply(self.core.from_host(data))

        def from_line(data: bytes, kind: int) -> None:
            if kind != PACKET_OUTGOING:
                self._apply(self.core.from_line(data))

        self._host = RawLink.open(self.host_side, ETH_P_ALL, on_frame=from_host)
        if self.line_side is not None:
            self._line = RawLink.open(self.line_side, ETH_P_ALL, on_frame=from_line)
            self._line.send(self.core.beacon())
        self.recorder.emit(Layer.SLAC, "ModemUp", f"modem {self.name} ({self.core.role}, {self.core.firmware} "
                           f"firmware) {self.mac} on {self.host_side}"
                           + (f" / line {self.line_side}" if self.line_side else ""),
                           src=self.name, observer=self.name,
                           payload={"mac": self.mac, "role": self.core.role, "firmware": self.core.firmware})

    def stop(self) -> None:
        for side in (self._host, self._line):
            if side is not None:
                side.close()
        self._host = self._line = None

    def set_attenuation(self, ev_host_mac: str, db: float) -> None:
        self.core.set_attenuation(ev_host_mac, db)
        self.recorder.emit(Layer.SLAC, "AttenuationSet", f"modem {self.name}: {db:g} dB for EV {ev_host_mac}",
                           src=self.name, observer=self.name, payload={"ev_mac": ev_host_mac, "db": db})

    def _apply(self, outputs: list[ModemOutput]) -> None:
        for output in outputs:
            try:
                if isinstance(output, ToHost) and self._host is not None:
                    self._host.send(output.frame)
                    self.forwarded["to_host"] += 1
                    if output.name in ("CM_SET_KEY.CNF", "CM_ATTEN_PROFILE.IND", "CM_AMP_MAP.CNF"):
                        self._record_sent(output)
                elif isinstance(output, ToLine) and self._line is not None:
                    self._line.send(output.frame)
                    self.forwarded["to_line"] += 1
                elif isinstance(output, ModemNote):
                    self.recorder.emit(Layer.SLAC, output.name, f"modem {self.name}: {output.summary}",
                                       src=self.name, observer=self.name, payload=output.payload)
            except OSError as exc:  # the interface went away under us (teardown): note it, go on
                self.recorder.emit(Layer.SLAC, "ModemSendFailed", f"modem {self.name}: {exc}", src=self.name,
                                   observer=self.name)

    def _record_sent(self, output: ToHost) -> None:
        mme = f.parse(output.frame)
        if mme is None:
            return
        summary = f"{mme.name} -> host {mme.dst}"
        if mme.name == "CM_ATTEN_PROFILE.IND":
            summary += f" ({f.average_attenuation(f.groups_of(mme)):.0f} dB for {mme.body.PEVMAC})"
        self.recorder.emit(Layer.SLAC, mme.name, summary, src=self.name, dst="host", observer=self.name,
                           payload={"frame": output.frame})
