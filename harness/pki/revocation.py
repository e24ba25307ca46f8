"""Revocation the way a CSMS checks it: CRL files, a local HTTP OCSP responder, an OCSP client,
and the OCSP request data OCPP carries (iso15118CertificateHashData / OCSPRequestData).

The responder answers for every CA it is given, signing each response with the key of the CA that
issued the certificate asked about (RFC 6960 2.6: a CA may sign its own responses), and serves the
CRLs it holds under ``/crl/<name>``; generated certificates point their AIA and CRL distribution
point there (``http://127.0.0.1:8880`` unless generated otherwise).
"""

from __future__ import annotations

import base64
import collections
import datetime as _dt
import re
import threading
import urllib.parse
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterable, Mapping

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID

from harness.pki.builder import Issued, now, signature_hash_for
from harness.pki.validate import OcspStatus

#: how long a CRL or an OCSP answer says it stays current
FRESHNESS = _dt.timedelta(days=7)


def build_crl(issuer: Issued, revoked_serials: Iterable[int], *,
              revoked_at: _dt.datetime | None = None,
              next_update: _dt.timedelta = FRESHNESS) -> x509.CertificateRevocationList:
    """A CRL signed by ``issuer`` listing ``revoked_serials`` (RFC 5280 5)."""
    this_update = now() - _dt.timedelta(minutes=5)
    revoked_at = revoked_at or this_update
    builder = (x509.CertificateRevocationListBuilder()
               .issuer_name(issuer.cert.subject)
               .last_update(this_update)
               .next_update(this_update + next_update)
               .add_extension(x509.CRLNumber(1), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                   issuer.key.public_key()), critical=False))
    for serial in revoked_serials:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial)
            .revocation_date(revoked_at).build())
    return builder.sign(issuer.key, signature_hash_for(issuer.key))


def _key_hash(cert: x509.Certificate, algorithm: hashes.HashAlgorithm) -> bytes:
    """Hash of the subjectPublicKey BIT STRING contents, as OCSP's CertID defines issuerKeyHash."""
    spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    # the BIT STRING is the last element of SubjectPublicKeyInfo; skip its tag, length and the
    # unused-bits octet
    bit_string = _last_tlv(spki)
    digest = hashes.Hash(algorithm)
    digest.update(bit_string[1:])
    return digest.finalize()


def _name_hash(name: x509.Name, algorithm: hashes.HashAlgorithm) -> bytes:
    digest = hashes.Hash(algorithm)
    digest.update(name.public_bytes())
    return digest.finalize()


def _last_tlv(der: bytes) -> bytes:
    """Content of the last element inside the outer SEQUENCE of ``der``."""
    def header(offset):
        length = der[offset + 1]
        if length < 0x80:
            return offset + 2, length
        count = length & 0x7F
        return offset + 2 + count, int.from_bytes(der[offset + 2:offset + 2 + count], "big")

    position, total = header(0)
    end = position + total
    content = length = 0
    while position < end:
        content, length = header(position)
        position = content + length
    return der[content:content + length]


