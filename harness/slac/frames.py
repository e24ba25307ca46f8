"""SLAC frames: HomePlug Green PHY management messages (MMEs) as declarative scapy layers.

scapy.contrib.homepluggp has most SLAC messages; what it lacks is declared here in the same
style: CM_ATTEN_PROFILE.IND (scapy carries it under a vendor-ish name with the reserved byte
mislabelled), CM_VALIDATE.REQ/.CNF and CM_AMP_MAP.REQ/.CNF. Field layouts follow ISO 15118-3
Annex A (Tables A.3 to A.8) and the HomePlug Green PHY specification.

An MME on the wire: Ethernet header (ethertype 0x88E1), MMV (0x01 for the Green PHY MMEs of
ISO 15118-3), MMTYPE (little endian: base | REQ 0 / CNF 1 / IND 2 / RSP 3), FMI (2 bytes), body.
Frames are padded to the Ethernet minimum of 60 bytes (without FCS), as a NIC would.

:func:`parse` turns bytes into an :class:`Mme` or raises :class:`FrameError` naming what is wrong;
:func:`build` turns a body layer into frame bytes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from scapy.config import conf
from scapy.contrib import homepluggp as gp
from scapy.contrib.homeplugav import HomePlugAV
from scapy.fields import ByteField, FieldLenField, LEShortField, MACField, StrLenField
from scapy.layers.l2 import Ether
from scapy.packet import Packet, bind_layers, split_layers

from harness.trace import Layer

conf.verb = 0

ETH_P_HOMEPLUG_AV = 0x88E1
#: Green PHY MMEs of ISO 15118-3 carry MMV 0x01 (HomePlug AV 1.1)
MMV_GREEN_PHY = 0x01
ETHERNET_MIN = 60
BROADCAST = "ff:ff:ff:ff:ff:ff"
#: the address a QCA7000 answers local management messages on, whatever its own MAC
QCA_LOCAL_MAC = "00:b0:52:00:00:01"

#: CM_ATTEN_PROFILE.IND / CM_ATTEN_CHAR.IND carry one attenuation per carrier group
ATTEN_GROUPS = 58
#: CM_SLAC_MATCH.REQ / .CNF "MVFLength": bytes of the match variable field
MATCH_REQ_MVF_LENGTH = 0x3E
MATCH_CNF_MVF_LENGTH = 0x56

# -- the layers scapy lacks ----------------------------------------------------------------------


class CM_ATTEN_PROFILE_IND(Packet):
    """From an EVSE's own modem to its host, one per M-Sound heard: the attenuation per group."""

    name = "CM_ATTEN_PROFILE_IND"
    fields_desc = [MACField("PEVMAC", "00:00:00:00:00:00"),
                   FieldLenField("NumGroups", None, length_of="AAG", fmt="B"),
                   ByteField("Reserved", 0),
                   StrLenField("AAG", b"", length_from=lambda pkt: pkt.NumGroups)]


class CM_VALIDATE_REQ(Packet):
    """EV -> EVSE: optional validation by toggling the CP (SignalType 0x00 = CP toggling)."""

    name = "CM_VALIDATE_REQ"
    fields_desc = [ByteField("SignalType", 0x00),
                   ByteField("Timer", 0x00),  # toggle window in 100 ms units (0 in the first request)
                   ByteField("Result", 0x01)]  # 0x01: ready


class CM_VALIDATE_CNF(Packet):
    name = "CM_VALIDATE_CNF"
    fields_desc = [ByteField("SignalType", 0x00),
                   ByteField("ToggleNum", 0x00),
                   ByteField("Result", 0x00)]


#: CM_VALIDATE result codes
VALIDATE_NOT_READY, VALIDATE_READY, VALIDATE_SUCCESS, VALIDATE_FAILURE, VALIDATE_NOT_REQUIRED = range(5)


