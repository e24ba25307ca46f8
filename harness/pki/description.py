"""A lab's own ISO 15118 PKI, described where it lies instead of rearranged: a small YAML file
that names the PEM or DER files of each part. Labs get their PKI from an OEM, a mobility
operator or a public test PKI, in that party's layout; this file points into it::

    # pki.yaml -- paths relative to this file; PEM (several certificates in one file are fine) or DER
    password: {env: LAB_PKI_PASSWORD}        # or {file: secret.txt}: opens encrypted keys
    iso2:                                    # ISO 15118-2 (and DIN 70121 TLS); iso20: the same for -20
      v2g_roots: [roots/V2G_ROOT.der]        # the EV and the EVSE trust these
      mo_roots: [roots/MO_ROOT.pem]          # contracts are validated against these
      oem_roots: [roots/OEM_ROOT.pem]        # -20: the SECC checks vehicle certificates against these
      cas: [cas/MO_SUB_CA1.pem, cas/MO_SUB_CA2.pem]   # more CA certificates the CSMS knows (hash data)
      secc: {chain: evse/secc_chain.pem, key: evse/secc.key}                  # the EVSE's TLS
      contract: {chain: ev/contract_chain.pem, key: ev/contract.key}          # the EV's contract
      oem_provisioning: {chain: ev/prov_chain.pem, key: ev/prov.key}          # the EV's installation
      vehicle: {chain: ev/vehicle_chain.pem, key: ev/vehicle.key}             # -20: the EV's TLS
      cpo_sub_ca_2: {chain: cas/CPO_SUB_CA2.pem, key: cas/cpo_sub_ca2.key}    # the CSMS signs SECC CSRs
    ocsp_responders: [http://ocsp.example.test/ocsp]   # more responders the CSMS may ask

Every part is optional in the file; each role asks for what it uses when it starts (the EVSE its
SECC chain and key, the EV its V2G roots and contract, the CSMS its MO roots), and a part it
needs and lacks is one line naming the part and the role. A key is opened only by the role that
uses it, with the password when it is encrypted.

For the EVSE and the EV the described files are written into the layout the harness's own
material uses (:meth:`PkiDescription.materialize`: ``<out>/<iso2|iso20>/<role>-chain.pem``,
``<role>.key`` unencrypted with mode 0600, ``v2g-root.pem``...), in the role's output folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from harness.pki.builder import Issued, write_key, write_pem
from harness.pki.files import CertificateFileError, load_certificates, load_private_key
from harness.pki.folders import PncPki, load_pnc_pki
from harness.pki.profiles import Role
from harness.yamlfile import FileProblems, Problems, Reader, read_yaml

GENERATIONS = ("iso2", "iso20")
ROOT_FIELDS = ("v2g_roots", "mo_roots", "oem_roots", "cas")
#: the leaves (and the one CA) a description may give with a key, and the harness role of each
LEAF_FIELDS = {"secc": Role.SECC, "contract": Role.CONTRACT, "oem_provisioning": Role.OEM_PROVISIONING,
               "vehicle": Role.VEHICLE, "cpo_sub_ca_2": Role.CPO_SUB_CA_2}
#: what each harness role needs of one generation's part: (required, optional)
NEEDS = {
    "evse": (("secc", "v2g_roots"), ("mo_roots", "oem_roots")),
    "ev": (("v2g_roots",), ("contract", "oem_provisioning", "vehicle")),
}


class PkiDescriptionError(FileProblems):
    """A PKI description that cannot be used; ``problems`` names each field at fault."""


@dataclass(frozen=True)
class LeafFiles:
    chain: Path
    key: Path


@dataclass
class Part:
    roots: dict[str, list[Path]] = field(default_factory=dict)
    leaves: dict[str, LeafFiles] = field(default_factory=dict)


@dataclass
class PkiDescription:
    path: Path
    parts: dict[str, Part]
    password_env: str | None = None
    password_file: Path | None = None
    ocsp_responders: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path | str) -> "PkiDescription":
        """Read and check a description: its fields, and that every file it names exists."""
        path = Path(path)
        problems = Problems()
        top = Reader(read_yaml(path, PkiDescriptionError), "", problems)
        base = path.parent
        description = cls(path, {})

        def file(where: str, value: str) -> Path:
            found = (base / value).resolve() if not Path(value).is_absolute() else Path(value)
            if not found.is_file():
                problems.add(where, f"no such file {value!r}")
            return found

        secret = top.section("password")
        description.password_env = secret.str("env")
        password_file = secret.str("file")
        if password_file is not None:
            description.password_file = file("password.file", password_file)
        if description.password_env and password_file:
            problems.add("password", "give env or file, not both")
        secret.done()
        for generation in GENERATIONS:
            if not top.has(generation):
                top.section(generation)  # marks it seen
                continue
            section = top.section(generation)
            part = Part()
            for name in ROOT_FIELDS:
                files = section.str_list(name, [])
                if files:
                    part.roots[name] = [file(f"{generation}.{name}[{i}]", f) for i, f in enumerate(files)]
            for name in LEAF_FIELDS:
                if not section.has(name):
                    continue
                leaf = section.section(name)
                chain, key = leaf.str("chain", required=True), leaf.str("key", required=True)
                leaf.done()
                if chain is not None and key is not None:
                    part.leaves[name] = LeafFiles(file(f"{generation}.{name}.chain", chain),
                                                  file(f"{generation}.{name}.key", key))
            section.done()
            description.parts[generation] = part
        description.ocsp_responders = top.str_list("ocsp_responders", [])
        top.done()
        if not description.parts and not problems:
            problems.add("", "describes neither iso2 nor iso20")
        if problems:
            raise PkiDescriptionError(path, problems.items)
        return description

    # -- what the roles take -------------------------------------------------------------------

    def password(self) -> bytes | None:
        if self.password_env is not None:
            value = os.environ.get(self.password_env)
            if not value:
                raise CertificateFileError(self.path, f"password.env: environment variable {self.password_env} "
                                                      "is not set or empty")
            return value.encode()
        if self.password_file is not None:
            lines = self.password_file.read_text().splitlines()
            if not lines or not lines[0]:
                raise CertificateFileError(self.password_file, "the first line (the password) is empty")
            return lines[0].encode()
        return None

    def certificates(self, generation: str, name: str) -> list[x509.Certificate]:
        return [c for f in self.parts[generation].roots.get(name, []) for c in load_certificates(f)]

    def leaf(self, generation: str, name: str, role: str) -> tuple[list[x509.Certificate], Issued]:
        """A described leaf's chain (leaf first) and the leaf with its key, opened for ``role``
        (CertificateFileError names the file)."""
        files = self.parts[generation].leaves[name]
        certificates = load_certificates(files.chain)
        try:
            try:
                key = load_private_key(files.key)  # a lab's keys need not all be encrypted
            except CertificateFileError:
                key = load_private_key(files.key, self.password())
        except CertificateFileError as exc:
            raise CertificateFileError(files.key, f"{generation}.{name}.key for the {role}: {exc.problem}") from None
        return certificates, Issued(certificates[0], key)

    def materialize(self, out: Path, role: str) -> Path:
        """Write what ``role`` ("evse" or "ev") uses, generation by generation, into ``out`` in the
        harness's own layout; a part the role needs and the file lacks is one line naming both."""
        required, optional = NEEDS[role]
        for generation, part in self.parts.items():
            folder = out / generation
            folder.mkdir(parents=True, exist_ok=True)
            for name in (*required, *optional):
                present = name in part.roots or name in part.leaves
                if not present:
                    if name in required:
                        raise CertificateFileError(self.path, f"{generation}.{name}: not described, and the "
                                                              f"{role.upper()} needs it")
                    continue
                if name in part.leaves:
                    role_name = LEAF_FIELDS[name].value
                    chain, issued = self.leaf(generation, name, role)
                    write_pem(folder / f"{role_name}-chain.pem", *chain)
                    write_pem(folder / f"{role_name}.pem", issued.cert)
                    write_key(folder / f"{role_name}.key", issued.key)
                else:
                    target = {"v2g_roots": "v2g-root.pem", "mo_roots": "mo-root.pem", "oem_roots": "oem-root.pem"}[name]
                    write_pem(folder / target, *self.certificates(generation, name))
        return out

    def pnc_pki(self) -> PncPki:
        """What the CSMS takes: MO roots, every CA certificate named (roots, ``cas``, and the
        Sub-CAs in the leaves' chain files), and the CPO Sub-CA 2 key when described."""
        pki = PncPki(self.path.parent, parts=list(self.parts))
        seen: set[bytes] = set()
        for generation, part in self.parts.items():
            pki.mo_roots += self.certificates(generation, "mo_roots")
            candidates = [c for name in ROOT_FIELDS for c in self.certificates(generation, name)]
            candidates += [c for files in part.leaves.values() for c in load_certificates(files.chain)[1:]]
            for certificate in candidates:
                der = certificate.public_bytes(serialization.Encoding.DER)
                if der not in seen:
                    seen.add(der)
                    pki.authorities.append(certificate)
            if "cpo_sub_ca_2" in part.leaves:
                chain, issuer = self.leaf(generation, "cpo_sub_ca_2", "csms")
                pki.keyed[(generation, Role.CPO_SUB_CA_2)] = issuer
                pki.by_role[(generation, Role.CPO_SUB_CA_2)] = chain[0]
                if len(chain) > 1:
                    pki.by_role[(generation, Role.CPO_SUB_CA_1)] = chain[1]
        if not pki.mo_roots:
            raise CertificateFileError(self.path, "mo_roots: not described, and the CSMS needs them to validate "
                                                  "contracts")
        return pki


def load_any_pnc_pki(path: Path, *, password: bytes | None = None) -> tuple[PncPki, list[str]]:
    """What a CSMS takes from a lab's PKI description (a file) or a folder written by `harness
    certs generate` (``password`` opens its encrypted CA keys), and the OCSP responders it may ask
    beyond those its certificates name. FileProblems or CertificateFileError say what is wrong."""
    if path.is_file():
        description = PkiDescription.load(path)
        return description.pnc_pki(), list(description.ocsp_responders)
    return load_pnc_pki(path, keys=True, password=password), []
