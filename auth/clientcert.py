"""TLS client certificates: the one place they are parsed and judged.

The TLS layer only proves that the client holds the private key of the certificate it presented; who that is,
is decided here, in one of two ways that never mix:

- **pinned** (machine accounts): the SHA-256 fingerprint of the presented certificate itself is registered to an
  account. A pinned certificate vouches for exactly that certificate and never for one it signed.
- **eID** (people): the certificate's chain verifies against the configured eID trust anchors
  (``webdav.client_ca_file``) and nothing else -- signatures, dates, CA constraints (basicConstraints, key
  usage), clientAuth where the certificate names its uses -- and no configured CRL revokes it. Only then is its
  subject serialNumber the person's national register number. A certificate pinned to a machine account is never
  an eID, whatever its subject says.

Python's ``ssl`` module gives only the client's leaf certificate, not the intermediates the client sent, so the
eID CA file must hold the intermediate CAs (the Citizen CAs) as well as the roots.

The trust anchors and CRLs are read from their files at start and again by :meth:`ClientCertificates.reload`
(``instpages reload`` reaches every gateway process through the ``trust`` cache epoch); verdicts are remembered
for ``VERDICT_SECONDS`` per certificate and dropped by a reload.
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from auth.crl import RevocationList

log = logging.getLogger("instpages.clientcert")

#: seconds a verification result is remembered per certificate (every HTTP request asks again)
VERDICT_SECONDS = 60.0
_VERDICTS_MAX = 4096


class NotAnEid(Exception):
    """The certificate is not a valid eID authentication certificate; ``reason`` goes to the record only."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def load(data: str | bytes | None) -> x509.Certificate | None:
    """A certificate from PEM (text or bytes) or DER; None when there is none or it does not parse."""
    if not data:
        return None
    raw = data.encode("ascii", "replace") if isinstance(data, str) else bytes(data)
    try:
        if b"-----BEGIN" in raw:
            return x509.load_pem_x509_certificate(raw)
        return x509.load_der_x509_certificate(raw)
    except ValueError:
        return None


def fingerprint(cert: x509.Certificate) -> str:
    """What a certificate is pinned by: the SHA-256 of its DER encoding, hex."""
    return cert.fingerprint(hashes.SHA256()).hex()


def subject_nrn(cert: x509.Certificate) -> str:
    """The subject's serialNumber when it is a national register number (11 digits), else ""."""
    values = cert.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
    nrn = values[0].value if len(values) == 1 else ""
    return nrn if isinstance(nrn, str) and len(nrn) == 11 and nrn.isdigit() else ""


def _client_auth_if_named(_policy, _cert, eku) -> None:
    """A leaf that lists its uses must list clientAuth (OpenSSL's rule for TLS clients); eID authentication
    certificates need not list any."""
    if eku is not None and ExtendedKeyUsageOID.CLIENT_AUTH not in eku:
        raise ValueError("the certificate is not for client authentication")


def _ee_policy() -> verification.ExtensionPolicy:
    # the Web PKI rules for end-entity certificates, except that personal certificates carry no subjectAltName
    # and need not carry an extendedKeyUsage
    return (verification.ExtensionPolicy.webpki_defaults_ee()
            .may_be_present(x509.SubjectAlternativeName, verification.Criticality.AGNOSTIC, None)
            .may_be_present(x509.ExtendedKeyUsage, verification.Criticality.AGNOSTIC, _client_auth_if_named))


class _Anchors:
    """The eID trust anchors and CRLs as read from their files at one moment."""

    def __init__(self, eid_ca_file: str, crl_files):
        self.crl = RevocationList(crl_files)
        cas = x509.load_pem_x509_certificates(Path(eid_ca_file).read_bytes()) if eid_ca_file else []
        self.roots = [c for c in cas if c.subject == c.issuer]
        self.intermediates = [c for c in cas if c.subject != c.issuer]
        self.store = verification.Store(self.roots) if self.roots else None
        if cas and not self.roots:
            log.error("webdav.client_ca_file holds no root CA: no eID certificate can be verified")


class ClientCertificates:
    """The eID trust anchors and revocation lists; the judge of presented certificates."""

    def __init__(self, eid_ca_file: str = "", crl_files=(), *, clock=time.time):
        self.clock = clock
        self._files = (eid_ca_file, tuple(crl_files))
        self._anchors = _Anchors(eid_ca_file, crl_files)  # raises OSError/ValueError: a configuration error
        self._verdicts: dict[str, tuple[float, str, str]] = {}
        self._lock = threading.Lock()

    @property
    def crl(self) -> RevocationList:
        return self._anchors.crl

    def reload(self) -> bool:
        """Read the trust anchors and CRLs from their files again and forget every verdict. A file that cannot
        be read keeps the current ones (logged): a running gateway never ends up trusting nothing by accident.
        True when the new files are in use."""
        try:
            anchors = _Anchors(*self._files)
        except (OSError, ValueError) as exc:
            log.error("reloading the eID trust anchors / CRLs failed, keeping the current ones: %s", exc)
            return False
        with self._lock:
            self._anchors = anchors
            self._verdicts.clear()
        log.info("eID trust anchors and CRLs reloaded: %d roots, %d intermediates", len(anchors.roots),
                 len(anchors.intermediates))
        return True

    def is_revoked(self, cert: x509.Certificate) -> bool:
        return self.crl.is_revoked(cert)

    def eid_nrn(self, cert: x509.Certificate) -> str:
        """The national register number of a valid eID certificate. Raises NotAnEid (with the reason)."""
        key = fingerprint(cert)
        now = self.clock()
        with self._lock:
            hit = self._verdicts.get(key)
        if hit is None or now - hit[0] >= VERDICT_SECONDS:
            anchors = self._anchors
            nrn, reason = self._judge(anchors, cert, now)
            with self._lock:
                if len(self._verdicts) >= _VERDICTS_MAX:
                    self._verdicts.clear()
                if anchors is self._anchors:  # not judged by anchors a reload replaced meanwhile
                    self._verdicts[key] = (now, nrn, reason)
        else:
            _, nrn, reason = hit
        if not nrn:
            raise NotAnEid(reason)
        return nrn

    @staticmethod
    def _judge(anchors: _Anchors, cert: x509.Certificate, now: float) -> tuple[str, str]:
        if anchors.store is None:
            return "", "no eID trust anchors are configured (webdav.client_ca_file)"
        builder = (verification.PolicyBuilder().store(anchors.store).max_chain_depth(4)
                   .time(dt.datetime.fromtimestamp(now, dt.timezone.utc))
                   .extension_policies(ca_policy=verification.ExtensionPolicy.webpki_defaults_ca(),
                                       ee_policy=_ee_policy()))
        try:
            chain = builder.build_client_verifier().verify(cert, anchors.intermediates).chain
        except verification.VerificationError as exc:
            return "", f"does not verify against the eID trust anchors ({str(exc)[:160]})"
        for c in chain[:-1]:
            if anchors.crl.is_revoked(c):
                return "", f"revoked (serial {c.serial_number:x}, issuer {c.issuer.rfc4514_string()[:120]})"
        nrn = subject_nrn(cert)
        if not nrn:
            return "", "no national register number in the subject serialNumber"
        return nrn, ""


__all__ = ["ClientCertificates", "NotAnEid", "fingerprint", "load", "subject_nrn"]
