"""V2GTP over TCP and TLS, with asyncio: the thin I/O layer under the session machines.

The SECC listens (a plain TCP port and, when it has certificates, a TLS port whose context it
chooses per EV from the ClientHello, :class:`TlsListener`; SDP tells the EV which port); the EVCC
connects. Addresses are IPv6: link-local ones need the interface's scope
(``fe80::1%veth0``, or with the interface index, ``fe80::1%3``), the default emulated rig uses
``::1``. TLS contexts come from :mod:`harness.pki.tls`, with their NSS key log in the rig's run
directory.

Where a side's sockets come from is a parameter (:data:`SocketFactory`): on the netns rig the EV
and the EVSE live in network namespaces of their own, and a socket belongs to the namespace it
was made in (:meth:`harness.netns.Netns.socket`); everything else is the same as on a host's own
interface.
"""

from __future__ import annotations

import asyncio
import errno
import random
import socket
import ssl
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Protocol

from harness.pki.clienthello import (
    MAX_HELLO,
    ClientHello,
    ClientHelloError,
    alert_record,
    hello_length,
    parse_client_hello,
)
from harness.v2g.v2gtp import DEFAULT_MAX_PAYLOAD, HeaderError, V2gtpMessage, V2gtpReader, encode

#: where an SECC's TCP and TLS servers listen: the Dynamic Ports of IETF RFC 6335. The SDP response
#: names the SECC's port, V2G_DST_TCP_DATA, which ISO 15118-20 Table 10 (7.8.2, [V2G20-078]) and
#: ISO 15118-2 Table 15 place in this range (DIN SPEC 70121 follows -2); EVCCs refuse an SDP
#: response naming another port.
SECC_PORTS = range(49152, 65536)


class ConnectionClosed(Exception):
    pass


class SeccPortError(ValueError):
    """A port an SECC may not listen on, or none free in :data:`SECC_PORTS`."""


def check_secc_port(port: int, what: str = "SECC port") -> None:
    """Refuse an explicit SECC port outside :data:`SECC_PORTS` (0 means: pick one inside)."""
    if port != 0 and port not in SECC_PORTS:
        raise SeccPortError(f"{what} {port} is outside the dynamic ports {SECC_PORTS.start}-{SECC_PORTS.stop - 1} "
                            f"(IETF RFC 6335) that ISO 15118-20 [V2G20-078] / Table 10 and ISO 15118-2 Table 15 "
                            f"require of the SECC's port; EVs refuse an SDP response naming any other")


class SocketFactory(Protocol):
    """Makes a socket like :class:`socket.socket` (family, type, proto), wherever it belongs.
    The arguments are positional (socket.socket names the second ``type``, factories ``kind``)."""

    def __call__(self, family: int, kind: int, proto: int = 0, /) -> socket.socket: ...


