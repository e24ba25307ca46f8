"""The EVSE role: the charger under test, as the suites see it.

Tests see its identity (from its BootNotification), its registration, and what it can be asked to
do; what differs between kinds is in its driver:

- ``emulated`` (:class:`EmulatedEvse`): the reference EVSE (harness.emulators.evse), connected to
  the mock CSMS with the rig's security settings, its ISO 15118 side where the link puts it.
- ``lab`` (:class:`LabEvse`): a real charger; the harness waits for it to connect, asks the rig's
  operator to present tokens, and stops its transactions at teardown.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from harness.emulators.evse import Connector, EvseSettings, ReferenceEvse
from harness.ocpp import commands
from harness.ocpp.endpoint import OcppCallFailed
from harness.ocpp.station import CsmsLink, StationIdentity
from harness.ocpp.transactions import transactions
from harness.pki.ocpp import CertificateFiles
from harness.pki.tls import ocpp_client_context
from harness.rig.csms import dut_identity, frame_type
from harness.rig.drivers import offered_capabilities
from harness.rig.hlc import emulated_evse_hlc, evse_profile
from harness.rig.role import Driver, Role, RoleUnavailable
from harness.trace import Event, Layer, TraceTimeout
from harness.verdicts import DutFailure, RigNotReady

if TYPE_CHECKING:
    from harness.rig.rig import Rig


class EvseRole(Role):
    """The EVSE under test."""

    name = "evse"
    driver: "EvseDriver"

    def __init__(self, rig: "Rig", driver: type["EvseDriver"]) -> None:
        super().__init__(rig)
        self.config = rig.config.evse
        self.station_id = self.config.station_id
        self.version = self.config.ocpp.version
        self.security_profile = self.config.ocpp.security_profile
        self.driver = driver(self)

    @property
    def capabilities(self) -> frozenset[str]:
        """What the rig file says the charger offers, less what nothing on the rig can do
        (:func:`harness.rig.drivers.offered_capabilities`)."""
        return offered_capabilities(self.rig.config)

    @property
    def emulated(self) -> bool:
        """The EVSE is the harness's reference EVSE (it shares the run's PKI with the EV)."""
        return self.driver.emulated

    @property
    def emulator(self) -> ReferenceEvse | None:
        """The reference EVSE on an emulated rig (only the harness's own tests touch it)."""
        return self.driver.emulator

    def connector(self, evse_id: int = 1) -> Connector:
        """The connector an emulated EV plugs into (its pilot line and cable); a real charger's
        can only be reached through hardware (RoleUnavailable)."""
        return self.driver.connector(evse_id)

    def sdp_port(self) -> int | None:
        """The UDP port of the reference EVSE's SDP server (None: a real charger, which answers on
        15118 of the link)."""
        return self.driver.sdp_port()

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
        return self.driver.present_id_token(token, evse_id)

    def reconfigure_security(self, profile: int, *, password: str | None = None,
                             client: CertificateFiles | None = None) -> None:
        """Put the EVSE on another security profile or credentials (an installer's job on a
        real charger; the reference EVSE restarts its station client)."""
        self.require("reconfigure_security")
        self.driver.reconfigure_security(profile, password=password, client=client)
        self.security_profile = profile

    def power_cycle(self, off_s: float = 10.0) -> None:
        """Cut the charger's mains supply for ``off_s`` seconds of the standard (scaled on emulated
        rigs) and switch it on again: the rig's operator (a person, a command, a labgrid place's
        power port) at a lab charger; the reference EVSE drops its connection without a close
        frame and comes back as a fresh charger. Returns once the supply is back, not once the
        charger has booted."""
        self.require("power_cycle")
        self.driver.power_cycle(off_s)

    def inject_v2g(self, *faults: Any) -> None:
        """Faults the reference EVSE commits in its next V2G sessions (harness.v2g.faults), for
        cases where the EV is under test; a real EVSE cannot be made to."""
        self.driver.inject_v2g(*faults)

    def wait_registered(self, timeout: float, *, expected: bool = True) -> None:
        """Wait until the EVSE is connected and its latest BootNotification was accepted
        (``expected``: see :meth:`harness.rig.csms.CsmsRole.wait_connected`)."""
        self.rig.csms.wait_connected(timeout, expected=expected)
        trace = self.rig.trace

        def accepted(event: Event) -> bool:
            body = event.payload
            return (isinstance(body, dict) and body.get("type") == "CALLRESULT"
                    and (body.get("payload") or {}).get("status") == "Accepted")

        criteria: dict[str, Any] = dict(layer=Layer.OCPP, name="BootNotification", observer="csms", src="csms",
                                        keys={"station_id": self.station_id})
        last = trace.last(where=lambda e: frame_type(e) == "CALLRESULT", **criteria)
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
                self.record("StationRegistered", f"{self.station_id} connected without a BootNotification and "
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
        """Back to the rig file's settings (a test may have reconfigured them)."""
        self.driver.restore()

    def require(self, capability: str) -> None:
        if capability not in self.capabilities:
            raise RoleUnavailable(f"the rig's EVSE does not offer {capability!r}")


class EvseDriver(Driver):
    """What differs between kinds of EVSE."""

    #: the harness's own reference EVSE (it shares the run's PKI with the EV emulator)
    emulated = False
    emulator: ReferenceEvse | None = None

    def connector(self, evse_id: int) -> Connector:
        raise RoleUnavailable("an emulated EV cannot reach a real charger's connector: no pilot hardware is "
                              "driven by the harness; let the rig's operator plug in (operator section of the rig "
                              "file)")

    def sdp_port(self) -> int | None:
        return None

    def present_id_token(self, token: str, evse_id: int) -> str:
        raise NotImplementedError

    def reconfigure_security(self, profile: int, *, password: str | None, client: CertificateFiles | None) -> None:
        raise RoleUnavailable("reconfiguring a real EVSE's security needs its installer tools")

    def inject_v2g(self, *faults: Any) -> None:
        raise RoleUnavailable("only the reference EVSE can be made to commit V2G faults")

    def power_cycle(self, off_s: float) -> None:
        raise NotImplementedError

    def restore(self) -> None:
        pass


class EmulatedEvse(EvseDriver):
    """``evse: {kind: emulated}``: the reference EVSE, connected to the mock CSMS."""

    emulated = True

    async def activate(self) -> None:
        await self._start(self.role.security_profile)

    async def _start(self, profile: int, *, password: str | None = None,
                     client: CertificateFiles | None = None) -> None:
        csms = self.rig.csms
        server, tls = csms.server, csms.tls
        if server is None or tls is None:
            raise RuntimeError("the reference EVSE starts after the CSMS")
        config = self.role.config
        station_id = self.role.station_id
        context = None
        if profile >= 2:
            trusted = config.ocpp.tls.ca if config.ocpp.tls and config.ocpp.tls.ca else None
            pki = csms.pki
            if trusted is None:
                if pki is None:
                    raise RuntimeError("an emulated station trusts the CSMS root generated for the run")
                trusted = pki.csms_root
            if profile == 3 and client is None:
                if config.ocpp.tls:
                    client = CertificateFiles(config.ocpp.tls.certificate, config.ocpp.tls.key)
                elif pki is not None:
                    client = pki.stations[station_id]
            context = ocpp_client_context(trusted, client_chain=client.chain if client else None,
                                          client_key=client.key if client else None)
        link = CsmsLink(url=server.url(station_id, scheme="wss" if profile >= 2 else "ws"),
                        version=self.role.version,
                        password=(password or config.ocpp.password) if profile < 3 else None, ssl=context)
        # the emulated charger's identity is its own (its profile), not the rig file's expectation of
        # it, so OCPP-BOOT-004 compares two independent things
        settings = EvseSettings(
            station_id=station_id,
            identity=StationIdentity(*evse_profile(self.rig).identity),
            evse_count=config.evse_count, max_current=config.max_current, phases=config.phases,
            voltage=config.voltage, misbehave=evse_profile(self.rig).misbehave)
        hlc = emulated_evse_hlc(self.rig) if "iso15118" in config.capabilities else None
        self.emulator = ReferenceEvse(self.rig.trace, settings, link, self.rig.timers, hlc=hlc)
        await self.emulator.start()
        # SLAC where the link has it; a failed match is reported like any failure before a session
        await self.rig.link.attach_evse(self.emulator.connectors[1].pilot, self._slac_failed)

    def _slac_failed(self, reason: str) -> None:
        hlc = self.emulator.hlc if self.emulator is not None else None
        if hlc is not None and hlc.bridge is not None:
            hlc.bridge.connection_failed(reason)

    async def make_safe(self) -> None:
        if self.emulator is not None:
            # long enough for a station to reconnect after its back-off and empty its queue
            await self.emulator.make_safe(timeout=self.rig.scaled(120.0) + 2.0)

    async def deactivate(self) -> None:
        if self.emulator is not None:
            await self.emulator.stop()
            self.emulator = None

    def _emulator(self) -> ReferenceEvse:
        if self.emulator is None:
            raise RuntimeError("the reference EVSE is not running")
        return self.emulator

    def connector(self, evse_id: int) -> Connector:
        return self._emulator().connectors[evse_id]

    def sdp_port(self) -> int | None:
        hlc = self._emulator().hlc
        return hlc.sdp.bound_port if hlc is not None and hlc.sdp is not None else None

    def present_id_token(self, token: str, evse_id: int) -> str:
        return self.rig.run(self._emulator().present_id_token(token, evse_id))

    def reconfigure_security(self, profile: int, *, password: str | None, client: CertificateFiles | None) -> None:
        async def restart() -> None:
            await self._emulator().stop()
            await self._start(profile, password=password, client=client)
            # a restarted station boots anew; wait for its own registration, not an older one
            async with asyncio.timeout(self.role.config.boot_timeout):
                await self._emulator().station.registered.wait()

        self.rig.run(restart())

    def power_cycle(self, off_s: float) -> None:
        async def cycle() -> None:
            await self._emulator().power_cut()
            await asyncio.sleep(self.rig.scaled(off_s))
            await self._start(self.role.security_profile)  # a fresh charger: it boots with PowerUp

        self.rig.run(cycle())

    def inject_v2g(self, *faults: Any) -> None:
        hlc = self._emulator().hlc
        if hlc is None:
            raise RoleUnavailable("the reference EVSE runs without ISO 15118 here (no iso15118 capability)")
        self.rig.run(hlc.inject(*faults))

    def restore(self) -> None:
        emulator = self._emulator()
        if emulator.hlc is not None:
            self.rig.run(emulator.hlc.restore())
        configured = self.role.config.ocpp.security_profile
        if self.role.security_profile != configured:
            self.role.reconfigure_security(configured)


class LabEvse(EvseDriver):
    """``evse: {kind: lab}``: a real charger. It connects to the mock CSMS by itself; tokens are
    presented by the rig's operator; teardown asks it to stop what is still open."""

    async def activate(self) -> None:
        self.record("AwaitingDut", f"waiting for {self.role.station_id} to connect to {self.rig.csms.url()}")

    async def make_safe(self) -> None:
        """Ask the charger to stop every transaction the CSMS still sees open."""
        csms = self.rig.csms
        station_id = self.role.station_id
        server = csms.server
        if server is None or station_id not in server.sessions:
            return
        for tx in transactions(self.rig.trace, station_id=station_id):
            if tx.ended:
                continue
            action, payload = commands.remote_stop(self.role.version, tx.transaction_id)
            try:
                await server.call(station_id, action, payload, timeout=30.0)
                self.record("TransactionStopped", f"teardown asked {station_id} to stop {tx.transaction_id}")
            except OcppCallFailed as exc:
                self.record("TransactionNotStopped", f"could not stop {tx.transaction_id}: {exc}")

    def power_cycle(self, off_s: float) -> None:
        self.rig.operator.perform("power_cycle", fields={"off_s": f"{off_s:g}"})

    def present_id_token(self, token: str, evse_id: int) -> str:
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
                                  keys={"id_token": token}, where=lambda e: frame_type(e) == "CALL")
        except TraceTimeout:
            raise DutFailure(f"the charger sent no Authorize for the token {token} within {timeout:g} s of its "
                             f"presentation") from None
        answer = trace.wait_for(timeout, since=call.mono, layer=Layer.OCPP, observer="csms", src="csms",
                                keys={"message_id": call.keys.get("message_id")})
        result = (answer.payload or {}).get("payload") or {}
        info = result.get("idTagInfo") or result.get("idTokenInfo") or {}
        return str(info.get("status", "Accepted" if call.name == "TransactionEvent" else "?"))
