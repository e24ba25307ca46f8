"""The roles of a rig, as the suites see them.

A suite talks to the EVSE under test only through these: the CSMS it connects to, the EV at its
plug, and what crosses the wires (the timeline). The same test therefore runs against the
reference EVSE on an emulated rig and against a real charger in a lab. Each role is activated in
order, made safe and deactivated in reverse order by :class:`harness.rig.Rig`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from harness.v2g.battery import Battery
from harness.emulators.ev import BasicEv
from harness.emulators.evse import EvseSettings, ReferenceEvse
from harness.ocpp import commands
from harness.ocpp.behaviour import CsmsBehaviour
from harness.ocpp.csms import MockCsms
from harness.ocpp.endpoint import CallTimeout, ConnectionLost, InvalidResponse, OcppCallFailed
from harness.ocpp.script import Script
from harness.ocpp.security import SecurityPolicy
from harness.ocpp.station import CsmsLink, StationIdentity
from harness.ocpp.transactions import TransactionView, transactions
from harness.pki.ocpp import CertificateFiles, OcppPki, generate_ocpp_pki
from harness.pki.tls import ocpp_client_context
from harness.trace import Event, Layer, TraceTimeout
from harness.verdicts import DutFailure, RigNotReady

if TYPE_CHECKING:
    from harness.rig.rig import Rig


class RoleUnavailable(Exception):
    """A test asked for something this rig cannot do (no EV, no operator...)."""


class Role:
    name = "role"

    def __init__(self, rig: "Rig") -> None:
        self.rig = rig

    async def activate(self) -> None:
        pass

    async def make_safe(self) -> None:
        pass

    async def deactivate(self) -> None:
        pass

    def _record(self, name: str, summary: str, **payload: Any) -> None:
        self.rig.trace.emit(Layer.RIG, name, summary, src=self.name, payload=payload or None)


# -- CSMS ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CsmsTls:
    """The TLS material the mock CSMS uses and the deliberately wrong variants."""

    server: CertificateFiles
    station_ca: Path
    untrusted_server: CertificateFiles | None = None


class CsmsRole(Role):
    """The mock CSMS the EVSE under test connects to."""

    name = "csms"

    def __init__(self, rig: "Rig") -> None:
        super().__init__(rig)
        config = rig.config.csms
        self.config = config
        self.station_id = rig.config.evse.station_id
        self.behaviour = CsmsBehaviour(heartbeat_interval=config.heartbeat_interval, id_tokens=config.id_tokens,
                                       unknown_token_status=config.unknown_token_status)
        self.pki: OcppPki | None = None
        self.tls: CsmsTls | None = None
        self.server: MockCsms | None = None
        #: the policy of the rig file, which :meth:`restore` returns to after a test changed it
        self.default_policy: SecurityPolicy | None = None

    @property
    def script(self) -> Script:
        assert self.server is not None
        return self.server.script

    async def activate(self) -> None:
        self.tls = self._tls_material()
        self.default_policy = self.policy(self.rig.config.evse.ocpp.security_profile)
        self.server = MockCsms(self.rig.trace, host=self.config.host, port=self.config.port,
                               security=self.default_policy,
                               versions=self.config.versions, behaviour=self.behaviour,
                               response_timeout=self.rig.scaled(self.config.response_timeout),
                               path_prefix=self.config.path_prefix)
        await self.server.start()

    async def deactivate(self) -> None:
        if self.server is not None:
            await self.server.stop()

    def _tls_material(self) -> CsmsTls:
        configured = self.config.tls
        evse = self.rig.config.evse
        if configured is None or evse.kind == "emulated":
            # The emulated station and the mock CSMS share a generated PKI; a lab CSMS without
            # configured TLS still gets one so the "untrusted certificate" cases have material.
            self.pki = generate_ocpp_pki(self.rig.run_dir / "pki", station_ids=[evse.station_id],
                                         server_names=_server_names(self.config.host))
        if configured is not None:
            untrusted = self.pki.untrusted_server if self.pki else None
            return CsmsTls(CertificateFiles(configured.certificate, configured.key),
                           configured.ca or configured.certificate, untrusted)
        assert self.pki is not None
        return CsmsTls(self.pki.csms_server, self.pki.csms_root, self.pki.untrusted_server)

    def policy(self, profile: int, *, password: str | None = "configured", server: CertificateFiles | None = None,
               client_ca: Path | None = None, maximum_tls: ssl.TLSVersion | None = None,
               minimum_tls: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2) -> SecurityPolicy:
        """The security policy for ``profile``: by default what the rig file says; a test may
        demand another ``password``, present another ``server`` certificate, trust another
        ``client_ca`` or cap the TLS version."""
        assert self.tls is not None
        configured = self.rig.config.evse.ocpp.password
        if password == "configured":
            password = configured
        credentials = {self.station_id: password} if password is not None else None
        return SecurityPolicy(profile=profile, credentials=credentials,
                              server=(server or self.tls.server) if profile >= 2 else None,
                              client_ca=(client_ca or self.tls.station_ca) if profile == 3 else None,
                              minimum_tls=minimum_tls, maximum_tls=maximum_tls,
                              keylog=self.rig.run_dir / "tls-keys.log")

    # -- what tests do -------------------------------------------------------------------

    def url(self, station_id: str | None = None) -> str:
        assert self.server is not None
        return self.server.url(station_id or self.station_id)

    @property
    def connected(self) -> bool:
        return self.server is not None and self.station_id in self.server.sessions

    def wait_connected(self, timeout: float | None = None, *, expected: bool = True) -> None:
        """Wait until the EVSE is connected. Not connecting in time is the DUT's failure when a
        case expects it to come back (``expected``, an AssertionError), or, waiting for the DUT to
        be there at all (``expected=False``), a rig that cannot run cases (RigNotReady). Either
        way the message carries what the CSMS refused meanwhile (wrong id, password, TLS)."""
        timeout = timeout if timeout is not None else self.rig.config.evse.boot_timeout
        since = self.rig.trace.now()
        try:
            self.rig.run(self.server.wait_connected(self.station_id, timeout))  # type: ignore[union-attr]
        except TimeoutError:
            message = f"{self.station_id} did not connect to the CSMS at {self.url()} within {timeout:g} s"
            refused = list(dict.fromkeys(e.summary for e in self.refusals(since=since)))[-3:]
            message += f"; the CSMS refused meanwhile: {'; '.join(refused)}" if refused else \
                "; no connection attempt reached the CSMS"
            raise (AssertionError if expected else RigNotReady)(message) from None


    def wait_disconnected(self, timeout: float) -> None:
        try:
            self.rig.run(self.server.wait_disconnected(self.station_id, timeout))  # type: ignore[union-attr]
        except TimeoutError:
            raise AssertionError(f"{self.station_id} was still connected after {timeout:g} s") from None

    def call(self, action: str, payload: dict[str, Any], *, timeout: float | None = None,
             validate: bool = True) -> dict[str, Any]:
        """A CSMS-initiated call to the EVSE under test; returns its CALLRESULT payload."""
        return self.rig.run(self._call(action, payload, timeout, validate))

    def call_in_background(self, action: str, payload: dict[str, Any], *, timeout: float | None = None,
                           validate: bool = True) -> concurrent.futures.Future:
        """Start a CSMS-initiated call and return at once; ``.result()`` waits for the answer."""
        return self.rig.loop.submit(self._call(action, payload, timeout, validate))

    async def _call(self, action: str, payload: dict[str, Any], timeout: float | None, validate: bool) -> dict:
        assert self.server is not None
        try:
            return await self.server.call(self.station_id, action, payload, timeout=timeout, validate=validate)
        except (CallTimeout, InvalidResponse, ConnectionLost) as exc:
            # a valid CALL the DUT did not answer, or answered with what its schema forbids: the
            # DUT's failure (OCPP-J: every CALL gets a CALLRESULT or CALLERROR within the timeout)
            raise DutFailure(f"the charger under test: {exc}") from None

    def read_variable(self, component: str, variable: str, key_16: str) -> str | None:
        """A configuration value of the EVSE: the 2.x device-model variable, or on 1.6 its
        configuration key; None when the EVSE does not report it."""
        return commands.variable_value(self.call(*commands.get_variable(self.rig.evse.version, component, variable,
                                                                          key_16)))

    def write_variable(self, component: str, variable: str, key_16: str, value: str) -> bool:
        """Set a configuration value of the EVSE; whether it accepted."""
        return commands.variable_accepted(self.call(*commands.set_variable(self.rig.evse.version, component,
                                                                           variable, key_16, value)))

    def meter_value_interval(self) -> float:
        """The EVSE's transaction meter-value interval on this rig (its setting, scaled)."""
        value = self.read_variable("SampledDataCtrlr", "TxUpdatedInterval", "MeterValueSampleInterval")
        try:
            seconds = float(value) if value is not None else 0.0
        except ValueError:
            seconds = 0.0
        return self.rig.scaled(seconds if seconds > 0 else 60.0)

    def send_raw(self, text: str | bytes) -> None:
        assert self.server is not None
        self.rig.run(self.server.send_raw(self.station_id, text))

    def expect(self, action: str, *, timeout: float, since: float | None = None,
               where: Callable[[Mapping[str, Any]], bool] | None = None, kind: str = "CALL") -> Mapping[str, Any]:
        """Wait for the EVSE to send ``action`` (a CALL by default) and return its payload.
        ``where`` filters on the payload; ``since`` is a ``trace.now()`` mark."""
        event = self.wait_for_message(action, timeout=timeout, since=since, where=where, kind=kind)
        return event.payload.get("payload") or {}

    def wait_for_message(self, action: str, *, timeout: float, since: float | None = None,
                         where: Callable[[Mapping[str, Any]], bool] | None = None, kind: str = "CALL") -> Event:
        def match(event: Event) -> bool:
            body = event.payload
            body = body if isinstance(body, dict) else {}
            return (body.get("type") == kind and "violation" not in body
                    and (where is None or bool(where(body.get("payload") or {}))))

        return self.rig.trace.wait_for(timeout, layer=Layer.OCPP, name=action, src="evse", observer="csms",
                                       since=since, keys={"station_id": self.station_id}, where=match)

    def messages(self, action: str | None = None, *, since: float | None = None, kind: str | None = None,
                 transaction_id: str | None = None) -> list[Event]:
        """OCPP frames the CSMS exchanged with the EVSE, oldest first."""
        keys = {"station_id": self.station_id}
        if transaction_id is not None:
            keys["transaction_id"] = transaction_id
        events = self.rig.trace.select(layer=Layer.OCPP, observer="csms", name=action, since=since, keys=keys)
        return [e for e in events if kind is None or _frame_type(e) == kind]

    def transactions(self, *, since: float | None = None) -> list[TransactionView]:
        return transactions(self.rig.trace, station_id=self.station_id, since=since)

    def wait_transaction(self, *, timeout: float, since: float | None = None,
                         where: Callable[[TransactionView], bool] = lambda tx: True,
                         what: str = "a transaction") -> TransactionView:
        """The first transaction (begun since ``since``) for which ``where`` holds, waiting up to
        ``timeout`` seconds as the CSMS receives messages."""
        trace = self.rig.trace
        deadline = trace.now() + timeout
        while True:
            for tx in self.transactions(since=since):
                if where(tx):
                    return tx
            remaining = deadline - trace.now()
            if remaining <= 0:
                raise TraceTimeout(f"the CSMS did not see {what} within {timeout:g} s")
            try:  # wake up on the next frame the CSMS receives
                trace.wait_for(min(remaining, 1.0), layer=Layer.OCPP, observer="csms", since=trace.now())
            except TraceTimeout:
                pass

    def wait_charging(self, *, timeout: float, since: float | None = None) -> Event:
        """The EVSE reports energy transfer: 2.x chargingState Charging, 1.6 status Charging."""
        if self.rig.evse.version.value == "1.6":
            return self.wait_for_message("StatusNotification", timeout=timeout, since=since,
                                         where=lambda p: p.get("status") == "Charging")
        return self.wait_for_message("TransactionEvent", timeout=timeout, since=since,
                                     where=lambda p: p.get("transactionInfo", {}).get("chargingState") == "Charging")

    def restart(self, policy: SecurityPolicy | None = None) -> None:
        """Close every connection and listen again (with ``policy`` if given), as OCTT does."""
        assert self.server is not None
        self.rig.run(self.server.restart(policy))

    def go_offline(self) -> None:
        """Close the connection and accept no reconnect until :meth:`come_online` (OCTT's way
        of taking a station offline, e.g. TC_E_40_CS)."""
        assert self.server is not None
        self.rig.run(self.server.stop())

    def come_online(self, policy: SecurityPolicy | None = None) -> None:
        assert self.server is not None
        if policy is not None:
            self.server.security = policy
        self.rig.run(self.server.start())

    def refusals(self, *, since: float | None = None) -> list[Event]:
        """Connection attempts the CSMS refused (HTTP status or TLS handshake)."""
        return self.rig.trace.select(layer=Layer.OCPP, observer="csms", since=since,
                                     name=("ConnectionRefused", "TlsHandshakeFailed", "TlsNotEstablished"))

    async def ensure_listening(self) -> None:
        """Listening with the rig file's policy and no scripted rules."""
        assert self.server is not None
        self.server.script.clear()
        if not self.server.running or self.server.security != self.default_policy:
            await self.server.restart(self.default_policy)

    def restore(self) -> None:
        """Back to the rig file's behaviour: no scripted rules, the configured security policy,
        listening."""
        self.rig.run(self.ensure_listening())


