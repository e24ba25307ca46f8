"""Qualcomm Atheros vendor-specific management messages (MMEs) that lab tools use to identify a
Green PHY modem: VS_SW_VER (chip and firmware version) and VS_NW_INFO (the networks the modem is
in and the stations it sees). QCA700x modems answer them; open-plc-utils' ``plctool -r`` and
``plctool -m`` send them.

On the wire (the HomePlug AV management header, then Qualcomm's OUI 00:B0:52; with MMV 0x01 the
header has the 2-byte fragment field, with MMV 0x00 it has none):

    | Ethernet (14) | MMV | MMTYPE (2, little-endian) | [FMI (2)] | OUI 00 B0 52 | body |

- VS_SW_VER.REQ 0xA000: an optional 4-byte cookie the answer repeats.
- VS_SW_VER.CNF 0xA001: status (0 = success), device id (:data:`DEVICES`), version length,
  the version text NUL-padded to 64 bytes, upgradeable flag, the cookie.
- VS_NW_INFO.REQ 0xA038: no body. A reply has the request's MMV and that MMV's layout:
- VS_NW_INFO.CNF 0xA039, MMV 0x00: the number of networks, then per network NID (7), SNID, the
  modem's TEI, its role (0 station, 1 proxy coordinator, 2 central coordinator), the CCo's MAC and
  TEI, the number of stations and per station its MAC, TEI, bridged MAC, TX and RX PHY rates
  (Mbit/s, one byte each);
- VS_NW_INFO.CNF 0xA039, MMV 0x01 (what ``plctool -m`` asks for): sub-version, reserved, data
  length (2), reserved, the number of networks, then per network NID (7), 2 reserved, SNID, TEI,
  4 reserved, role, CCo MAC and TEI, 3 reserved, the number of stations, 5 reserved, and per
  station its MAC, TEI, 3 reserved, bridged MAC, TX rate (2, little-endian), coupling, reserved,
  RX rate (2), 2 reserved.

Sans-IO: bytes in, :class:`SoftwareVersion` / :class:`NetworkInfo` out; :class:`VendorError`
names what is wrong with a reply that does not parse.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.slac.frames import ETH_P_HOMEPLUG_AV, QCA_LOCAL_MAC, mac_bytes

VS_SW_VER_REQ = 0xA000
VS_SW_VER_CNF = 0xA001
VS_NW_INFO_REQ = 0xA038
VS_NW_INFO_CNF = 0xA039
NAMES = {VS_SW_VER_REQ: "VS_SW_VER.REQ", VS_SW_VER_CNF: "VS_SW_VER.CNF", VS_NW_INFO_REQ: "VS_NW_INFO.REQ",
         VS_NW_INFO_CNF: "VS_NW_INFO.CNF"}
QUALCOMM_OUI = b"\x00\xb0\x52"
MMV_AV_1_0 = 0x00
MMV_AV_1_1 = 0x01
VERSION_FIELD = 64
#: device ids of VS_SW_VER.CNF (open-plc-utils and scapy name the same chips)
DEVICES = {0x01: "INT6000", 0x02: "INT6300", 0x03: "INT6400", 0x04: "AR7400", 0x05: "AR6405",
           0x20: "QCA7450/QCA7420", 0x21: "QCA6410/QCA6411", 0x22: "QCA7000"}
ROLES = {0: "station", 1: "proxy coordinator", 2: "central coordinator"}


class VendorError(ValueError):
    """A vendor MME that cannot be read; the message says which and why."""


@dataclass(frozen=True)
class VendorMme:
    dst: str
    src: str
    mmtype: int
    body: bytes
    mmv: int = MMV_AV_1_0

    @property
    def name(self) -> str:
        return NAMES.get(self.mmtype, f"VS 0x{self.mmtype:04X}")


@dataclass(frozen=True)
class SoftwareVersion:
    device_id: int
    version: str
    upgradeable: bool = False

    @property
    def device(self) -> str:
        return DEVICES.get(self.device_id, f"device 0x{self.device_id:02X}")


@dataclass(frozen=True)
class Station:
    mac: str
    tei: int
    bridged_mac: str = "ff:ff:ff:ff:ff:ff"
    tx_rate: int = 0
    rx_rate: int = 0


@dataclass(frozen=True)
class Network:
    nid: bytes
    snid: int
    tei: int
    role: int
    cco_mac: str
    cco_tei: int
    stations: tuple[Station, ...] = field(default_factory=tuple)


def _frame(mmtype: int, dst: str, src: str, body: bytes, mmv: int = MMV_AV_1_0) -> bytes:
    fmi = b"\x00\x00" if mmv == MMV_AV_1_1 else b""
    frame = (mac_bytes(dst) + mac_bytes(src) + ETH_P_HOMEPLUG_AV.to_bytes(2, "big") + bytes((mmv,))
             + mmtype.to_bytes(2, "little") + fmi + QUALCOMM_OUI + body)
    return frame.ljust(60, b"\x00")


def _header_length(mmv: int) -> int:
    return 14 + 1 + 2 + (2 if mmv == MMV_AV_1_1 else 0) + 3


def _mac(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def parse(frame: bytes) -> VendorMme | None:
    """A Qualcomm vendor MME, or None for any other frame."""
    if len(frame) < 20 or int.from_bytes(frame[12:14], "big") != ETH_P_HOMEPLUG_AV:
        return None
    mmv, mmtype = frame[14], int.from_bytes(frame[15:17], "little")
    end = _header_length(mmv)
    if mmv not in (MMV_AV_1_0, MMV_AV_1_1) or not 0xA000 <= mmtype <= 0xBFFF or frame[end - 3:end] != QUALCOMM_OUI:
        return None
    return VendorMme(_mac(frame[0:6]), _mac(frame[6:12]), mmtype, frame[end:], mmv)


def sw_ver_req(src: str, dst: str = QCA_LOCAL_MAC, cookie: bytes = b"") -> bytes:
    return _frame(VS_SW_VER_REQ, dst, src, cookie)


def sw_ver_cnf(dst: str, src: str, version: SoftwareVersion, cookie: bytes = b"") -> bytes:
    text = version.version.encode("ascii")[:VERSION_FIELD - 1] + b"\x00"
    body = (bytes((0x00, version.device_id, len(text))) + text.ljust(VERSION_FIELD, b"\x00")
            + bytes((1 if version.upgradeable else 0,)) + cookie[:4].ljust(4, b"\x00"))
    return _frame(VS_SW_VER_CNF, dst, src, body)


def parse_sw_ver_cnf(mme: VendorMme) -> SoftwareVersion:
    body = mme.body
    if mme.mmtype != VS_SW_VER_CNF:
        raise VendorError(f"{mme.name} from {mme.src} where VS_SW_VER.CNF was expected")
    if len(body) < 3:
        raise VendorError(f"VS_SW_VER.CNF from {mme.src}: {len(body)} bytes of body, status, device and length need 3")
    status, device, length = body[0], body[1], body[2]
    if status != 0:
        raise VendorError(f"VS_SW_VER.CNF from {mme.src}: status 0x{status:02X} (the modem refused)")
    if not 0 < length <= VERSION_FIELD or len(body) < 3 + length:
        raise VendorError(f"VS_SW_VER.CNF from {mme.src}: version length {length} does not fit {len(body) - 3} bytes")
    text = body[3:3 + length].split(b"\x00", 1)[0]
    upgradeable = len(body) > 3 + VERSION_FIELD and body[3 + VERSION_FIELD] == 1
    return SoftwareVersion(device, text.decode("ascii", "replace"), upgradeable)


def nw_info_req(src: str, dst: str = QCA_LOCAL_MAC, mmv: int = MMV_AV_1_1) -> bytes:
    return _frame(VS_NW_INFO_REQ, dst, src, b"", mmv)


def nw_info_cnf(dst: str, src: str, networks: list[Network], mmv: int = MMV_AV_1_1) -> bytes:
    data = bytearray()
    for network in networks:
        nid = network.nid[:7].ljust(7, b"\x00")
        if mmv == MMV_AV_1_1:
            data += nid + bytes(2) + bytes((network.snid, network.tei)) + bytes(4) + bytes((network.role,))
            data += mac_bytes(network.cco_mac) + bytes((network.cco_tei,)) + bytes(3)
            data += bytes((len(network.stations),)) + bytes(5)
        else:
            data += nid + bytes((network.snid, network.tei, network.role)) + mac_bytes(network.cco_mac)
            data += bytes((network.cco_tei, len(network.stations)))
        for station in network.stations:
            data += mac_bytes(station.mac) + bytes((station.tei,))
            if mmv == MMV_AV_1_1:
                data += bytes(3) + mac_bytes(station.bridged_mac) + station.tx_rate.to_bytes(2, "little") + bytes(2)
                data += station.rx_rate.to_bytes(2, "little") + bytes(2)
            else:
                data += mac_bytes(station.bridged_mac) + bytes((min(station.tx_rate, 255), min(station.rx_rate, 255)))
    if mmv == MMV_AV_1_1:
        listing = bytes((0, len(networks))) + data
        body = bytes((0, 0)) + len(listing).to_bytes(2, "little") + listing
    else:
        body = bytes((len(networks),)) + data
    return _frame(VS_NW_INFO_CNF, dst, src, body, mmv)


def parse_nw_info_cnf(mme: VendorMme) -> list[Network]:
    body = mme.body
    if mme.mmtype != VS_NW_INFO_CNF:
        raise VendorError(f"{mme.name} from {mme.src} where VS_NW_INFO.CNF was expected")
    where = f"VS_NW_INFO.CNF from {mme.src}"
    new = mme.mmv == MMV_AV_1_1
    network_size, station_size = (32, 24) if new else (18, 15)
    if len(body) < (6 if new else 1):
        raise VendorError(f"{where}: a body of {len(body)} bytes")
    count, offset = (body[5], 6) if new else (body[0], 1)
    networks = []
    for number in range(count):
        if len(body) < offset + network_size:
            raise VendorError(f"{where}: network {number + 1} cut short at byte {offset}")
        chunk = body[offset:offset + network_size]
        if new:
            nid, snid, tei, role = chunk[0:7], chunk[9], chunk[10], chunk[15]
            cco_mac, cco_tei, stations_count = _mac(chunk[16:22]), chunk[22], chunk[26]
        else:
            nid, snid, tei, role = chunk[0:7], chunk[7], chunk[8], chunk[9]
            cco_mac, cco_tei, stations_count = _mac(chunk[10:16]), chunk[16], chunk[17]
        offset += network_size
        stations = []
        for index in range(stations_count):
            if len(body) < offset + station_size:
                raise VendorError(f"{where}: station {index + 1} of network {number + 1} cut short at byte {offset}")
            item = body[offset:offset + station_size]
            if new:
                stations.append(Station(_mac(item[0:6]), item[6], _mac(item[10:16]),
                                        int.from_bytes(item[16:18], "little"), int.from_bytes(item[20:22], "little")))
            else:
                stations.append(Station(_mac(item[0:6]), item[6], _mac(item[7:13]), item[13], item[14]))
            offset += station_size
        networks.append(Network(bytes(nid), snid, tei, role, cco_mac, cco_tei, tuple(stations)))
    return networks