class CM_AMP_MAP_REQ(Packet):
    """Amplitude map: AMLEN carriers, 4 bits each (two per byte, low nibble first)."""

    name = "CM_AMP_MAP_REQ"
    fields_desc = [LEShortField("AMLEN", 0),
                   StrLenField("AMDATA", b"", length_from=lambda pkt: (pkt.AMLEN + 1) // 2)]


class CM_AMP_MAP_CNF(Packet):
    name = "CM_AMP_MAP_CNF"
    fields_desc = [ByteField("ResType", 0x00)]  # 0x00: success


# scapy binds 0x6086 to a layer whose reserved byte is called "NumberOfCarrierPerGroupe";
# CM_ATTEN_PROFILE.IND takes its place.
split_layers(HomePlugAV, gp.CM_ATTENUATION_CHARACTERISTICS_MME, HPtype=0x6086)
bind_layers(HomePlugAV, CM_ATTEN_PROFILE_IND, HPtype=0x6086)
bind_layers(HomePlugAV, CM_VALIDATE_REQ, HPtype=0x6078)
bind_layers(HomePlugAV, CM_VALIDATE_CNF, HPtype=0x6079)
bind_layers(HomePlugAV, CM_AMP_MAP_REQ, HPtype=0x601C)
bind_layers(HomePlugAV, CM_AMP_MAP_CNF, HPtype=0x601D)

# -- the message table ---------------------------------------------------------------------------

#: MMTYPE -> (name, body layer); the one place a SLAC message's code and layout live
MESSAGES: dict[int, tuple[str, type[Packet]]] = {
    0x6008: ("CM_SET_KEY.REQ", gp.CM_SET_KEY_REQ),
    0x6009: ("CM_SET_KEY.CNF", gp.CM_SET_KEY_CNF),
    0x601C: ("CM_AMP_MAP.REQ", CM_AMP_MAP_REQ),
    0x601D: ("CM_AMP_MAP.CNF", CM_AMP_MAP_CNF),
    0x6064: ("CM_SLAC_PARM.REQ", gp.CM_SLAC_PARM_REQ),
    0x6065: ("CM_SLAC_PARM.CNF", gp.CM_SLAC_PARM_CNF),
    0x606A: ("CM_START_ATTEN_CHAR.IND", gp.CM_START_ATTEN_CHAR_IND),
    0x606E: ("CM_ATTEN_CHAR.IND", gp.CM_ATTEN_CHAR_IND),
    0x606F: ("CM_ATTEN_CHAR.RSP", gp.CM_ATTEN_CHAR_RSP),
    0x6076: ("CM_MNBC_SOUND.IND", gp.CM_MNBC_SOUND_IND),
    0x6078: ("CM_VALIDATE.REQ", CM_VALIDATE_REQ),
    0x6079: ("CM_VALIDATE.CNF", CM_VALIDATE_CNF),
    0x607C: ("CM_SLAC_MATCH.REQ", gp.CM_SLAC_MATCH_REQ),
    0x607D: ("CM_SLAC_MATCH.CNF", gp.CM_SLAC_MATCH_CNF),
    0x6086: ("CM_ATTEN_PROFILE.IND", CM_ATTEN_PROFILE_IND),
}
CODES = {name: code for code, (name, _) in MESSAGES.items()}
#: the MMTYPEs of the SLAC exchange proper: modems carry them between hosts that are not (yet)
#: members of one logical network
SLAC_EXCHANGE = frozenset(CODES[n] for n in (
    "CM_SLAC_PARM.REQ", "CM_SLAC_PARM.CNF", "CM_START_ATTEN_CHAR.IND", "CM_ATTEN_CHAR.IND",
    "CM_ATTEN_CHAR.RSP", "CM_MNBC_SOUND.IND", "CM_VALIDATE.REQ", "CM_VALIDATE.CNF", "CM_SLAC_MATCH.REQ",
    "CM_SLAC_MATCH.CNF", "CM_AMP_MAP.REQ", "CM_AMP_MAP.CNF"))
#: who sends each MME in ISO 15118-3 matching (Figure 8 ff.): the EV's host, the EVSE's host, or a
#: modem to its own host; CM_SET_KEY.REQ goes from either host to its modem, and either side may
#: start an amplitude map exchange (CM_AMP_MAP)
SENDER: dict[str, str] = {
    "CM_SLAC_PARM.REQ": "ev", "CM_START_ATTEN_CHAR.IND": "ev", "CM_MNBC_SOUND.IND": "ev",
    "CM_ATTEN_CHAR.RSP": "ev", "CM_VALIDATE.REQ": "ev", "CM_SLAC_MATCH.REQ": "ev",
    "CM_SLAC_PARM.CNF": "evse", "CM_ATTEN_CHAR.IND": "evse", "CM_VALIDATE.CNF": "evse",
    "CM_SLAC_MATCH.CNF": "evse",
    "CM_SET_KEY.CNF": "modem", "CM_ATTEN_PROFILE.IND": "modem",
}
#: header bytes before an MME body: Ethernet (14) + MMV (1) + MMTYPE (2) + FMI (2)
HEADER_LENGTH = 19


def _fixed_length(layer: type[Packet]) -> int:
    return len(bytes(layer()))


#: the shortest body each message can have (variable parts counted separately in _body_length)
_MIN_BODY = {code: _fixed_length(layer) for code, (_, layer) in MESSAGES.items()}


class FrameError(ValueError):
    """A HomePlug AV frame that cannot be used; the message says which and why."""


@dataclass(frozen=True)
class Mme:
    """One received management message: addresses, type and the dissected body."""

    dst: str
    src: str
    mmtype: int
    name: str
    body: Packet
    raw: bytes

    def field(self, name: str) -> Any:
        return self.body.getfieldval(name)

    @property
    def run_id(self) -> bytes | None:
        if self.name.startswith(("CM_SLAC_MATCH",)):
            return bytes(self.body.VariableField.RunID)
        try:
            return bytes(self.body.getfieldval("RunID"))
        except AttributeError:
            return None

    def summary(self) -> str:
        return f"{self.name} {self.src} -> {self.dst}"


def build(body: Packet, *, dst: str, src: str) -> bytes:
    """Frame bytes for an MME body layer, padded to the Ethernet minimum."""
    frame = bytes(Ether(dst=dst, src=src, type=ETH_P_HOMEPLUG_AV) / HomePlugAV(version=MMV_GREEN_PHY) / body)
    return frame.ljust(ETHERNET_MIN, b"\x00")


def mmtype_of(data: bytes) -> int | None:
    """The MMTYPE of a HomePlug AV frame, without dissecting it; None for other frames."""
    if len(data) < HEADER_LENGTH - 2 or int.from_bytes(data[12:14], "big") != ETH_P_HOMEPLUG_AV:
        return None
    return int.from_bytes(data[15:17], "little")


def describe(frame: bytes) -> tuple[Layer, str, str] | None:
    """Layer, name and summary of a captured HomePlug AV frame (a dissector for
    :class:`harness.trace.pcap.LinkCapture`); None for any other ethertype."""
    mmtype = mmtype_of(frame)
    if mmtype is None:
        return None
    name = MESSAGES.get(mmtype, (f"MME 0x{mmtype:04X}", None))[0]
    return Layer.SLAC, name, f"{name} {_mac(frame[6:12])} -> {_mac(frame[0:6])}"


def parse(data: bytes) -> Mme | None:
    """Dissect a frame. None for frames that are not HomePlug AV or carry an MME this module does
    not know (vendor messages); :class:`FrameError` for a known MME that is cut short or broken."""
    mmtype = mmtype_of(data)
    if mmtype is None or mmtype not in MESSAGES:
        return None
    name, layer = MESSAGES[mmtype]
    if data[14] != MMV_GREEN_PHY:
        raise FrameError(f"{name}: MMV 0x{data[14]:02X}, ISO 15118-3 MMEs carry 0x{MMV_GREEN_PHY:02X}")
    body_bytes = data[HEADER_LENGTH:]
    need = _body_length(mmtype, body_bytes)
    if len(body_bytes) < need:
        raise FrameError(f"{name} from {_mac(data[6:12])}: body of {len(body_bytes)} bytes, needs {need}")
    try:
        body = layer(body_bytes[:need])
    except Exception as exc:  # scapy raises many kinds on broken input
        raise FrameError(f"{name} from {_mac(data[6:12])}: cannot be dissected ({exc})") from None
    return Mme(dst=_mac(data[0:6]), src=_mac(data[6:12]), mmtype=mmtype, name=name, body=body, raw=bytes(data))


def _body_length(mmtype: int, body: bytes) -> int:
    """Bytes the body of ``mmtype`` occupies, given its own length fields."""
    base = _MIN_BODY[mmtype]
    name = MESSAGES[mmtype][0]
    if name == "CM_ATTEN_CHAR.IND" and len(body) >= base:
        return base + body[base - 1]  # NumberOfGroups is the last fixed byte
    if name == "CM_ATTEN_PROFILE.IND" and len(body) >= base:
        return base + body[6]
    if name == "CM_AMP_MAP.REQ" and len(body) >= 2:
        return 2 + (int.from_bytes(body[0:2], "little") + 1) // 2
    return base


def _mac(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def mac_bytes(mac: str) -> bytes:
    return bytes(int(part, 16) for part in mac.split(":"))


# -- builders for the bodies, with the fixed values of ISO 15118-3 --------------------------------

def slac_parm_req(run_id: bytes) -> Packet:
    # APPLICATION_TYPE 0x00 (PEV-EVSE association), SECURITY_TYPE 0x00 (no security)
    return gp.CM_SLAC_PARM_REQ(ApplicationType=0, SecurityType=0, RunID=run_id)


def slac_parm_cnf(run_id: bytes, ev_mac: str, *, sounds: int, timeout_field: int) -> Packet:
    return gp.CM_SLAC_PARM_CNF(MSoundTargetMAC=BROADCAST, NumberMSounds=sounds, TimeOut=timeout_field,
                               ResponseType=0x01, ForwardingSTA=ev_mac, ApplicationType=0, SecurityType=0,
                               RunID=run_id)


def start_atten_char_ind(run_id: bytes, ev_mac: str, *, sounds: int, timeout_field: int) -> Packet:
    # RESP_TYPE 0x01: the results go to another GP station (the EV host at FORWARDING_STA)
    return gp.CM_START_ATTEN_CHAR_IND(ApplicationType=0, SecurityType=0, NumberOfSounds=sounds,
                                      TimeOut=timeout_field, ResponseType=0x01, ForwardingSTA=ev_mac, RunID=run_id)


def mnbc_sound_ind(run_id: bytes, countdown: int, random_value: bytes) -> Packet:
    # SenderID (17 bytes) and RSVD are zero
    return gp.CM_MNBC_SOUND_IND(ApplicationType=0, SecurityType=0, SenderID=b"\x00" * 17, Countdown=countdown,
                                RunID=run_id, RSVD=b"\x00" * 8, RandomValue=random_value)


def atten_char_ind(run_id: bytes, ev_mac: str, sounds: int, groups: list[int]) -> Packet:
    return gp.CM_ATTEN_CHAR_IND(ApplicationType=0, SecurityType=0, SourceAdress=ev_mac, RunID=run_id,
                                SourceID=b"\x00" * 17, ResponseID=b"\x00" * 17, NumberOfSounds=sounds,
                                Groups=[gp.HPGP_GROUP(group=g) for g in groups])


def atten_char_rsp(run_id: bytes, ev_mac: str, result: int = 0) -> Packet:
    return gp.CM_ATTEN_CHAR_RSP(ApplicationType=0, SecurityType=0, SourceAdress=ev_mac, RunID=run_id,
                                SourceID=b"\x00" * 17, ResponseID=b"\x00" * 17, Result=result)


def atten_profile_ind(ev_mac: str, groups: list[int]) -> Packet:
    return CM_ATTEN_PROFILE_IND(PEVMAC=ev_mac, AAG=bytes(groups))


def slac_match_req(run_id: bytes, ev_mac: str, evse_mac: str) -> Packet:
    # PEV ID and EVSE ID (17 bytes each) are zero in ISO 15118-3
    return gp.CM_SLAC_MATCH_REQ(ApplicationType=0, SecurityType=0, VariableField=gp.SLAC_varfield(
        EVID=b"\x00" * 17, EVMAC=ev_mac, EVSEID=b"\x00" * 17, EVSEMAC=evse_mac, RunID=run_id, RSVD=b"\x00" * 8))


def slac_match_cnf(run_id: bytes, ev_mac: str, evse_mac: str, nid: bytes, nmk: bytes) -> Packet:
    return gp.CM_SLAC_MATCH_CNF(ApplicationType=0, SecurityType=0, VariableField=gp.SLAC_varfield_cnf(
        EVID=b"\x00" * 17, EVMAC=ev_mac, EVSEID=b"\x00" * 17, EVSEMAC=evse_mac, RunID=run_id, RSVD=b"\x00" * 8,
        NetworkID=nid, Reserved=0, NMK=nmk))


def set_key_req(nid: bytes, nmk: bytes) -> Packet:
    # KeyType 0x01 (NMK, AES-128), nonces 0, PID 0x04 (HLE protocol), PRN/PMN 0, CCo capability 0,
    # NewEKS 0x01 (values of the ISO 15118-3 conformance templates)
    return gp.CM_SET_KEY_REQ(KeyType=0x01, MyNonce=0, YourNonce=0, PID=0x04, ProtoRunNumber=0, ProtoMessNumber=0,
                             CCoCapability=0, NetworkID=nid, NewEncKeySelect=0x01, NewKey=nmk)


#: CM_SET_KEY.CNF RESULT values that mean "key set": 0x00 is success in the HomePlug AV / Green PHY
#: specification, but Qualcomm's QCA700x firmware answers 0x01 on success, and SLAC software written
#: against those modems (open-plc-utils' evse and pev) takes 0x00 as "Device refused request". A host
#: that meets both kinds of modem cannot tell success from refusal by these two values.
SET_KEY_SUCCESS = (0x00, 0x01)


def set_key_cnf(result: int = 0, *, my_nonce: int = 0, your_nonce: int = 0, pid: int = 0x04, prn: int = 0,
                pmn: int = 0) -> Packet:
    return gp.CM_SET_KEY_CNF(Result=result, MyNonce=my_nonce, YourNonce=your_nonce, PID=pid, ProtoRunNumber=prn,
                             ProtoMessNumber=pmn, CCoCapability=0)


def validate_req(timer: int = 0, result: int = VALIDATE_READY) -> Packet:
    return CM_VALIDATE_REQ(SignalType=0x00, Timer=timer, Result=result)


def validate_cnf(toggles: int, result: int) -> Packet:
    return CM_VALIDATE_CNF(SignalType=0x00, ToggleNum=toggles, Result=result)


def amp_map_req(amplitudes: list[int]) -> Packet:
    data = bytearray((len(amplitudes) + 1) // 2)
    for index, value in enumerate(amplitudes):
        data[index // 2] |= (value & 0x0F) << (4 * (index % 2))
    return CM_AMP_MAP_REQ(AMLEN=len(amplitudes), AMDATA=bytes(data))


def amp_map_cnf(result: int = 0) -> Packet:
    return CM_AMP_MAP_CNF(ResType=result)


def nid_from_nmk(nmk: bytes, security_level: int = 0) -> bytes:
    """The NID of a network from its NMK (HomePlug AV 1.1 4.4.3.1, as the QCA tools compute it):
    SHA-256 applied five times, the first 7 bytes, the last byte's top 4 bits moved down and the
    security level in bits 4-5 of that byte; the two top bits stay 0 (a 54-bit NID)."""
    digest = nmk
    for _ in range(5):
        digest = hashlib.sha256(digest).digest()
    return digest[:6] + bytes([(digest[6] >> 4) | ((security_level & 0x03) << 4)])


def average_attenuation(groups: bytes | list[int]) -> float:
    """Mean attenuation in dB over the carrier groups of an ATTEN_PROFILE / ATTEN_CHAR."""
    values = list(groups)
    return sum(values) / len(values) if values else float("inf")


def groups_of(mme: Mme) -> list[int]:
    """The attenuation groups of a CM_ATTEN_CHAR.IND or CM_ATTEN_PROFILE.IND."""
    if mme.name == "CM_ATTEN_PROFILE.IND":
        return list(bytes(mme.body.AAG))
    return [g.group for g in mme.body.Groups]
