"""Client certificates for machine accounts (pinned by fingerprint on the HTTPS port), as PEM files and, for
clients that want one (cadaver), as an unencrypted PKCS#12 bundle."""
from __future__ import annotations

import datetime
import subprocess
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def make_cert(tmp_path: Path, name: str) -> tuple[Path, Path]:
    """A self-signed clientAuth certificate ``<name>.pem`` and its key ``<name>.key`` in ``tmp_path``."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(key, hashes.SHA256()))
    cpath, kpath = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
    cpath.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    kpath.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()))
    return cpath, kpath


def as_pkcs12(cert: Path, key: Path) -> Path:
    """The pair as ``<name>.p12`` next to it, with an empty passphrase, written by the openssl command: cadaver
    (neon over GnuTLS) loads that form, not the MAC-less one ``cryptography`` writes without a passphrase."""
    out = cert.with_suffix(".p12")
    subprocess.run(["openssl", "pkcs12", "-export", "-in", str(cert), "-inkey", str(key), "-out", str(out),
                    "-passout", "pass:"], check=True, capture_output=True, timeout=30)
    return out


def add_machine(gw, tmp_path: Path, name: str, role: str = "uploader") -> tuple[Path, Path]:
    """A machine account ``name`` (``role``) with a fresh certificate pinned to it, trusted by the running gateway
    at once; returns the certificate and key files."""
    cert = make_cert(tmp_path, name)
    gw.admin.add_account(name, role, client_certs=[cert[0].read_text()])
    gw._server.https.refresh_trust()
    return cert
