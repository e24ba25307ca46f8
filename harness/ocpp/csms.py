"""The mock CSMS: a real WebSocket server (``websockets``) speaking OCPP 1.6J, 2.0.1 and 2.1.

It negotiates the subprotocol, enforces the security profile, records every connection attempt,
TLS refusal and frame on the timeline, answers with :class:`CsmsBehaviour` unless a test scripted
otherwise, and lets tests call stations at any time. It can go offline and come back (close the
listener and every connection, then listen again on the same port), which is how offline
behaviour of a station is tested from the outside.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import hashlib
import http
import os
import socket
import ssl
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

from cryptography import x509
from cryptography.x509.oid import NameOID
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from harness.ocpp.behaviour import CsmsBehaviour
from harness.ocpp.endpoint import OcppEndpoint
from harness.ocpp.script import Script
from harness.ocpp.security import Decision, SecurityPolicy, decide, station_id_problem
from harness.ocpp.versions import OcppVersion, negotiate
from harness.trace import Layer, Recorder

#: participant names on the timeline
CSMS = "csms"
STATION = "evse"

DEFAULT_VERSIONS = (OcppVersion.V201, OcppVersion.V21, OcppVersion.V16)
#: the largest message a station may send (bytes)
MAX_MESSAGE = 1024 * 1024
#: seconds between the CSMS's WebSocket pings, and how long it waits for the pong
KEEPALIVE_S = 120.0
#: seconds a TLS handshake may take
TLS_HANDSHAKE_TIMEOUT_S = 10.0
#: seconds a connection has for its WebSocket upgrade (HTTP request and response)
UPGRADE_TIMEOUT_S = 10.0
#: connections one peer address may have in their handshake (TCP accepted, TLS or the WebSocket
#: upgrade not done) at once
MAX_PENDING_PER_PEER = 16


@dataclass
class StationSession:
    """A station connected right now."""

    station_id: str
    version: OcppVersion
    endpoint: OcppEndpoint
    remote: str
    connected_at: float
    tls: dict[str, Any] = field(default_factory=dict)
    #: a digest of what the station proved itself with (its Basic-auth header or its certificate)
    credential: str = ""


class MockCsms:
    def __init__(self, recorder: Recorder, *, host: str = "127.0.0.1", port: int = 0,
                 security: SecurityPolicy | None = None,
                 versions: Iterable[OcppVersion] = DEFAULT_VERSIONS,
                 behaviour: CsmsBehaviour | None = None, response_timeout: float = 30.0,
                 path_prefix: str = "/", keepalive: float | None = KEEPALIVE_S) -> None:
        self.recorder = recorder
        self.host = host
        self.port = port
        self.security = security or SecurityPolicy()
        self.versions = tuple(versions)
        self.behaviour = behaviour or CsmsBehaviour()
        self.script = Script()
        self.response_timeout = response_timeout
        self._crowded_count, self._crowded_at = 0, float("-inf")
        #: seconds between the CSMS's own WebSocket pings (None: none): a connection that does not
        #: answer one within as long again (a dead peer, one stuck in the middle of a frame) closes
        self.keepalive = keepalive
        self.path_prefix = "/" + path_prefix.strip("/") + ("/" if path_prefix.strip("/") else "")
        self.sessions: dict[str, StationSession] = {}
        self._server: Server | None = None
        self._accepted: dict[int, _ObservedConnection] = {}  # by file descriptor, until TLS is up
        self._changed = asyncio.Condition()

    def _emit(self, name: str | Layer, *args, **fields) -> None:
        # everything the mock CSMS records is what the CSMS observed
        self.recorder.emit(name, *args, observer=CSMS, **fields)

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._server is not None

    def charger_urls(self, station_id: str = "") -> list[str]:
        """The URLs a charger can use: for a wildcard listen address (0.0.0.0, ::) one per address
        of this host, the non-loopback ones first; ``station_id`` at the end (none: the prefix, to
        which the charger adds its id)."""
        if self.host not in ("0.0.0.0", "::", ""):
            return [self.url(station_id)]
        addresses = host_addresses(ipv6=self.host == "::")
        return [self.url(station_id, host=address) for address in addresses] or [self.url(station_id)]

    def url(self, station_id: str = "", *, host: str | None = None, scheme: str | None = None) -> str:
        host = host or self.host
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return (f"{scheme or self.security.scheme}://{host}:{self.port}{self.path_prefix}"
                f"{urllib.parse.quote(station_id)}")

    async def start(self) -> None:
        if self._server is not None:
            return
        context = self.security.ssl_context()
        if context is not None:
            _record_tls_refusals(context, self._tls_refused)
        listener = _listening_socket(self.host, self.port, self._tls_not_established if context else None,
                                     self._accepted)
        listener.on_crowded = self._crowded
        # a TLS handshake that does not finish in time is dropped (asyncio's default is 60 s)
        handshake: dict[str, Any] = {"ssl_handshake_timeout": TLS_HANDSHAKE_TIMEOUT_S} if context is not None else {}
        self._server = await serve(
            self._serve_station, sock=listener, ssl=context,
            process_request=self._check_upgrade,
            select_subprotocol=self._select_subprotocol,
            # OCPP messages stay well below this (a NotifyReport of a large device model is some
            # hundred kB); anything larger is abuse and closes with 1009 before it is read
            max_size=MAX_MESSAGE,
            # the station keeps the connection alive (WebSocketPingInterval); the CSMS's own, far
            # rarer pings give every connection a deadline, also a silent or half-sent one
            ping_interval=self.keepalive, ping_timeout=self.keepalive,
            # the WebSocket upgrade must be done within this (TLS has its own deadline before it)
            open_timeout=UPGRADE_TIMEOUT_S,
            create_connection=self._connection_class(),
            **handshake,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._emit(Layer.OCPP, "CsmsListening", f"mock CSMS listening on {self.url()} "
                           f"(security profile {self.security.profile})", src=CSMS,
                           payload={"url": self.url(), "profile": self.security.profile,
                                    "versions": [v.value for v in self.versions]})

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close(close_connections=True)
        await server.wait_closed()
        self._emit(Layer.OCPP, "CsmsStopped", "mock CSMS stopped listening", src=CSMS)

    async def restart(self, security: SecurityPolicy | None = None) -> None:
        """Stop, change the security policy if given, and listen again on the same port."""
        await self.stop()
        if security is not None:
            self.security = security
        await self.start()

    # -- talking to stations --------------------------------------------------------------

    def session(self, station_id: str) -> StationSession:
        try:
            return self.sessions[station_id]
        except KeyError:
            raise LookupError(f"station {station_id!r} is not connected") from None

    async def wait_connected(self, station_id: str, timeout: float) -> StationSession:
        async with asyncio.timeout(timeout):
            async with self._changed:
                await self._changed.wait_for(lambda: station_id in self.sessions)
        return self.sessions[station_id]

    async def wait_disconnected(self, station_id: str, timeout: float) -> None:
        async with asyncio.timeout(timeout):
            async with self._changed:
                await self._changed.wait_for(lambda: station_id not in self.sessions)

    async def call(self, station_id: str, action: str, payload: dict[str, Any], *,
                   timeout: float | None = None, validate: bool = True) -> dict[str, Any]:
        """Send a CSMS-initiated CALL; the station's own calls keep being served meanwhile."""
        return await self.session(station_id).endpoint.call(action, payload, timeout=timeout, validate=validate)

    async def send_raw(self, station_id: str, text: str | bytes) -> None:
        await self.session(station_id).endpoint.send_raw(text)

    async def disconnect(self, station_id: str, *, abort: bool = False) -> None:
        await self.session(station_id).endpoint.disconnect(abort=abort)

    # -- the WebSocket upgrade ------------------------------------------------------------

    def _check_upgrade(self, connection: ServerConnection, request: Request) -> Response | None:
        remote = _remote(connection)
        path = urllib.parse.urlsplit(request.path).path
        segment = path.rstrip("/").rsplit("/", 1)[-1] if path.startswith(self.path_prefix) else ""
        problem = station_id_problem(segment)
        if problem is not None:
            status = http.HTTPStatus.NOT_FOUND if not segment else http.HTTPStatus.BAD_REQUEST
            return self._refuse(connection, "", remote, status, f"{problem} (path {path[:80]!r})")
        station_id = urllib.parse.unquote(segment)
        offered = _offered_subprotocols(request.headers)
        version = negotiate(offered, self.versions)
        if version is None:
            return self._refuse(connection, station_id, remote, http.HTTPStatus.BAD_REQUEST,
                                f"offered subprotocols {offered or 'none'}; this CSMS speaks "
                                f"{', '.join(v.subprotocol for v in self.versions)}")
        decision = decide(self.security, station_id, request.headers.get("Authorization"),
                          _client_cert_cn(connection))
        credential = _credential(connection, request.headers.get("Authorization"), self.security.profile)
        connected = self.sessions.get(station_id)
        if decision.accepted and connected is not None and connected.credential != credential:
            # auto-commissioning accepts any password, but not a second one for a connected station:
            # otherwise anyone could take a station's place (and its calls) by connecting under its id
            decision = Decision(False, 401, f"station {station_id!r} is connected with other credentials; a new "
                                            "connection for it must present those of the first")
        if not decision.accepted:
            response = self._refuse(connection, station_id, remote, http.HTTPStatus(decision.status), decision.reason)
            if decision.status == 401 and self.security.profile < 3:
                response.headers["WWW-Authenticate"] = 'Basic realm="OCPP", charset="UTF-8"'
            return response
        connection.ocpp_credential = credential  # type: ignore[attr-defined]
        connection.ocpp_station_id = station_id  # type: ignore[attr-defined]
        connection.ocpp_version = version  # type: ignore[attr-defined]
        connection.ocpp_notes = decision.notes  # type: ignore[attr-defined]
        return None

    def _select_subprotocol(self, connection: ServerConnection,
                            offered: Sequence[Subprotocol]) -> Subprotocol | None:
        version = negotiate(list(offered), self.versions)
        return Subprotocol(version.subprotocol) if version else None

    def _refuse(self, connection: ServerConnection, station_id: str, remote: str,
                status: http.HTTPStatus, reason: str) -> Response:
        self._emit(Layer.OCPP, "ConnectionRefused", f"refused {station_id or '?'} from {remote}: "
                           f"{status.value} {reason}", src=STATION, dst=CSMS,
                           payload={"status": status.value, "reason": reason, "remote": remote},
                           keys={"station_id": station_id} if station_id else None)
        return connection.respond(status, reason + "\n")

    def _connection_class(self) -> type[ServerConnection]:
        """Connections that report an opening handshake that never completed.

        With TLS 1.3 a client rejects the server's certificate only after the server has finished
        its side of the TLS handshake, so the refusal shows up while the WebSocket upgrade is
        awaited, not in the TLS layer.
        """
        csms = self

        class RecordingConnection(ServerConnection):
            observed: _ObservedConnection | None = None

            def connection_made(self, transport: Any) -> None:
                raw = transport.get_extra_info("socket")
                self.observed = csms._accepted.get(raw.fileno()) if raw is not None else None
                if self.observed is not None:
                    self.observed.established = True  # TLS is up (or not needed)
                super().connection_made(transport)

            async def handshake(self, *args: Any, **kwargs: Any) -> None:
                try:
                    await super().handshake(*args, **kwargs)
                except Exception as exc:
                    csms._upgrade_failed(self, exc)
                    raise
                finally:
                    # no longer in its handshake: it stops counting against its peer's limit
                    observed, self.observed = self.observed, None
                    if observed is not None:
                        observed.upgraded = True
                        if csms._accepted.get(observed.fileno()) is observed:
                            del csms._accepted[observed.fileno()]

        return RecordingConnection

    def _upgrade_failed(self, connection: ServerConnection, error: BaseException) -> None:
        cause = error.__cause__ or error.__context__
        if isinstance(cause, ssl.SSLError):
            self._tls_refused(cause, remote=_remote(connection))
            return
        self._emit(Layer.OCPP, "UpgradeFailed", f"opening handshake from {_remote(connection)} failed: {error!r}",
                   src=STATION, dst=CSMS, payload={"error": repr(error), "remote": _remote(connection)})

    def _crowded(self, peer: str) -> None:
        """A connection refused because its peer has too many in their handshake: recorded once
        per second at most, with how many were refused meanwhile."""
        now = asyncio.get_running_loop().time()
        self._crowded_count += 1
        if now - self._crowded_at < 1.0:
            return
        count, self._crowded_count, self._crowded_at = self._crowded_count, 0, now
        self._emit(Layer.OCPP, "ConnectionRefused", f"refused {count} connection(s) from {peer}: it has "
                   f"{MAX_PENDING_PER_PEER} in their handshake already", src=STATION, dst=CSMS,
                   payload={"remote": peer, "refused": count, "limit": MAX_PENDING_PER_PEER})

    def _tls_not_established(self, peer: str) -> None:
        self._emit(Layer.OCPP, "TlsNotEstablished", f"connection from {peer} closed before TLS was established",
                   src=STATION, dst=CSMS, payload={"remote": peer})

    def _tls_refused(self, error: ssl.SSLError, *, remote: str = "?") -> None:
        reason = error.reason or str(error)
        self._emit(Layer.OCPP, "TlsHandshakeFailed", f"TLS handshake refused: {reason}",
                           src=STATION, dst=CSMS, payload={"reason": reason, "error": str(error),
                                                           "library": error.library})

    # -- a connected station --------------------------------------------------------------

    async def _serve_station(self, connection: ServerConnection) -> None:
        station_id: str = connection.ocpp_station_id  # type: ignore[attr-defined]
        version: OcppVersion = connection.ocpp_version  # type: ignore[attr-defined]
        endpoint = OcppEndpoint(
            connection, version=version, station_id=station_id, local=CSMS, peer=STATION,
            recorder=self.recorder, response_timeout=self.response_timeout,
            handlers=lambda action: self.script.handler(action, self.behaviour.handler(action, version)))
        tls = _tls_info(connection)
        session = StationSession(station_id, version, endpoint, _remote(connection),
                                 asyncio.get_running_loop().time(), tls,
                                 credential=connection.ocpp_credential)  # type: ignore[attr-defined]
        previous = self.sessions.get(station_id)
        if previous is not None:
            # a station that reconnects (with the same credentials) replaces its old connection,
            # which is closed with a close frame saying why, not dropped
            self._emit(Layer.OCPP, "ConnectionReplaced", f"{station_id}: a new connection from {session.remote} "
                       f"replaces the one from {previous.remote}", src=STATION, dst=CSMS,
                       payload={"old": previous.remote, "new": session.remote}, keys={"station_id": station_id})
            await previous.endpoint.disconnect(code=1000, reason="replaced by a new connection of this station")
        self._emit(Layer.OCPP, "Connected", f"{station_id} connected from {session.remote} "
                           f"speaking {version.subprotocol}" + (f" over {tls['version']}" if tls else ""),
                           src=STATION, dst=CSMS,
                           payload={"remote": session.remote, "subprotocol": version.subprotocol, "tls": tls,
                                    "notes": list(connection.ocpp_notes),  # type: ignore[attr-defined]
                                    "at": _dt.datetime.now(_dt.timezone.utc).isoformat()},
                           keys={"station_id": station_id})
        async with self._changed:
            self.sessions[station_id] = session
            self._changed.notify_all()
        try:
            await endpoint.run()
        finally:
            async with self._changed:
                if self.sessions.get(station_id) is session:
                    del self.sessions[station_id]
                self._changed.notify_all()
            self._emit(Layer.OCPP, "Disconnected", f"{station_id} disconnected: {endpoint.close_reason}",
                               src=STATION, dst=CSMS, payload={"reason": endpoint.close_reason},
                               keys={"station_id": station_id})


