"""Certificate revocation for client certificates (for :mod:`auth.clientcert`), checked by the gateway rather
than by OpenSSL.

OpenSSL's CRL checking (VERIFY_CRL_CHECK_LEAF) demands a CRL for the issuer of every client certificate, which
would lock out machine accounts whose pinned certificates have none. Here a certificate is refused only when a
configured CRL of its own issuer lists its serial number. A :class:`RevocationList` holds what its files said when
it was made; :meth:`auth.clientcert.ClientCertificates.reload` makes a new one (``instpages reload``).
"""
from __future__ import annotations

import logging

from cryptography import x509

log = logging.getLogger("instpages.crl")


class RevocationList:
    def __init__(self, files=()):
        self._revoked: dict[bytes, set[int]] = {}
        for f in files:
            with open(f, "rb") as fh:
                data = fh.read()
            crl = (x509.load_pem_x509_crl(data) if b"-----BEGIN" in data else x509.load_der_x509_crl(data))
            serials = self._revoked.setdefault(crl.issuer.public_bytes(), set())
            serials.update(r.serial_number for r in crl)
        if files:
            log.info("client certificate CRLs: %d issuers, %d revoked serials", len(self._revoked),
                     sum(map(len, self._revoked.values())))

    def is_revoked(self, cert: x509.Certificate) -> bool:
        return cert.serial_number in self._revoked.get(cert.issuer.public_bytes(), ())
