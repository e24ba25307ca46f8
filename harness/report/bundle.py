"""What of a report folder may be sent to a vendor: everything but the secrets.

A run's folder holds what a lab needs to look into a problem, and that includes secrets: the
private keys of the run's PKI (``pki/``) and the TLS key logs (``tls-keys.log``, the per-case
``captures/*.keys.log``) that decrypt every captured TLS session. :func:`bundle` copies the folder
without them, unless asked, and writes ``BUNDLE.txt`` saying what was left out and why.

A file is a secret by what it holds, not by its name: a PEM private key, an NSS key log line, or a
key file by its extension (a DER key has no marker to look for). Files the bundle keeps but that
carry something a vendor should know about are named in the manifest too: a capture with an HTTP
Basic ``Authorization`` header in clear text (OCPP security profile 1) holds the station's
password.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

MANIFEST = "BUNDLE.txt"
#: the labels an NSS key log (SSLKEYLOGFILE) starts its lines with
KEY_LOG_LABELS = (b"CLIENT_RANDOM ", b"CLIENT_HANDSHAKE_TRAFFIC_SECRET ", b"SERVER_HANDSHAKE_TRAFFIC_SECRET ",
                  b"CLIENT_TRAFFIC_SECRET_0 ", b"SERVER_TRAFFIC_SECRET_0 ", b"EXPORTER_SECRET ",
                  b"CLIENT_EARLY_TRAFFIC_SECRET ", b"EARLY_EXPORTER_SECRET ")
KEY_SUFFIXES = (".key", ".pk8", ".p12", ".pfx")
#: how much of a file is read to tell what it is
SNIFF = 1 << 20


def secret(path: Path) -> str | None:
    """Why ``path`` is a secret (None: it is not)."""
    if path.suffix.lower() in KEY_SUFFIXES:
        return "a private key file"
    with path.open("rb") as handle:
        head = handle.read(SNIFF)
    if b"PRIVATE KEY-----" in head:
        return "holds a PEM private key"
    if any(line.startswith(KEY_LOG_LABELS) for line in head.splitlines()):
        return "a TLS key log (it decrypts the captured TLS sessions)"
    return None


def caution(path: Path) -> str | None:
    """What a kept file carries that a vendor should know about (None: nothing)."""
    if path.suffix.lower() not in (".pcap", ".pcapng"):
        return None
    with path.open("rb") as handle:
        while chunk := handle.read(SNIFF):
            if b"Authorization: Basic " in chunk or b"authorization: Basic " in chunk:
                return "holds an HTTP Basic Authorization header in clear text (the station's OCPP password)"
    return None


@dataclass
class Bundle:
    source: Path
    target: Path
    copied: list[str] = field(default_factory=list)
    left_out: dict[str, str] = field(default_factory=dict)
    cautions: dict[str, str] = field(default_factory=dict)
    with_secrets: bool = False

    def manifest(self) -> str:
        lines = [f"Report bundle of {self.source.name}: {len(self.copied)} file(s)."]
        if self.with_secrets:
            lines.append("SECRETS INCLUDED on request (--with-secrets): private keys and TLS key logs are in it.")
        if self.left_out:
            lines.append("")
            lines.append("Left out (secrets; the lab keeps them):")
            lines += [f"  {name}: {why}" for name, why in sorted(self.left_out.items())]
        if self.cautions:
            lines.append("")
            lines.append("Kept, but note:")
            lines += [f"  {name}: {why}" for name, why in sorted(self.cautions.items())]
        return "\n".join(lines) + "\n"


def bundle(source: Path, target: Path, *, with_secrets: bool = False) -> Bundle:
    """Copy the report folder ``source`` to ``target`` (which must not exist or be empty), leaving
    the secrets out unless ``with_secrets``; the manifest goes into ``target`` as BUNDLE.txt."""
    source = source.resolve()
    if not (source / "conformance.json").is_file():
        raise ValueError(f"{source} is not a report folder (it has no conformance.json)")
    if target.exists() and any(target.iterdir()):
        raise ValueError(f"{target} exists and is not empty")
    if target.resolve().is_relative_to(source):
        raise ValueError(f"{target} lies inside the report folder {source}")
    result = Bundle(source, target, with_secrets=with_secrets)
    for path in sorted(p for p in source.rglob("*") if p.is_file() and not p.is_symlink()):
        name = path.relative_to(source).as_posix()
        why = secret(path)
        if why is not None and not with_secrets:
            result.left_out[name] = why
            continue
        note = caution(path)
        if note is not None:
            result.cautions[name] = note
        destination = target / name
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, destination)
        result.copied.append(name)
    target.mkdir(parents=True, exist_ok=True)
    (target / MANIFEST).write_text(result.manifest(), encoding="utf-8")
    return result