def _offered_subprotocols(headers: Headers) -> list[str]:
    offered: list[str] = []
    for value in headers.get_all("Sec-WebSocket-Protocol"):
        offered.extend(token.strip() for token in value.split(",") if token.strip())
    return offered


def _remote(connection: ServerConnection) -> str:
    peer = connection.transport.get_extra_info("peername") if connection.transport else None
    return _format_peer(peer) if peer else "?"


def _credential(connection: ServerConnection, authorization: str | None, profile: int) -> str:
    """A digest of what a station proved itself with: its client certificate at profile 3, its
    Basic-auth header below (a digest, so no password is kept in memory or on the timeline)."""
    if profile == 3:
        ssl_object = connection.transport.get_extra_info("ssl_object") if connection.transport else None
        proof = (ssl_object.getpeercert(binary_form=True) or b"") if ssl_object is not None else b""
    else:
        proof = (authorization or "").encode("utf-8", "replace")
    return hashlib.sha256(proof).hexdigest()


def _client_cert_cn(connection: ServerConnection) -> str | None:
    ssl_object = connection.transport.get_extra_info("ssl_object") if connection.transport else None
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        return None
    names = x509.load_der_x509_certificate(der).subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else ""


def _tls_info(connection: ServerConnection) -> dict[str, Any]:
    ssl_object = connection.transport.get_extra_info("ssl_object") if connection.transport else None
    if ssl_object is None:
        return {}
    cipher = ssl_object.cipher()
    return {"version": ssl_object.version(), "cipher": cipher[0] if cipher else None,
            "client_certificate": bool(ssl_object.getpeercert(binary_form=True))}