# -- OCPP ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CertificateHashData:
    """OCPP 2.0.1 OCSPRequestDataType / iso15118CertificateHashData for one certificate.

    Hashes are lower-case hex and the serial number upper-case hex without leading zeros, as
    OCPP 2.0.1 (edition 2) describes serialNumber ("hexadecimal ... without leading zeroes");
    the letter case of the hashes is not fixed by the specification text we could consult.
    """

    hashAlgorithm: str
    issuerNameHash: str
    issuerKeyHash: str
    serialNumber: str
    responderURL: str

    def as_ocpp(self) -> dict[str, str]:
        return dict(self.__dict__)

    @classmethod
    def from_ocpp(cls, value: object, where: str = "OCSPRequestData") -> "CertificateHashData":
        """From a message's OCSPRequestDataType; ValueError names ``where`` and what is wrong."""
        if not isinstance(value, dict):
            raise ValueError(f"{where} is {type(value).__name__}, not an object")
        missing = [f for f in ("hashAlgorithm", "issuerNameHash", "issuerKeyHash", "serialNumber", "responderURL")
                   if not isinstance(value.get(f), str)]
        if missing:
            raise ValueError(f"{where} lacks {', '.join(missing)}")
        data = cls(value["hashAlgorithm"], value["issuerNameHash"], value["issuerKeyHash"], value["serialNumber"],
                   value["responderURL"])
        try:
            data.parsed()
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        return data

    def parsed(self) -> tuple[hashes.HashAlgorithm, bytes, bytes, int]:
        """(hash algorithm, issuer name hash, issuer key hash, serial number); ValueError names
        the field that does not parse."""
        kind = _OCPP_HASHES.get(self.hashAlgorithm)
        if kind is None:
            raise ValueError(f"hashAlgorithm {self.hashAlgorithm!r} is none of {', '.join(_OCPP_HASHES)}")
        algorithm = kind()
        digests = []
        for field_name in ("issuerNameHash", "issuerKeyHash"):
            text = getattr(self, field_name)
            if not _HEX.fullmatch(text):
                raise ValueError(f"{field_name} {text[:80]!r} is not hexadecimal")
            if len(text) != 2 * algorithm.digest_size:
                raise ValueError(f"{field_name} has {len(text)} hex digits, {self.hashAlgorithm} gives "
                                 f"{2 * algorithm.digest_size}")
            digests.append(bytes.fromhex(text))
        if not _HEX.fullmatch(self.serialNumber) or len(self.serialNumber) > 40:
            # RFC 5280 4.1.2.2: at most 20 octets
            raise ValueError(f"serialNumber {self.serialNumber[:80]!r} is not a hexadecimal serial number "
                             "(at most 40 digits)")
        return algorithm, digests[0], digests[1], int(self.serialNumber, 16)

    def issued_by(self, issuer: x509.Certificate) -> bool:
        """Whether the hashes name ``issuer`` (its subject and public key, RFC 6960 4.1.1)."""
        algorithm = _OCPP_HASHES.get(self.hashAlgorithm)
        if algorithm is None:
            return False
        return (_name_hash(issuer.subject, algorithm()).hex() == self.issuerNameHash.lower()
                and _key_hash(issuer, algorithm()).hex() == self.issuerKeyHash.lower())


_HEX = re.compile(r"[0-9A-Fa-f]+")

_OCPP_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "SHA256": hashes.SHA256, "SHA384": hashes.SHA384, "SHA512": hashes.SHA512}


def certificate_hash_data(cert: x509.Certificate, issuer: x509.Certificate, *,
                          hash_algorithm: str = "SHA256",
                          responder_url: str | None = None) -> CertificateHashData:
    algorithm = _OCPP_HASHES[hash_algorithm]()
    return CertificateHashData(
        hashAlgorithm=hash_algorithm,
        issuerNameHash=_name_hash(issuer.subject, algorithm).hex(),
        issuerKeyHash=_key_hash(issuer, algorithm).hex(),
        serialNumber=format(cert.serial_number, "X"),
        responderURL=responder_url or ocsp_url_of(cert) or "")


def ocsp_url_of(cert: x509.Certificate) -> str | None:
    try:
        access = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    except x509.ExtensionNotFound:
        return None
    for description in access:
        if description.access_method == AuthorityInformationAccessOID.OCSP:
            return description.access_location.value
    return None


# -- responder -----------------------------------------------------------------------------------