def _frame_type(event: Event) -> str | None:
    """CALL, CALLRESULT or CALLERROR for an OCPP frame on the timeline (valid or not), else None."""
    body = event.payload
    return body.get("type") if isinstance(body, dict) else None


def _server_names(host: str) -> list[str]:
    names = ["localhost", "127.0.0.1", "::1"]
    if host not in names and host not in ("0.0.0.0", "::"):
        names.insert(0, host)
    return names


# -- EVSE ----------------------------------------------------------------------------------------

class EvseRole(Role):
    """The EVSE under test. Tests see its identity (from its BootNotification) and what it can
    be asked to do; an emulated EVSE additionally carries the emulator (``emulator``), which only
    the harness's own tests may touch."""

    name = "evse"

    def __init__(self, rig: "Rig") -> None:
        super().__init__(rig)
        self.config = rig.config.evse
        self.station_id = self.config.station_id
        self.version = self.config.ocpp.version
        self.security_profile = self.config.ocpp.security_profile
        self.emulator: ReferenceEvse | None = None

    @property
    def capabilities(self) -> frozenset[str]:
        """What the rig file says the charger offers, less what nothing on the rig can do: plugging
        in without an EV emulator or an operator, presenting a token at a lab charger without one."""
        capabilities = set(self.config.capabilities)
        operator = self.rig.operator
        if self.rig.config.ev.kind == "none" and not operator.can("plug_in"):
            capabilities.discard("ev")
        if self.config.kind == "lab" and not operator.can("present_token"):
            capabilities.discard("local_id_token")
        return frozenset(capabilities)

    @property
    def emulated(self) -> bool:
        return self.config.kind == "emulated"

    async def activate(self) -> None:
        if self.emulated:
            await self._start_emulator(self.security_profile)
        else:
            self._record("AwaitingDut", f"waiting for {self.station_id} to connect to {self.rig.csms.url()}")

    async def _start_emulator(self, profile: int, *, password: str | None = None,
                              client: CertificateFiles | None = None) -> None:
        csms = self.rig.csms
        assert csms.server is not None and csms.tls is not None
        config = self.config
        context = None
        if profile >= 2:
            trusted = config.ocpp.tls.ca if config.ocpp.tls and config.ocpp.tls.ca else None
            if trusted is None:
                assert csms.pki is not None, "an emulated station trusts the generated CSMS root"
                trusted = csms.pki.csms_root
            if profile == 3 and client is None:
                client = (CertificateFiles(config.ocpp.tls.certificate, config.ocpp.tls.key) if config.ocpp.tls
                          else csms.pki.stations[self.station_id])  # type: ignore[union-attr]
            context = ocpp_client_context(trusted, client_chain=client.chain if client else None,
                                          client_key=client.key if client else None)
        link = CsmsLink(url=csms.server.url(self.station_id, scheme="wss" if profile >= 2 else "ws"),
                        version=self.version,
                        password=(password or config.ocpp.password) if profile < 3 else None, ssl=context)
        # the emulated charger's identity is its own (its profile), not the rig file's expectation of
        # it, so OCPP-BOOT-004 compares two independent things
        from harness.rig.hlc import evse_profile

        settings = EvseSettings(
            station_id=self.station_id,
            identity=StationIdentity(*evse_profile(self.rig).identity),
            evse_count=config.evse_count, max_current=config.max_current, phases=config.phases,
            voltage=config.voltage)
        hlc = None
        if "iso15118" in config.capabilities:
            from harness.rig.hlc import emulated_evse_hlc

            hlc = emulated_evse_hlc(self.rig)
        self.emulator = ReferenceEvse(self.rig.trace, settings, link, self.rig.timers, hlc=hlc)
        await self.emulator.start()
        await self.rig.link.attach_evse(self.emulator)  # SLAC on connector 1 where the link has it

    async def make_safe(self) -> None:
        if self.emulator is not None:
            # long enough for a station to reconnect after its back-off and empty its queue
            await self.emulator.make_safe(timeout=self.rig.scaled(120.0) + 2.0)
            return
        await self._stop_open_transactions()

    async def _stop_open_transactions(self) -> None:
        """A real DUT: ask it to stop every transaction the CSMS still sees open."""
        csms = self.rig.csms
        if csms.server is None or self.station_id not in csms.server.sessions:
            return
        for tx in transactions(self.rig.trace, station_id=self.station_id):
            if tx.ended:
                continue
            action, payload = (("RemoteStopTransaction", {"transactionId": int(tx.transaction_id)})
                               if self.version.value == "1.6"
                               else ("RequestStopTransaction", {"transactionId": tx.transaction_id}))
            try:
                await csms.server.call(self.station_id, action, payload, timeout=30.0)
                self._record("TransactionStopped", f"teardown asked {self.station_id} to stop {tx.transaction_id}")
            except OcppCallFailed as exc:
                self._record("TransactionNotStopped", f"could not stop {tx.transaction_id}: {exc}")

    async def deactivate(self) -> None:
        if self.emulator is not None:
            await self.emulator.stop()
            self.emulator = None

    # -- what tests do -------------------------------------------------------------------

    def identity(self) -> dict[str, str] | None:
        """Vendor, model, serial number and firmware from the DUT's latest BootNotification."""
        return dut_identity(self.rig.trace, self.station_id)

    def present_id_token(self, token: str, evse_id: int = 1) -> str:
        """Present an RFID token at the charger and return the authorization status the CSMS gave
        it. Needs the ``local_id_token`` capability: the reference EVSE does it itself; at a lab
        charger the rig's operator does (a person or a command), and the status is what the CSMS
        answered the charger's Authorize (or 2.x TransactionEvent) for the token."""
        self.require("local_id_token")
        if self.emulator is not None:
            return self.rig.run(self.emulator.present_id_token(token, evse_id))
        mark = self.rig.trace.now()
        self.rig.operator.perform("present_token", connector=evse_id, token=token)
        return self._authorization_of(token, since=mark)

    def _authorization_of(self, token: str, *, since: float) -> str:
        """The status the CSMS answered for ``token`` (its id in Authorize or TransactionEvent)."""
        trace = self.rig.trace
        timeout = self.rig.scaled(30) + 10
        try:
            call = trace.wait_for(timeout, since=since, layer=Layer.OCPP, observer="csms", src="evse",
                                  name=("Authorize", "TransactionEvent", "StartTransaction"),
                                  keys={"id_token": token}, where=lambda e: _frame_type(e) == "CALL")
        except TraceTimeout:
            raise DutFailure(f"the charger sent no Authorize for the token {token} within {timeout:g} s of its "
                             f"presentation") from None
        answer = trace.wait_for(timeout, since=call.mono, layer=Layer.OCPP, observer="csms", src="csms",
                                keys={"message_id": call.keys.get("message_id")})
        result = (answer.payload or {}).get("payload") or {}
        info = result.get("idTagInfo") or result.get("idTokenInfo") or {}
        return str(info.get("status", "Accepted" if call.name == "TransactionEvent" else "?"))

    def reconfigure_security(self, profile: int, *, password: str | None = None,
                             client: CertificateFiles | None = None) -> None:
        """Put the EVSE on another security profile or credentials (an installer's job on a
        real charger; the reference EVSE restarts its station client)."""
        self.require("reconfigure_security")
        if self.emulator is None:
            raise RoleUnavailable("reconfiguring a real EVSE's security needs its installer tools")

        async def restart() -> None:
            assert self.emulator is not None
            await self.emulator.stop()
            await self._start_emulator(profile, password=password, client=client)
            # a restarted station boots anew; wait for its own registration, not an older one
            async with asyncio.timeout(self.config.boot_timeout):
                await self.emulator.station.registered.wait()

        self.rig.run(restart())
        self.security_profile = profile

    def wait_registered(self, timeout: float, *, expected: bool = True) -> None:
        """Wait until the EVSE is connected and its latest BootNotification was accepted
        (``expected``: see :meth:`CsmsRole.wait_connected`)."""
        self.rig.csms.wait_connected(timeout, expected=expected)
        trace = self.rig.trace

        def accepted(event: Event) -> bool:
            body = event.payload
            return (isinstance(body, dict) and body.get("type") == "CALLRESULT"
                    and (body.get("payload") or {}).get("status") == "Accepted")

        criteria = dict(layer=Layer.OCPP, name="BootNotification", observer="csms", src="csms",
                        keys={"station_id": self.station_id})
        last = trace.last(where=lambda e: _frame_type(e) == "CALLRESULT", **criteria)
        if last is not None and accepted(last):
            return
        if last is None:
            # no BootNotification answered in this run yet: a station accepted before (an earlier
            # run, another CSMS session) may reconnect without one, as OCPP-J allows; give it a moment
            # to boot, then take it as registered once it answers a harmless call (once per connection)
            connected = trace.last(layer=Layer.OCPP, name="Connected", observer="csms",
                                   keys={"station_id": self.station_id})
            if connected is not None and trace.last(layer=Layer.RIG, name="StationRegistered", src=self.name,
                                                    since=connected.mono) is not None:
                return
            grace = min(timeout, self.rig.scaled(10) + 2)
            try:
                trace.wait_for(grace, where=accepted, **criteria)
                return
            except TraceTimeout:
                pass
            problem = self.unresponsive(timeout)
            if problem is None:
                self._record("StationRegistered", f"{self.station_id} connected without a BootNotification and "
                                                  f"answers calls: taken as registered")
                return
            error = AssertionError if expected else RigNotReady
            raise error(f"{self.station_id} is connected but neither booted nor answered: {problem}")
        try:
            trace.wait_for(timeout, since=last.mono, where=accepted, **criteria)
        except TraceTimeout:
            status = ((last.payload or {}).get("payload") or {}).get("status")
            error = AssertionError if expected else RigNotReady
            raise error(f"{self.station_id}'s registration is {status} and no accepted BootNotification came "
                        f"within {timeout:g} s") from None

    def unresponsive(self, timeout: float | None = None) -> str | None:
        """Why the station is not responsive (it did not answer a harmless call), or None."""
        action, payload = commands.harmless(self.version)
        try:
            self.rig.csms.call(action, payload, timeout=timeout)
        except DutFailure as exc:
            return str(exc)
        except OcppCallFailed:  # a CALLERROR is an answer too
            return None
        return None

    def restore(self) -> None:
        """Back to the rig file's security settings (a test may have reconfigured them)."""
        if self.emulator is not None and self.emulator.hlc is not None:
            self.rig.run(self.emulator.hlc.restore())
        if self.emulator is not None and self.security_profile != self.config.ocpp.security_profile:
            self.reconfigure_security(self.config.ocpp.security_profile)

    def inject_v2g(self, *faults: Any) -> None:
        """Faults the reference EVSE commits in its next V2G sessions (harness.v2g.faults), for
        cases where the EV is under test; a real EVSE cannot be made to."""
        if self.emulator is None or self.emulator.hlc is None:
            raise RoleUnavailable("only the reference EVSE can be made to commit V2G faults")
        self.rig.run(self.emulator.hlc.inject(*faults))

    def require(self, capability: str) -> None:
        if capability not in self.capabilities:
            raise RoleUnavailable(f"the rig's EVSE does not offer {capability!r}")