def _record_tls_refusals(context: ssl.SSLContext, on_failure) -> None:
    """Have ``context`` report handshakes that fail with a TLS error (wrong certificate, TLS too
    old): asyncio only logs them in debug mode. The documented ``sslobject_class`` hook of the
    context is the place to see them."""

    class RecordingSSLObject(ssl.SSLObject):
        def do_handshake(self) -> None:
            try:
                super().do_handshake()
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                raise
            except ssl.SSLError as exc:
                on_failure(exc)
                raise

    context.sslobject_class = RecordingSSLObject


class _ObservedConnection(socket.socket):
    """An accepted TCP connection that reports, when it closes, whether TLS was ever established.

    A client that rejects the server's certificate may close the connection without a TLS alert;
    the server then sees no TLS error at all, only a connection that ended before the handshake
    did. This catches those too, with the peer's address.
    """

    peer: str = "?"
    host: str = ""
    on_unestablished: Callable[[str], None] | None = None
    registry: dict[int, "_ObservedConnection"] | None = None
    #: TLS is up (or not needed)
    established = False
    #: the WebSocket opening handshake is over (upgraded, or failed)
    upgraded = False

    def close(self) -> None:
        if self.registry is not None and self.registry.get(self.fileno()) is self:
            del self.registry[self.fileno()]
        callback, self.on_unestablished = self.on_unestablished, None
        if callback is not None and not self.established:
            callback(self.peer)
        super().close()