class RevocationServer:
    """OCSP responder (``/ocsp``, POST or GET as RFC 6960 A.1) and CRL server (``/crl/NAME``).

    Use as a context manager; ``port=0`` picks a free port (see :attr:`base_url`).
    """

    def __init__(self, authorities: Iterable[Issued], *, revoked: Iterable[int] = (),
                 crls: Mapping[str, x509.CertificateRevocationList] | None = None,
                 host: str = "127.0.0.1", port: int = 0):
        self.authorities = list(authorities)
        self.revoked: dict[int, _dt.datetime] = {s: now() - _dt.timedelta(hours=1) for s in revoked}
        self.crls = dict(crls or {})
        #: what was asked lately, for tests and the timeline (the latest 1000, so a long run stays bounded)
        self.requests: collections.deque[ocsp.OCSPRequest] = collections.deque(maxlen=1000)
        self._server = ThreadingHTTPServer((host, port), self._handler())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        if not isinstance(host, str):  # typeshed allows bytes; an AF_INET socket's name is text
            raise TypeError(f"unexpected server address {self._server.server_address!r}")
        return f"http://{host}:{port}"

    @property
    def ocsp_url(self) -> str:
        return f"{self.base_url}/ocsp"

    def revoke(self, serial: int, when: _dt.datetime | None = None) -> None:
        self.revoked[serial] = when or now()

    def start(self) -> "RevocationServer":
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        name="ocsp-responder",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:  # shutdown() would wait forever for a loop never started
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> "RevocationServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def respond(self, request_der: bytes) -> bytes:
        """The DER OCSP response to one DER OCSP request (the HTTP layer only moves bytes)."""
        try:
            request = ocsp.load_der_ocsp_request(request_der)
        except ValueError:
            return _unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
        self.requests.append(request)
        algorithm = request.hash_algorithm
        authority = next((a for a in self.authorities
                          if _key_hash(a.cert, algorithm) == request.issuer_key_hash
                          and _name_hash(a.cert.subject, algorithm) == request.issuer_name_hash),
                         None)
        if authority is None:
            return _unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED)
        this_update = now()
        revoked_at = self.revoked.get(request.serial_number)
        status = ocsp.OCSPCertStatus.REVOKED if revoked_at else ocsp.OCSPCertStatus.GOOD
        builder = (ocsp.OCSPResponseBuilder()
                   .add_response_by_hash(request.issuer_name_hash, request.issuer_key_hash,
                                         request.serial_number, algorithm, status, this_update,
                                         this_update + FRESHNESS, revoked_at,
                                         x509.ReasonFlags.key_compromise if revoked_at else None)
                   .responder_id(ocsp.OCSPResponderEncoding.HASH, authority.cert)
                   .certificates([authority.cert]))
        for extension in request.extensions:
            if isinstance(extension.value, x509.OCSPNonce):  # RFC 8954: echo the nonce
                builder = builder.add_extension(extension.value, critical=False)
        response = builder.sign(authority.key, signature_hash_for(authority.key))
        return response.public_bytes(serialization.Encoding.DER)

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                if self.path.rstrip("/") != "/ocsp":
                    return self._send(404, b"", "text/plain")
                self._send(200, server.respond(self.rfile.read(length)), "application/ocsp-response")

            def do_GET(self):
                if self.path.startswith("/crl/"):
                    crl = server.crls.get(self.path[len("/crl/"):])
                    if crl is None:
                        return self._send(404, b"", "text/plain")
                    return self._send(200, crl.public_bytes(serialization.Encoding.DER),
                                      "application/pkix-crl")
                if self.path.startswith("/ocsp/"):
                    encoded = urllib.parse.unquote(self.path[len("/ocsp/"):])
                    try:
                        request = base64.b64decode(encoded)
                    except ValueError:
                        request = b""
                    return self._send(200, server.respond(request), "application/ocsp-response")
                self._send(404, b"", "text/plain")

            def _send(self, status, body, content_type):
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):  # keep test output clean
                pass

        return Handler


def _unsuccessful(status: ocsp.OCSPResponseStatus) -> bytes:
    return ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(serialization.Encoding.DER)


# -- client --------------------------------------------------------------------------------------

class OcspError(Exception):
    """The responder could not be asked, or its answer cannot be trusted."""


class OcspClient:
    """Asks an OCSP responder about a certificate, as :data:`harness.pki.validate.OcspCheck`.

    ``url`` overrides the certificate's AIA OCSP URL (tests run the responder on a free port).
    The answer must be signed by the issuer itself (RFC 6960 4.2.2.2); delegated responder
    certificates are not accepted, since our responder never uses one.
    """

    def __init__(self, url: str | None = None, *, timeout: float = 5.0):
        self.url = url
        self.timeout = timeout

    def __call__(self, cert: x509.Certificate, issuer: x509.Certificate) -> OcspStatus:
        url = self.url or ocsp_url_of(cert)
        if not url:
            raise OcspError(f"{cert.subject.rfc4514_string()}: no OCSP URL to ask")
        request = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA256()).build()
        answer = ocsp.load_der_ocsp_response(fetch_ocsp(url, request.public_bytes(serialization.Encoding.DER),
                                                        timeout=self.timeout))
        return ocsp_status(answer, issuer, cert.serial_number, url)