def dut_identity(trace, station_id: str) -> dict[str, str] | None:
    """The identity a station gave in its latest BootNotification, in one shape for all versions."""
    event = trace.last(layer=Layer.OCPP, name="BootNotification", observer="csms", src="evse",
                       keys={"station_id": station_id},
                       where=lambda e: _frame_type(e) == "CALL" and "violation" not in e.payload)
    if event is None:
        return None
    body = event.payload.get("payload") or {}
    if "chargingStation" in body:
        station = body["chargingStation"]
        fields = {"vendor": station.get("vendorName"), "model": station.get("model"),
                  "serial_number": station.get("serialNumber"), "firmware_version": station.get("firmwareVersion")}
    else:
        fields = {"vendor": body.get("chargePointVendor"), "model": body.get("chargePointModel"),
                  "serial_number": body.get("chargePointSerialNumber") or body.get("chargeBoxSerialNumber"),
                  "firmware_version": body.get("firmwareVersion")}
    return {"station_id": station_id, **{k: v for k, v in fields.items() if v}}


# -- EV ------------------------------------------------------------------------------------------

class EvRole(Role):
    """The EV at the EVSE's plug: plug in, charge, stop, unplug."""

    name = "ev"

    def __init__(self, rig: "Rig") -> None:
        super().__init__(rig)
        self.config = rig.config.ev
        self.vehicle: BasicEv | None = None
        from harness.rig.hlc import HlcDriver

        #: the ISO 15118 EV (harness.rig.hlc): charge(), inject()
        self.hlc = HlcDriver(self)
        #: the connector the operator plugged into (a lab rig without an EV emulator)
        self._operator_plugged: int | None = None

    async def activate(self) -> None:
        if self.config.kind == "none":
            return
        battery = Battery(capacity_wh=self.config.capacity_kwh * 1000.0, soc=self.config.soc,
                          max_charge_w=self.config.max_charge_kw * 1000.0)
        self.vehicle = BasicEv(self.rig.trace, battery, max_current=self.config.max_current,
                               phases=self.config.phases)
        await self.hlc.activate()

    async def make_safe(self) -> None:
        if self.vehicle is not None and self.vehicle.plugged:
            await self.vehicle.unplug()
        await self.hlc.make_safe()

    def restore(self) -> None:
        """Unplugged, willing to charge, with the rig file's state of charge."""
        if self._operator_plugged is not None:
            self.unplug()
        if self.config.kind != "none":
            self.hlc.restore()
        if self.vehicle is not None:
            self.rig.run(self.make_safe())
            self.vehicle.wants_energy = True
            self.vehicle.battery.soc = self.config.soc

    def _need(self) -> BasicEv:
        if self.vehicle is None:
            raise RoleUnavailable("this rig has no EV")
        return self.vehicle

    def plug_in(self, evse_id: int = 1) -> None:
        if self.vehicle is None and self.rig.evse.emulator is None:
            # a lab charger without an EV emulator at its plug: the operator plugs a real EV or cable in
            self.rig.operator.perform("plug_in", connector=evse_id)
            self._operator_plugged = evse_id
            return
        vehicle = self._need()
        if self.hlc.plugged:
            raise RuntimeError("the ISO 15118 EV is plugged in; unplug it before plugging in the basic EV")
        emulator = self.rig.evse.emulator
        if emulator is None:
            raise RoleUnavailable("an emulated EV cannot reach a real charger: no pilot driver is part of the "
                                  "harness; let the rig's operator plug in (operator section of the rig file)")
        connector = emulator.connectors[evse_id]
        self.rig.run(vehicle.plug_in(connector.pilot, connector.line))

    def unplug(self) -> None:
        if self._operator_plugged is not None:
            connector, self._operator_plugged = self._operator_plugged, None
            self.rig.operator.perform("unplug", connector=connector)
            return
        if self.hlc.plugged:
            self.hlc.unplug()
            return
        self.rig.run(self._need().unplug())

    def charge(self, **options: Any):
        """One ISO 15118 session as the EV (see :meth:`harness.rig.hlc.HlcDriver.charge`):
        ``ev.charge(protocol="iso2", energy="AC", identification="EIM", tls=False)``."""
        self._need()
        return self.hlc.charge(**options)

    def stop_charging(self) -> None:
        """The EV stops taking energy (CP back to state B) but stays plugged."""
        self._need().wants_energy = False

    def resume_charging(self) -> None:
        self._need().wants_energy = True

    @property
    def soc(self) -> float:
        return self._need().battery.soc