class V2gConnection:
    """One TCP/TLS connection carrying V2GTP messages."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *,
                 accepted: frozenset[int] | None = None, max_payload: int = DEFAULT_MAX_PAYLOAD) -> None:
        self.reader = reader
        self.writer = writer
        self.parser = V2gtpReader(accepted, max_payload=max_payload)
        self._pending: list[V2gtpMessage | HeaderError] = []
        self.closed = False
        #: on a TLS server connection: what the client offered and what the server chose
        self.hello: ClientHello | None = None
        self.tls_choice: Any = None

    @property
    def peer(self) -> str:
        peer = self.writer.get_extra_info("peername")
        return f"[{peer[0]}]:{peer[1]}" if peer else "?"

    @property
    def local_port(self) -> int | None:
        sock = self.writer.get_extra_info("sockname")
        return sock[1] if sock else None

    @property
    def tls_version(self) -> str | None:
        ssl_object = self.writer.get_extra_info("ssl_object")
        return ssl_object.version() if ssl_object is not None else None

    @property
    def tls_cipher(self) -> str | None:
        ssl_object = self.writer.get_extra_info("ssl_object")
        cipher = ssl_object.cipher() if ssl_object is not None else None
        return cipher[0] if cipher else None

    @property
    def tls_peer_certificate(self) -> bytes | None:
        """The DER certificate the other side presented in the TLS handshake (None: none, or no TLS)."""
        ssl_object = self.writer.get_extra_info("ssl_object")
        return ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None

    def peer_certificate(self) -> bytes | None:
        ssl_object = self.writer.get_extra_info("ssl_object")
        return ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None

    async def receive(self, timeout: float | None = None) -> V2gtpMessage | HeaderError:
        """The next message or header problem; ConnectionClosed at the end of the stream,
        TimeoutError when ``timeout`` passes first. The time counts to the next *complete*
        message: bytes that trickle in without completing one do not extend it (the standards'
        sequence timers are between messages)."""
        deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout
        while not self._pending:
            if self.parser.broken:
                raise ConnectionClosed("framing lost")
            try:
                async with asyncio.timeout_at(deadline):
                    data = await self.reader.read(65536)
            except (TimeoutError, asyncio.TimeoutError):
                raise  # TimeoutError is an OSError: it must not read as a lost connection
            except (ConnectionError, ssl.SSLError, OSError) as exc:
                raise ConnectionClosed(f"{type(exc).__name__}: {exc}") from None
            if not data:
                raise ConnectionClosed("closed by the peer"
                                       + (f" ({self.parser.pending} bytes of a message cut off)"
                                          if self.parser.pending else ""))
            self._pending.extend(self.parser.feed(data))
        return self._pending.pop(0)

    async def send(self, payload_type: int, payload: bytes) -> None:
        await self.send_raw(encode(payload_type, payload))

    async def send_raw(self, data: bytes) -> None:
        if self.closed:
            raise ConnectionClosed("already closed")
        try:
            self.writer.write(data)
            await self.writer.drain()
        except (ConnectionError, ssl.SSLError, OSError) as exc:
            raise ConnectionClosed(f"{type(exc).__name__}: {exc}") from None

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self.writer.close()
            async with asyncio.timeout(2.0):
                await self.writer.wait_closed()
        except (ConnectionError, ssl.SSLError, OSError, TimeoutError, asyncio.TimeoutError):
            pass


Handler = Callable[[V2gConnection], Awaitable[None]]


@dataclass
class Listener:
    server: asyncio.base_events.Server
    port: int
    tls: bool

    async def close(self) -> None:
        self.server.close()
        try:
            async with asyncio.timeout(2.0):
                await self.server.wait_closed()
        except (TimeoutError, asyncio.TimeoutError):
            pass


#: a TLS handshake that did not complete: (peer, what the client offered or None, the choice or
#: None, why it failed)
TlsRefused = Callable[[str, "ClientHello | None", Any, str], None]


#: TLS handshakes one peer address may have open at once (TCP accepted, handshake not done)
MAX_PENDING_PER_PEER = 16


class TlsListener:
    """A TLS server that reads each client's ClientHello before it answers (without taking the
    bytes off the socket) and lets ``choose`` decide the context for that client: chain, versions,
    client authentication. Python's ssl can only decide that before the first byte."""

    def __init__(self, sock: socket.socket, handler: Handler, choose: Callable[[ClientHello], Any], *,
                 accepted: frozenset[int] | None, handshake_timeout: float, refused: TlsRefused | None) -> None:
        self.sock = sock
        self.port = sock.getsockname()[1]
        self.tls = True
        self.handler = handler
        self.choose = choose
        self.accepted = accepted
        self.handshake_timeout = handshake_timeout
        self.refused = refused
        self._connections: set[asyncio.Task] = set()
        #: connections in their handshake, per peer address
        self._pending: dict[str, int] = {}
        #: connections closed at once because their peer had MAX_PENDING_PER_PEER open already
        self.crowded = 0
        self.on_crowded: Callable[[str, int], None] | None = None
        self._crowded_told = float("-inf")
        self._accepting = asyncio.get_running_loop().create_task(self._accept())

    async def _accept(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                client, address = await loop.sock_accept(self.sock)
            except OSError:  # the listening socket closed
                return
            host = str(address[0])
            if self._pending.get(host, 0) >= MAX_PENDING_PER_PEER:
                # one address with this many handshakes open gets no more until they end: each
                # holds buffers, and a peer that never speaks would otherwise hold them all
                client.close()
                self.crowded += 1
                now = loop.time()
                if self.on_crowded is not None and now - self._crowded_told >= 1.0:
                    self._crowded_told = now  # told at most once a second, with the count so far
                    self.on_crowded(host, self.crowded)
                continue
            # counted here, not when its task first runs: the loop may accept a whole backlog
            # before running any of them
            self._pending[host] = self._pending.get(host, 0) + 1
            task = loop.create_task(self._serve(client, address))
            self._connections.add(task)
            task.add_done_callback(self._connections.discard)

    async def _serve(self, client: socket.socket, address: tuple) -> None:
        loop = asyncio.get_running_loop()
        peer = f"[{address[0]}]:{address[1]}"
        client.setblocking(False)
        hello: ClientHello | None = None
        choice: Any = None
        host = str(address[0])
        try:
            try:
                hello = parse_client_hello(await _peek_client_hello(client, self.handshake_timeout))
            except ClientHelloError as exc:
                raise _Refused(f"no ClientHello to answer: {exc}") from None
            choice = self.choose(hello)
            if choice.context is None:
                await _refuse(client, alert_record(choice.alert))
                raise _Refused(f"no TLS for what the client offers: {choice.why}")
            reader = asyncio.StreamReader(limit=2 ** 16)
            protocol = asyncio.StreamReaderProtocol(reader)
            try:
                transport, _ = await loop.connect_accepted_socket(
                    lambda: protocol, client, ssl=choice.context, ssl_handshake_timeout=self.handshake_timeout)
            except (ssl.SSLError, OSError, ConnectionError, TimeoutError, asyncio.TimeoutError) as exc:
                raise _Refused(f"TLS handshake failed: {_handshake_error(exc)}") from None
        except _Refused as exc:
            client.close()
            if self.refused is not None:
                self.refused(peer, hello, choice, str(exc))
            return
        finally:
            self._pending[host] -= 1
            if not self._pending[host]:
                del self._pending[host]
        writer = asyncio.StreamWriter(transport, protocol, reader, loop)
        connection = V2gConnection(reader, writer, accepted=self.accepted)
        connection.hello, connection.tls_choice = hello, choice
        try:
            await self.handler(connection)
        finally:
            await connection.close()

    async def close(self) -> None:
        self._accepting.cancel()
        self.sock.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(self._accepting, *self._connections, return_exceptions=True)


class _Refused(Exception):
    pass


async def _refuse(sock: socket.socket, alert: bytes) -> None:
    """Answer a ClientHello with a fatal alert and end the connection in order: read what the
    client sent (a close with unread bytes would be a reset, and the alert lost with it)."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(1.0):
            await loop.sock_sendall(sock, alert)
        sock.shutdown(socket.SHUT_WR)
        async with asyncio.timeout(1.0):
            while await loop.sock_recv(sock, 4096):
                pass
    except (OSError, TimeoutError, asyncio.TimeoutError):
        pass


def _handshake_error(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError):
        return exc.reason or exc.strerror or str(exc)
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        return "no complete handshake in time"
    return f"{type(exc).__name__}: {exc}"


async def _peek_client_hello(sock: socket.socket, timeout: float) -> bytes:
    """The ClientHello's bytes, read with MSG_PEEK so the TLS layer still finds them."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        ready: asyncio.Future[None] = loop.create_future()

        def wake(ready: asyncio.Future[None] = ready) -> None:
            if not ready.done():
                ready.set_result(None)

        loop.add_reader(sock.fileno(), wake)
        try:
            async with asyncio.timeout_at(deadline):
                await ready
        except (TimeoutError, asyncio.TimeoutError):
            raise ClientHelloError(f"no complete ClientHello within {timeout:g} s") from None
        finally:
            loop.remove_reader(sock.fileno())
        try:
            data = sock.recv(MAX_HELLO, socket.MSG_PEEK)
        except BlockingIOError:
            continue
        except OSError as exc:
            raise ClientHelloError(f"connection failed: {exc}") from None
        if not data:
            raise ClientHelloError("the client closed the connection")
        length = hello_length(data)
        if length is not None and len(data) >= length:
            return data[:length]
        if len(data) >= MAX_HELLO:
            raise ClientHelloError("ClientHello longer than the harness reads")
        # the rest is on its way; the socket stays readable with these bytes in it, so wait a little
        await asyncio.sleep(0.002)


async def listen_tls(host: str, port: int, handler: Handler, choose: Callable[[ClientHello], Any], *,
                     accepted: frozenset[int] | None = None, handshake_timeout: float = 10.0,
                     sockets: SocketFactory | None = None, refused: TlsRefused | None = None) -> TlsListener:
    """Accept TLS connections on ``host``/``port`` (as :func:`listen`); ``choose`` picks the
    context for each client from its ClientHello, ``refused`` hears of every handshake that did
    not complete and why."""
    return TlsListener(bind_secc_port(host, port, sockets), handler, choose, accepted=accepted,
                       handshake_timeout=handshake_timeout, refused=refused)


def split_scope(host: str) -> tuple[str, str | None]:
    """("fe80::1", "veth0") for "fe80::1%veth0"."""
    address, _, scope = host.partition("%")
    return address, scope or None


def scope_index(scope: str | None) -> int:
    """The interface index of a %scope: a number as it is, an interface name looked up (in the
    calling thread's network namespace)."""
    if not scope:
        return 0
    return int(scope) if scope.isdigit() else socket.if_nametoindex(scope)


def socket_address(host: str, port: int) -> tuple[str, int, int, int]:
    """The AF_INET6 socket address of ``host`` (an IPv6 address, %scope for link-local) and ``port``."""
    address, scope = split_scope(host)
    return address, port, 0, scope_index(scope)


async def listen(host: str, port: int, handler: Handler, *, accepted: frozenset[int] | None = None,
                 sockets: SocketFactory | None = None) -> Listener:
    """Accept plain TCP V2GTP connections on ``host`` (an IPv6 address, with %scope for
    link-local) and ``port``, one of :data:`SECC_PORTS` (0: a free one of them, chosen at random);
    ``sockets`` makes the listening socket (in the SECC's network namespace on the netns rig).
    TLS: :func:`listen_tls`."""

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = V2gConnection(reader, writer, accepted=accepted)
        try:
            await handler(connection)
        finally:
            await connection.close()

    sock = bind_secc_port(host, port, sockets)
    server = await asyncio.start_server(on_connect, sock=sock)
    return Listener(server, sock.getsockname()[1], False)


def bind_secc_port(host: str, port: int, sockets: SocketFactory | None = None) -> socket.socket:
    """A listening TCP socket on ``host`` and ``port`` (0: a free port of :data:`SECC_PORTS`)."""
    check_secc_port(port)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    make = sockets or socket.socket
    address = socket_address(host, 0) if family == socket.AF_INET6 else (host, 0)
    candidates = [port] if port else random.sample(SECC_PORTS, 64)
    for candidate in candidates:
        sock = make(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # asyncio sets TCP_NODELAY on TCP only
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((address[0], candidate, *address[2:]))
            sock.listen(100)
            sock.setblocking(False)
            return sock
        except OSError as exc:
            sock.close()
            if exc.errno != errno.EADDRINUSE or port:
                raise
    raise SeccPortError(f"no free port among {len(candidates)} tried in {SECC_PORTS.start}-{SECC_PORTS.stop - 1} "
                        f"on [{host}]")


class TlsHandshakeAborted(ConnectionError):
    """The TCP connection stood, and the peer dropped it during the TLS handshake (no alert):
    an SECC that cannot use its certificate with what the EV offered, for instance."""


async def connect(host: str, port: int, *, context: ssl.SSLContext | None = None, timeout: float = 10.0,
                  accepted: frozenset[int] | None = None, sockets: SocketFactory | None = None) -> V2gConnection:
    """Open a V2GTP connection to an SECC; ``host`` may carry %scope (link-local). No server name
    goes into the TLS handshake: an EV addresses the SECC by its IP address. ``sockets`` makes the
    connection's socket (in the EV's network namespace on the netns rig)."""
    opening = _open_from(sockets or socket.socket, host, port, context, timeout)
    async with asyncio.timeout(timeout):
        reader, writer = await opening
    return V2gConnection(reader, writer, accepted=accepted)


async def _open_from(sockets: SocketFactory, host: str, port: int, context: ssl.SSLContext | None,
                     timeout: float) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    sock = sockets(socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # TCP_NODELAY by asyncio
    try:
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, socket_address(host, port))
        # with a socket of its own asyncio wants a server name for TLS: the bare address, which ssl
        # does not send as SNI (an IP address)
        try:
            return await asyncio.open_connection(sock=sock, ssl=context,
                                                 server_hostname=split_scope(host)[0] if context else None,
                                                 ssl_handshake_timeout=timeout if context else None)
        except ConnectionError as exc:
            if context is None:
                raise
            raise TlsHandshakeAborted(f"the peer ended the connection during the TLS handshake "
                                      f"({type(exc).__name__}: it could not or would not complete it)") from exc
    except BaseException:
        sock.close()
        raise
