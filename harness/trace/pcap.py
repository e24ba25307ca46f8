"""Packet captures of the link: pcap files written from the harness's own raw socket.

:class:`LinkCapture` taps one interface (both directions, kernel timestamps) and writes every
frame to the run's capture file and, while a test case runs, to that case's file as well
(:meth:`LinkCapture.begin` / :meth:`LinkCapture.end`). SLAC frames (HomePlug AV) and SDP
datagrams (UDP 15118) are also put on the timeline with the file and frame number, so an event
leads to its frame in Wireshark. Beside each case's capture goes the part of the TLS key log
written while it ran (NSS key log format: Wireshark *TLS -> (Pre)-Master-Secret log filename*).

The files are classic pcap (nanosecond timestamps, link type Ethernet), which tshark, Wireshark
and scapy all read.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from harness.netns import packet_socket
from harness.pki.private import write_private
from harness.trace import Layer, Recorder

#: a protocol's describer of captured frames: (layer, name, summary) of a frame it knows, else None
Dissector = Callable[[bytes], "tuple[Layer, str, str] | None"]

PCAP_MAGIC_NS = 0xA1B23C4D
LINKTYPE_ETHERNET = 1
SNAPLEN = 262144
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
ETH_P_ALL = 0x0003


class PcapWriter:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("wb")
        self._file.write(struct.pack("<IHHiIII", PCAP_MAGIC_NS, 2, 4, 0, 0, SNAPLEN, LINKTYPE_ETHERNET))
        self.frames = 0

    def write(self, timestamp_ns: int, frame: bytes) -> int:
        """Append a frame; returns its number in the file (1-based, as Wireshark counts)."""
        seconds, nanos = divmod(timestamp_ns, 1_000_000_000)
        data = frame[:SNAPLEN]
        self._file.write(struct.pack("<IIII", seconds, nanos, len(data), len(frame)) + data)
        self.frames += 1
        return self.frames

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()


@dataclass(frozen=True)
class CaseCapture:
    pcap: Path
    keylog: Path | None
    frames: int


class LinkCapture:
    """A tap on one interface for the whole run, with a file per test case."""

    def __init__(self, recorder: Recorder, open_socket: Callable[[], socket.socket], run_file: Path, *,
                 where: str, keylog: Path | None = None, keep: Callable[[bytes, int], bool] | None = None,
                 dissectors: Sequence[Dissector] = ()) -> None:
        self.recorder = recorder
        #: the protocols' frame describers (:func:`harness.slac.frames.describe`,
        #: :func:`harness.v2g.sdp.describe`): what of the capture goes onto the timeline
        self.dissectors = tuple(dissectors)
        self._open_socket = open_socket
        self.where = where
        self.keylog = keylog
        self.keep = keep
        self.run_file = run_file
        self._run: PcapWriter | None = None
        self._case: PcapWriter | None = None
        self._case_keylog: tuple[Path, int] | None = None
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        """Open the tap (on the running loop)."""
        sock = self._open_socket()
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        sock.setblocking(False)
        self._sock = sock
        self._run = PcapWriter(self.run_file)
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(sock.fileno(), self._readable)
        self.recorder.emit(Layer.RIG, "CaptureStarted", f"capturing {self.where} to {self.run_file.name}",
                           src="capture", payload={"file": str(self.run_file)})

    def stop(self) -> None:
        if self._sock is not None:
            self._readable()  # what is still queued in the socket
            try:
                assert self._loop is not None
                self._loop.remove_reader(self._sock.fileno())
            except (ValueError, RuntimeError):
                pass
            self._sock.close()
            self._sock = None
        if self._case is not None:
            self.end()
        if self._run is not None:
            self._run.close()

    def begin(self, pcap: Path) -> None:
        """Start the file of a test case (closing one still open)."""
        if self._case is not None:
            self.end()
        self._case = PcapWriter(pcap)
        if self.keylog is not None:
            offset = self.keylog.stat().st_size if self.keylog.exists() else 0
            self._case_keylog = (pcap.with_suffix(".keys.log"), offset)

    def end(self) -> CaseCapture | None:
        """Close the case's file; its key log gets the TLS secrets written meanwhile."""
        if self._sock is not None:
            self._readable()
        case, self._case = self._case, None
        if case is None:
            return None
        case.close()
        keylog = None
        if self._case_keylog is not None:
            keylog, offset = self._case_keylog
            self._case_keylog = None
            secrets = b""
            if self.keylog is not None and self.keylog.exists():
                with self.keylog.open("rb") as source:
                    source.seek(offset)
                    secrets = source.read()
            write_private(keylog, secrets)
        return CaseCapture(case.path, keylog, case.frames)

    def _readable(self) -> None:
        sock = self._sock
        while sock is not None:
            try:
                data, ancillary, _, address = sock.recvmsg(65535, 64)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:  # the interface went away (teardown)
                break
            if self.keep is not None and not self.keep(data, address[2]):
                continue
            stamp = _timestamp_ns(ancillary)
            assert self._run is not None
            self._run.write(stamp, data)
            number = self._case.write(stamp, data) if self._case is not None else None
            self._timeline(data, self._case.path.name if self._case is not None else self.run_file.name,
                           number or self._run.frames)
        if self._run is not None:
            self._run.flush()

    def _timeline(self, frame: bytes, file: str, number: int) -> None:
        described = describe(frame, self.dissectors)
        if described is None:
            return
        layer, name, summary = described
        self.recorder.emit(layer, name, f"{summary} [{file} #{number}]", src="link", observer="capture",
                           payload={"pcap": file, "frame": number})


def _timestamp_ns(ancillary) -> int:
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
            seconds, nanos = struct.unpack("qq", data[:16])
            return seconds * 1_000_000_000 + nanos
    return time.time_ns()


def describe(frame: bytes, dissectors: Sequence[Dissector]) -> tuple[Layer, str, str] | None:
    """What the first dissector that knows ``frame`` says of it; None when none does."""
    for dissector in dissectors:
        described = dissector(frame)
        if described is not None:
            return described
    return None


def packet_tap(iface: str, netns=None) -> Callable[[], socket.socket]:
    """The socket factory of a tap on ``iface`` (inside ``netns``): every protocol, both ways."""
    def open_socket() -> socket.socket:
        sock, _ = packet_socket(iface, ETH_P_ALL, netns=netns)
        return sock

    return open_socket