class _ObservedListener(socket.socket):
    """A listening socket whose accepted connections are :class:`_ObservedConnection`. A peer
    with :data:`MAX_PENDING_PER_PEER` connections still in their handshake (TLS, or the WebSocket
    upgrade, on every profile) gets no more: the new one is closed at once (``on_crowded`` hears
    of it)."""

    registry: dict[int, _ObservedConnection]
    on_unestablished: Callable[[str], None] | None  # None without TLS: nothing to establish
    on_crowded: Callable[[str], None] | None = None

    def accept(self) -> tuple[socket.socket, Any]:
        fd, address = self._accept()  # type: ignore[attr-defined]  # private, not in typeshed
        host = address[0] if isinstance(address, tuple) else str(address)
        pending = sum(1 for c in self.registry.values() if not c.upgraded and c.host == host)
        if pending >= MAX_PENDING_PER_PEER:
            os.close(fd)
            if self.on_crowded is not None:
                self.on_crowded(_format_peer(address))
            # asyncio's accept loop takes this as "nothing to accept now", quietly
            raise ConnectionAbortedError(f"{host} has {pending} connections in their handshake")
        connection = _ObservedConnection(self.family, self.type, self.proto, fileno=fd)
        connection.host = host
        connection.peer = _format_peer(address)
        connection.on_unestablished = self.on_unestablished
        connection.registry = self.registry
        self.registry[fd] = connection
        return connection, address


