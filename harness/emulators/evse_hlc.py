"""The reference EVSE's ISO 15118 side: SDP server and SECC for its connector, wired to the
station through :class:`~harness.emulators.bridge.OcppBridge`.

At plug-in it asks for digital communication (5 % duty, ISO 15118-3); if no V2G session starts
within the profile's ``hlc.fallback_s`` it falls back to nominal PWM, so a basic IEC 61851 EV
charges as before (the standards' B2 -> E/F -> B2 step is not modelled; the duty changes
directly).

SECC certificate renewal (OCPP 2.0.1 A03 with certificateType V2GCertificate): a new secp256r1
key and a CSR for the EVSE ID (:meth:`EvseHlc.certificate_request`); the chain the CSMS returns is
validated against the -2 V2G root with the SECC profile and, when good, presented to every EV from
the next TLS handshake on (:meth:`EvseHlc.install_secc_chain`). The -20 chain is not renewed.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from harness.emulators.bridge import OcppBridge
from harness.emulators.evse_certificates import InstalledRoots
from harness.emulators.profiles import EvseProfile
from harness.pki import tls
from harness.pki.builder import write_key, write_pem
from harness.pki.profiles import PROFILES, Generation
from harness.pki.profiles import Role as CertificateRole
from harness.pki.validate import policy_for, validate_chain
from harness.trace import Layer, Recorder
from harness.v2g.credentials import V2gMaterial
from harness.v2g.faults import FaultPlan
from harness.v2g.sdp import SdpServer
from harness.v2g.secc import Secc, SeccConfig
from harness.v2g.timers import Timing
from harness.v2g.transport import SocketFactory

if TYPE_CHECKING:
    from harness.emulators.evse import Connector, ReferenceEvse


class EvseHlc:
    def __init__(self, recorder: Recorder, profile: EvseProfile, *, timing: Timing,
                 material: V2gMaterial | None = None, host: str = "::1", sdp_port: int | None = None,
                 allow_iso20_without_tls: bool = False, sockets: SocketFactory | None = None) -> None:
        self.recorder = recorder
        #: makes the SDP and SECC sockets (in the EVSE's network namespace on the netns rig)
        self.sockets = sockets
        self.profile = profile
        self.timing = timing
        self.material = material
        self.host = host
        self.sdp_port = profile.sdp_port if sdp_port is None else sdp_port
        self.allow_iso20_without_tls = allow_iso20_without_tls
        self.faults = FaultPlan(recorder=recorder, side="evse")
        self.evse: ReferenceEvse | None = None
        self.bridge: OcppBridge | None = None
        self.roots: InstalledRoots | None = None
        self.secc: Secc | None = None
        self.sdp: Any = None
        self._fallback: dict[int, asyncio.Task] = {}
        #: the key of the CSR sent last, waiting for its certificate
        self._pending_key: ec.EllipticCurvePrivateKey | None = None

    async def start(self, evse: "ReferenceEvse") -> None:
        self.evse = evse
        connector = evse.connectors[1]
        caps = self.profile.capabilities
        material = self.material
        self.bridge = OcppBridge(evse, connector, caps, eim=self.profile.eim, on_session=self._session_changed,
                                 provisioning=material.provisioning() if material else None,
                                 tariff_key=material.tariff_key("iso2") if material else None,
                                 mo_roots=material.all_mo_roots() if material and
                                 self.profile.contract_validation == "local" else ())
        # the roots the CSMS manages (M03-M05); the MO roots are the bridge's own list
        self.roots = InstalledRoots(material.v2g_roots() if material else [], self.bridge.mo_roots)
        config = SeccConfig(host=self.host, tls=material.secc_tls() if material is not None and caps.tls != "none" else None,
                            protocols=tuple(p for p in caps.protocols),
                            allow_iso20_without_tls=self.allow_iso20_without_tls, sockets=self.sockets)
        self.secc = Secc(self.recorder, self.bridge, config, timing=self.timing, faults=self.faults)
        await self.secc.start()
        self.sdp = SdpServer(self.recorder, self.host, self.sdp_port, tcp_port=self.secc.tcp_port,
                             tls_port=self.secc.tls_port, tls_policy=caps.tls, sockets=self.sockets)
        await self.sdp.start()

    async def stop(self) -> None:
        for task in self._fallback.values():
            task.cancel()
        if self.sdp is not None:
            await self.sdp.stop()
        if self.secc is not None:
            await self.secc.stop()

    async def inject(self, *faults: Any) -> None:
        """Faults the SECC commits from now on; ``fail_tls`` presents an untrusted certificate,
        or the -2 chain with the catalogue fault it names."""
        self.faults.add(*faults)
        tls_fault = next((f for f in faults if f.kind == "fail_tls"), None)
        if tls_fault is not None and self.secc is not None and self.material is not None:
            if tls_fault.value is None:
                self.secc.present_untrusted(self.material.untrusted_secc_context())
            else:
                generation, chain_fault = tls_fault.value
                self.secc.present_untrusted(*self.material.faulty_secc_context(chain_fault, generation))

    async def restore(self) -> None:
        """No faults, the configured TLS certificate, the profile's policies."""
        had_tls_fault = any(f.kind == "fail_tls" for f in self.faults.faults)
        self.faults.clear()
        if had_tls_fault and self.secc is not None:
            self.secc.present_untrusted(None)
        if self.bridge is not None:
            self.bridge.pending_notification = "None"

    # -- SECC certificate renewal ----------------------------------------------------------------

    def certificate_request(self) -> str:
        """A PEM CSR for a new -2 SECC certificate: a fresh secp256r1 key, subject CN the EVSE ID,
        O and DC as the SECC profile says (ISO 15118-2 Annex F)."""
        profile = PROFILES[CertificateRole.SECC]
        self._pending_key = ec.generate_private_key(ec.SECP256R1())
        attributes = [x509.NameAttribute(NameOID.COMMON_NAME, self.profile.capabilities.evse_id)]
        if profile.organization:
            attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, profile.organization))
        if profile.domain_component:
            attributes.append(x509.NameAttribute(NameOID.DOMAIN_COMPONENT, profile.domain_component))
        request = (x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attributes))
                   .sign(self._pending_key, hashes.SHA256()))
        return request.public_bytes(serialization.Encoding.PEM).decode()

    def awaits_secc_chain(self) -> str | None:
        """Why no signed SECC chain can be installed now (None: a request is pending)."""
        if self._pending_key is None:
            return "no certificate request is pending"
        if self.material is None or self.secc is None or self.secc.tls is None:
            return "this SECC has no TLS"
        return None

    def install_secc_chain(self, pem: str) -> str | None:
        """Present the signed chain from the next TLS handshake on; what is wrong with it, or
        None. It must carry the key of the last CSR and chain to the -2 V2G root as an SECC
        certificate (key usage, curve, DC=CPO, validity). Call only when
        :meth:`awaits_secc_chain` has no objection."""
        objection = self.awaits_secc_chain()
        if objection is not None:
            raise RuntimeError(f"no SECC chain can be installed: {objection}")
        assert self.material is not None and self.secc is not None and self.secc.tls is not None
        assert self._pending_key is not None
        try:
            chain = x509.load_pem_x509_certificates(pem.encode())
        except ValueError as exc:
            return f"certificateChain is not a PEM chain ({exc})"
        key = self._pending_key
        if chain[0].public_key() != key.public_key():
            return "the certificate is not for the key of the pending request"
        root = self.material.iso2.issued[CertificateRole.V2G_ROOT].cert
        result = validate_chain(chain, [root], policy=policy_for(Generation.ISO2, CertificateRole.SECC))
        if not result.ok:
            return f"the chain does not validate against the V2G root: {result}"
        folder = self.material.directory / "renewed-secc"
        folder.mkdir(parents=True, exist_ok=True)
        chain_file = write_pem(folder / "secc-chain.pem", *chain)
        key_file = write_key(folder / "secc.key", key)
        self.secc.tls.iso2 = tls.iso2_secc_context(chain_file, key_file, keylog=self.material.keylog)
        self.secc.tls.iso2_tls13 = tls.iso2_secc_context(chain_file, key_file, minimum=ssl.TLSVersion.TLSv1_3,
                                                          maximum=ssl.TLSVersion.TLSv1_3, keylog=self.material.keylog)
        self._pending_key = None
        self.recorder.emit(Layer.V2G, "SeccCertificateInstalled", f"SECC presents its renewed certificate "
                           f"(serial {chain[0].serial_number:X}, issued by {chain[0].issuer.rfc4514_string()})",
                           src="evse", payload={"serial": format(chain[0].serial_number, "X"),
                                                "subject": chain[0].subject.rfc4514_string()})
        return None

    # -- pilot --------------------------------------------------------------------------------

    async def plugged_in(self, connector: "Connector") -> None:
        if connector.evse_id != 1 or not self.profile.announce_hlc or self.evse is None:
            return
        connector.digital = True
        await connector.pilot.set_duty(self.evse.duty(connector))
        self._cancel(connector.evse_id)
        self._fallback[connector.evse_id] = asyncio.create_task(self._fall_back(connector))

    async def limit_changed(self, connector: "Connector") -> None:
        if connector.evse_id == 1 and self.bridge is not None:
            self.bridge.limit_changed()

    async def unplugged(self, connector: "Connector") -> None:
        self._cancel(connector.evse_id)
        connector.digital = False
        connector.soc = None

    def _cancel(self, evse_id: int) -> None:
        task = self._fallback.pop(evse_id, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    async def _fall_back(self, connector: "Connector") -> None:
        await asyncio.sleep(self.timing.wait(self.profile.hlc_fallback))
        if self.bridge is not None and self.bridge.session is not None and self.bridge.session.ended is None:
            return
        connector.digital = False
        self.recorder.emit(Layer.PILOT, "HlcFallback", f"EVSE {connector.evse_id}: no ISO 15118 session within "
                           f"{self.profile.hlc_fallback:g} s, nominal PWM (basic charging)", src="evse",
                           keys={"evse_id": connector.evse_id})
        assert self.evse is not None
        await connector.pilot.set_duty(self.evse.duty(connector))

    def _session_changed(self, connector: "Connector", active: bool) -> None:
        if active:
            self._cancel(connector.evse_id)
            if not connector.digital and self.evse is not None:
                connector.digital = True
                asyncio.get_running_loop().create_task(connector.pilot.set_duty(self.evse.duty(connector)))