def ocsp_request_by_hash(data: CertificateHashData) -> bytes:
    """The DER OCSP request (RFC 6960 4.1) for OCPP's OCSPRequestData: the CertID is the hashes
    and serial number the station sent, unchanged. ValueError names a field that does not parse."""
    algorithm, name_hash, key_hash, serial = data.parsed()
    request = ocsp.OCSPRequestBuilder().add_certificate_by_hash(name_hash, key_hash, serial, algorithm).build()
    return request.public_bytes(serialization.Encoding.DER)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # a responder answers where it was asked; a redirect is an error, not a new URL


#: no redirects, no proxies from the environment: the CSMS asks the responder it chose, only it
_OPENER = urllib.request.build_opener(_NoRedirects, urllib.request.ProxyHandler({}))

#: an OCSP answer whose nextUpdate passed, or whose thisUpdate lies this far ahead, is not current
CLOCK_SKEW = _dt.timedelta(minutes=5)


def fetch_ocsp(url: str, request: bytes, *, timeout: float = 5.0) -> bytes:
    """POST a DER OCSP request to a responder (RFC 6960 A.1) and return its DER answer."""
    http = urllib.request.Request(url, data=request, method="POST",
                                  headers={"Content-Type": "application/ocsp-request"})
    try:
        with _OPENER.open(http, timeout=timeout) as reply:
            answer = reply.read(64 * 1024)
        ocsp.load_der_ocsp_response(answer)
    except (OSError, ValueError) as exc:
        raise OcspError(f"{url}: {exc}") from None
    return answer


def ocsp_status(answer: ocsp.OCSPResponse, issuer: x509.Certificate, serial: int, url: str) -> OcspStatus:
    """What a responder's answer says about ``serial``, once its signature by ``issuer`` holds."""
    if answer.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
        return OcspStatus.UNKNOWN
    if answer.serial_number != serial:
        raise OcspError(f"{url}: answered about serial {answer.serial_number:X}, not {serial:X}")
    _check_response_signature(answer, issuer, url)
    moment = now()
    if answer.this_update_utc > moment + CLOCK_SKEW:
        raise OcspError(f"{url}: the answer is dated {answer.this_update_utc.isoformat()}, in the future")
    if answer.next_update_utc is not None and answer.next_update_utc < moment - CLOCK_SKEW:
        raise OcspError(f"{url}: the answer was current until {answer.next_update_utc.isoformat()} "
                        "(RFC 6960 4.2.2.1: not to be relied on after nextUpdate)")
    return {ocsp.OCSPCertStatus.GOOD: OcspStatus.GOOD,
            ocsp.OCSPCertStatus.REVOKED: OcspStatus.REVOKED}.get(answer.certificate_status, OcspStatus.UNKNOWN)


def _check_response_signature(answer: ocsp.OCSPResponse, issuer: x509.Certificate, url: str) -> None:
    key = issuer.public_key()
    hash_algorithm = answer.signature_hash_algorithm  # None for an EdDSA signature
    try:
        if isinstance(key, ed448.Ed448PublicKey):
            key.verify(answer.signature, answer.tbs_response_bytes)
            return
        if isinstance(key, ec.EllipticCurvePublicKey) and hash_algorithm is not None:
            key.verify(answer.signature, answer.tbs_response_bytes, ec.ECDSA(hash_algorithm))
            return
        if isinstance(key, rsa.RSAPublicKey) and hash_algorithm is not None:
            # sha256WithRSAEncryption and its kin (RFC 6960 4.3, RFC 4055): PKCS #1 v1.5
            key.verify(answer.signature, answer.tbs_response_bytes, padding.PKCS1v15(), hash_algorithm)
            return
    except (InvalidSignature, TypeError, ValueError):
        pass
    raise OcspError(f"{url}: response not signed by {issuer.subject.rfc4514_string()}")
