"""A Belgian-eID-like PKI for tests, built with ``cryptography`` in a directory of its own.

    pki = EidPki(tmp_path / "pki")
    jan = pki.person("jan", "Jan", "Peeters", nrn=national_register_number(date(1985, 7, 30), 33))
    pki.ca_bundle        # client-ca-bundle.pem: Citizen CA + Belgium Root CA (the server's trust anchors)
    jan.cert, jan.key    # jan.pem / jan.key: the authentication certificate and its private key
    pki.write_crl([old]) # citizen-ca.crl.pem revoking ``old``

The chain is "Belgium Root CA" -> "Citizen CA" -> "<Given> <Surname> (Authentication)", as on a real card:
EC P-384 keys, subject ``C=BE, CN, SN, GN, serialNumber=<national register number>``, KeyUsage digitalSignature,
ExtendedKeyUsage clientAuth. Negative certificates come from the same builder: ``expired=True``,
``eku=[SERVER_AUTH]``, or ``issuer=pki.lookalike()`` (a chain with the very same names but other keys, trusted
by nobody). Everything is deterministic except keys and serial numbers. Only ``cryptography`` is needed.
"""
from __future__ import annotations

import datetime as dt
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

UTC = dt.timezone.utc
CLIENT_AUTH = ExtendedKeyUsageOID.CLIENT_AUTH
SERVER_AUTH = ExtendedKeyUsageOID.SERVER_AUTH


def national_register_number(birth: dt.date, serial: int) -> str:
    """A well-formed Belgian national register number: YYMMDD, a 3-digit serial (odd for men, even for women),
    and the 2-digit check 97 - (number mod 97), where people born from 2000 on have a "2" put in front."""
    if not 1 <= serial <= 998:
        raise ValueError("serial must be 1..998")
    first9 = f"{birth:%y%m%d}{serial:03d}"
    base = int(("2" if birth.year >= 2000 else "") + first9)
    return f"{first9}{97 - base % 97:02d}"


def _write_key(path: Path, key) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()))


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class Authority:
    """A CA: its certificate and key (and the file its certificate was written to)."""

    name: str
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    path: Path


@dataclass(frozen=True)
class ClientCert:
    """One client certificate on disk: ``cert`` (leaf PEM), ``key`` (PKCS#8 PEM, mode 600) and ``chain``
    (leaf + issuing CA, for clients that send the intermediate)."""

    name: str
    cert: Path
    key: Path
    chain: Path
    x509: x509.Certificate
    nrn: str
    common_name: str

    @property
    def serial(self) -> int:
        return self.x509.serial_number

    @property
    def fingerprint(self) -> str:
        return self.x509.fingerprint(hashes.SHA256()).hex()