def _listening_socket(host: str, port: int, on_unestablished: Callable[[str], None] | None,
                      registry: dict[int, _ObservedConnection]) -> _ObservedListener:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named, so asyncio sets TCP_NODELAY on the accepted connections (it checks the
    # protocol): without it Nagle holds a small CALL behind an unacknowledged frame, ~40 ms on loopback
    listener = _ObservedListener(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    try:
        listener.bind((host, port))
        listener.listen(128)
    except OSError:
        listener.close()
        raise
    listener.setblocking(False)
    listener.registry = registry
    listener.on_unestablished = on_unestablished
    return listener


def _format_peer(address: Any) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(address)


def host_addresses(*, ipv6: bool = False) -> list[str]:
    """This host's addresses a charger could reach: IPv4 (and with ``ipv6`` global IPv6) of every
    interface that is up, loopback last."""
    import fcntl
    import ipaddress
    import struct

    found: list[str] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        for _, name in socket.if_nameindex():
            try:
                packed = fcntl.ioctl(probe.fileno(), 0x8915, struct.pack("256s", name[:15].encode()))  # SIOCGIFADDR
            except OSError:
                continue
            found.append(socket.inet_ntoa(packed[20:24]))
    if ipv6:
        try:
            lines = open("/proc/net/if_inet6").read().splitlines()
        except OSError:
            lines = []
        for line in lines:
            address = ipaddress.IPv6Address(int(line.split()[0], 16))
            if not address.is_link_local:
                found.append(str(address))
    unique = list(dict.fromkeys(found))
    return sorted(unique, key=lambda a: ipaddress.ip_address(a).is_loopback)
