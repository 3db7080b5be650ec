"""The WebDAV front-end's domain controller: logins over HTTP Basic (eID + password, device password) or a client
certificate pinned to a machine account, each through the core's one ``Mailbox.login``. The core session it gets is
kept in the WSGI environ under ``SESSION_KEY``; :func:`session_of` reads it back and never proceeds as anonymous.
"""
from __future__ import annotations

import logging

from wsgidav.dc.base_dc import BaseDomainController

from auth.authenticator import (ClientCertificateCredentials, DevicePasswordCredentials, EidCredentials,
                                PasswordCredentials)
from auth.secondfactor import DevicePasswords
from gateway.core.mailbox import Mailbox
from gateway.core.session import MailboxSession
from gateway.dav.errors import GatewayDAVError
from gateway.web.websession import client_certificate, retry_after
from storage.errors import AuthenticationFailed, GatewayError, ServiceUnavailable

log = logging.getLogger("instpages.webdav")

REALM = "Institutional Pages"
SESSION_KEY = "instpages.session"


def session_of(environ) -> MailboxSession:
    """The core session of this request's login; 401 when there is none."""
    s = environ.get(SESSION_KEY)
    if s is None:  # never proceed as anonymous
        raise GatewayDAVError(401, "authentication required")
    return s


class GatewayDomainController(BaseDomainController):
    """HTTP Basic over TLS, verified by the core's one login. No digest, no anonymous."""

    def __init__(self, wsgidav_app, config):
        super().__init__(wsgidav_app, config)
        self.mailbox: Mailbox = config["instpages"]["mailbox"]
        self.cache_seconds: float = config["instpages"]["auth_cache_seconds"]

    def __str__(self):
        return "GatewayDomainController"

    def get_domain_realm(self, path_info, environ):
        return REALM

    def require_authentication(self, realm, environ):
        """A client certificate pinned to a machine account logs in without Basic credentials."""
        if environ is None:  # wsgidav's start-up probe
            return True
        cert = client_certificate(environ)
        if not cert or not self.mailbox.knows_client_certificate(cert):
            return True  # no machine certificate: Basic (eID + password, or a device password) applies
        source = environ.get("instpages.source") or environ.get("REMOTE_ADDR", "")
        try:
            session = self.mailbox.login(ClientCertificateCredentials(cert), protocol="webdav", source=source,
                                         reuse_seconds=self.cache_seconds)
        except GatewayError:
            return True  # refused (and recorded): no session, so the request ends in 401
        environ[SESSION_KEY] = session
        environ["wsgidav.auth.user_name"] = session.principal.name
        return False

    def supports_http_digest_auth(self):
        return False

    def basic_auth_user(self, realm, user_name, password, environ):
        """People: the eID certificate presented in the TLS handshake plus the password, or a device password.
        (A password alone only where auth.second_factor is off, for test set-ups.)"""
        if "\\" in user_name:  # DOMAIN\user from Windows
            user_name = user_name.rsplit("\\", 1)[1]
        source = environ.get("instpages.source") or environ.get("REMOTE_ADDR", "")
        cert = client_certificate(environ)
        if self.mailbox.presents_eid(cert):
            creds = EidCredentials(user_name, password, cert)
        elif DevicePasswords.looks_like_one(password):
            creds = DevicePasswordCredentials(user_name, password)
        else:
            creds = PasswordCredentials(user_name, password)
        try:
            session = self.mailbox.login(creds, protocol="webdav", source=source, reuse_seconds=self.cache_seconds)
        except AuthenticationFailed as exc:
            if exc.throttled:  # answered at once; drive clients know 401, and Retry-After says when to try again
                raise GatewayDAVError(401, "too many failed logins; try again later", [
                    ("WWW-Authenticate", f'Basic realm="{REALM}", charset="UTF-8"'),
                    ("Retry-After", retry_after(exc))]) from None
            return False
        except ServiceUnavailable as exc:
            raise GatewayDAVError(503, exc.message) from None
        except GatewayError:
            log.exception("login failed with a service error")
            return False
        environ[SESSION_KEY] = session
        environ["wsgidav.auth.user_name"] = session.principal.name
        return True

    def digest_auth_user(self, realm, user_name, environ):  # pragma: no cover - digest is off
        return False