class EidPki:
    def __init__(self, directory: Path, *, now: dt.datetime | None = None):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.now = now or dt.datetime.now(UTC)
        self.root = self._ca("root-ca", "Belgium Root CA", None)
        self.citizen = self._ca("citizen-ca", "Citizen CA", self.root, serial_number="202001")
        self.ca_bundle = self.dir / "client-ca-bundle.pem"
        self.ca_bundle.write_bytes(_pem(self.citizen.cert) + _pem(self.root.cert))
        self.crl: Path | None = None
        self._lookalike: Authority | None = None

    # -- authorities ---------------------------------------------------------------------------------------
    def _ca(self, file_stem: str, cn: str, parent: Authority | None, *, serial_number: str = "") -> Authority:
        key = ec.generate_private_key(ec.SECP384R1())
        attrs = [x509.NameAttribute(NameOID.COUNTRY_NAME, "BE"), x509.NameAttribute(NameOID.COMMON_NAME, cn)]
        if serial_number:
            attrs.append(x509.NameAttribute(NameOID.SERIAL_NUMBER, serial_number))
        subject = x509.Name(attrs)
        issuer_name = parent.cert.subject if parent else subject
        signing_key = parent.key if parent else key
        b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer_name).public_key(key.public_key())
             .serial_number(x509.random_serial_number())
             .not_valid_before(self.now - dt.timedelta(days=365)).not_valid_after(self.now + dt.timedelta(days=3650))
             .add_extension(x509.BasicConstraints(ca=True, path_length=None if parent is None else 0), critical=True)
             .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                          data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                          crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
             .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
        if parent is not None:
            b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(parent.key.public_key()),
                                critical=False)
        cert = b.sign(signing_key, hashes.SHA384())
        path = self.dir / f"{file_stem}.pem"
        path.write_bytes(_pem(cert))
        return Authority(cn, cert, key, path)

    def lookalike(self) -> Authority:
        """A second "Belgium Root CA" -> "Citizen CA" chain with the same names and other keys: not trusted."""
        if self._lookalike is None:
            root = self._ca("lookalike-root-ca", "Belgium Root CA", None)
            self._lookalike = self._ca("lookalike-citizen-ca", "Citizen CA", root, serial_number="202001")
        return self._lookalike

    # -- people's authentication certificates --------------------------------------------------------------
    def person(self, name: str, given: str, surname: str, nrn: str, *, issuer: Authority | None = None,
               expired: bool = False, not_yet_valid: bool = False,
               eku: list[x509.ObjectIdentifier] | None = None) -> ClientCert:
        """The authentication certificate of a card holder, written to ``<name>.pem`` / ``<name>.key``."""
        if not (len(nrn) == 11 and nrn.isdigit()):
            raise ValueError("a national register number has 11 digits")
        issuer = issuer or self.citizen
        key = ec.generate_private_key(ec.SECP384R1())
        cn = f"{given} {surname} (Authentication)"
        subject = x509.Name([
            x509.NameAttribute(NameOID.COUNTRY_NAME, "BE"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
            x509.NameAttribute(NameOID.SURNAME, surname),
            x509.NameAttribute(NameOID.GIVEN_NAME, given),
            x509.NameAttribute(NameOID.SERIAL_NUMBER, nrn),
        ])
        if expired:
            start, end = self.now - dt.timedelta(days=3650), self.now - dt.timedelta(days=1)
        elif not_yet_valid:
            start, end = self.now + dt.timedelta(days=1), self.now + dt.timedelta(days=3650)
        else:
            start, end = self.now - dt.timedelta(days=30), self.now + dt.timedelta(days=3600)
        cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer.cert.subject)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(start).not_valid_after(end)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                             data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                             crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
                .add_extension(x509.ExtendedKeyUsage(eku or [CLIENT_AUTH]), critical=False)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
                               critical=False)
                .sign(issuer.key, hashes.SHA384()))
        cpath, kpath, chain = self.dir / f"{name}.pem", self.dir / f"{name}.key", self.dir / f"{name}-chain.pem"
        cpath.write_bytes(_pem(cert))
        chain.write_bytes(_pem(cert) + _pem(issuer.cert))
        _write_key(kpath, key)
        return ClientCert(name, cpath, kpath, chain, cert, nrn, cn)

    # -- machine accounts --------------------------------------------------------------------------------------
    def self_signed(self, name: str, common_name: str | None = None, *, nrn: str = "") -> ClientCert:
        """A self-signed clientAuth certificate, as a machine account has pinned to it by fingerprint; with
        ``nrn``, its subject carries that serialNumber as an eID's does."""
        key = ec.generate_private_key(ec.SECP384R1())
        attrs = [x509.NameAttribute(NameOID.COUNTRY_NAME, "BE"),
                 x509.NameAttribute(NameOID.COMMON_NAME, common_name or name)]
        if nrn:
            attrs.append(x509.NameAttribute(NameOID.SERIAL_NUMBER, nrn))
        subject = x509.Name(attrs)
        cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(self.now - dt.timedelta(minutes=5)).not_valid_after(self.now + dt.timedelta(days=30))
                .add_extension(x509.ExtendedKeyUsage([CLIENT_AUTH]), critical=False)
                .sign(key, hashes.SHA384()))
        cpath, kpath = self.dir / f"{name}.pem", self.dir / f"{name}.key"
        cpath.write_bytes(_pem(cert))
        _write_key(kpath, key)
        return ClientCert(name, cpath, kpath, cpath, cert, nrn, common_name or name)

    def pinnable_issuer(self, name: str, *, version1: bool = False) -> tuple[Authority, ClientCert]:
        """A self-signed certificate that is not marked as a CA (no basicConstraints), so that it may be pinned
        to a machine account, but that OpenSSL would let sign others when trusted: a v3 certificate with
        keyCertSign in its key usage, or (``version1``, made by the ``openssl`` command, as cryptography only
        writes v3) a version 1 certificate. Returned as an Authority (to issue with) and as a ClientCert."""
        kpath, cpath = self.dir / f"{name}.key", self.dir / f"{name}.pem"
        if version1:
            csr = self.dir / f"{name}.csr"
            key = ec.generate_private_key(ec.SECP384R1())
            _write_key(kpath, key)
            subprocess.run(["openssl", "req", "-new", "-key", str(kpath), "-subj", f"/C=BE/CN={name}", "-out",
                            str(csr)], check=True, capture_output=True)
            subprocess.run(["openssl", "x509", "-req", "-in", str(csr), "-signkey", str(kpath), "-days", "30",
                            "-out", str(cpath)], check=True, capture_output=True)
            cert = x509.load_pem_x509_certificate(cpath.read_bytes())
            assert cert.version is x509.Version.v1
        else:
            key = ec.generate_private_key(ec.SECP384R1())
            subject = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "BE"),
                                 x509.NameAttribute(NameOID.COMMON_NAME, name)])
            cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                    .public_key(key.public_key()).serial_number(x509.random_serial_number())
                    .not_valid_before(self.now - dt.timedelta(minutes=5))
                    .not_valid_after(self.now + dt.timedelta(days=30))
                    .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                                 key_encipherment=False, data_encipherment=False, key_agreement=False,
                                                 key_cert_sign=True, crl_sign=False, encipher_only=False,
                                                 decipher_only=False), critical=True)
                    .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                    .sign(key, hashes.SHA384()))
            cpath.write_bytes(_pem(cert))
            _write_key(kpath, key)
        return Authority(name, cert, key, cpath), ClientCert(name, cpath, kpath, cpath, cert, "", name)

    # -- revocation ----------------------------------------------------------------------------------------
    def write_crl(self, revoked: list[ClientCert], *, issuer: Authority | None = None) -> Path:
        """``citizen-ca.crl.pem``: the Citizen CA's CRL listing ``revoked`` (valid from 5 minutes ago, one day)."""
        issuer = issuer or self.citizen
        b = (x509.CertificateRevocationListBuilder().issuer_name(issuer.cert.subject)
             .last_update(self.now - dt.timedelta(minutes=5)).next_update(self.now + dt.timedelta(days=1))
             .add_extension(x509.CRLNumber(1), critical=False)
             .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
                            critical=False))
        for c in revoked:
            b = b.add_revoked_certificate(x509.RevokedCertificateBuilder().serial_number(c.serial)
                                          .revocation_date(self.now - dt.timedelta(minutes=1)).build())
        crl = b.sign(issuer.key, hashes.SHA384())
        path = self.dir / ("citizen-ca.crl.pem" if issuer is self.citizen else f"{issuer.path.stem}.crl.pem")
        path.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
        if issuer is self.citizen:
            self.crl = path
        return path


__all__ = ["Authority", "CLIENT_AUTH", "ClientCert", "EidPki", "SERVER_AUTH", "national_register_number"]
