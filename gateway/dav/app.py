"""The WebDAV front-end: wsgidav with our own DAV provider over the mailbox core.

Like the SFTP front-end it only translates: HTTP Basic credentials into one ``Mailbox.login``, DAV requests into
``MailboxSession`` calls, and core errors into HTTP statuses through the one table ``ERRORS``. Nothing here
decides who may do what, and nothing proceeds as "anonymous": a request without a core session never reaches
the provider.

Middleware order (outermost first): :class:`FrontDoor` (OPTIONS without authentication, the path and the Basic
credentials parsed), wsgidav's ErrorPrinter, :class:`CoreErrors` (core errors raised through wsgidav's code keep
their status), wsgidav's HTTPAuthenticator (Basic only, our domain controller), :class:`SessionGuard` (401 unless
the core accepted the login), :class:`RequestChecks` (XML bodies checked with defusedxml, bounded,
``Depth: infinity`` refused on collections), :class:`WriteChecks` (each write and LOCK asks the core first),
:class:`FastPropfind`, :class:`ListingPage` (a safe HTML listing for browsers), wsgidav's RequestResolver.
"""
from __future__ import annotations

import html
import io
import logging
import mimetypes
import threading
import time
from functools import partial
from typing import Iterable
from urllib.parse import quote, unquote, urlparse

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException
from wsgidav import util
from wsgidav.dav_error import (HTTP_BAD_REQUEST, HTTP_CONFLICT, HTTP_FORBIDDEN, HTTP_INTERNAL_ERROR, HTTP_NOT_FOUND,
                               DAVError)
from wsgidav.dav_provider import DAVCollection, DAVNonCollection, DAVProvider
from wsgidav.dc.base_dc import BaseDomainController
from wsgidav.error_printer import ErrorPrinter
from wsgidav.http_authenticator import HTTPAuthenticator
from wsgidav.mw.base_mw import BaseMiddleware
from wsgidav.request_resolver import RequestResolver
from wsgidav.wsgidav_app import WsgiDAVApp
from xml.etree.ElementTree import ParseError

from auth.authenticator import (ClientCertificateCredentials, DevicePasswordCredentials, EidCredentials,
                                PasswordCredentials)
from auth.networks import client_address
from auth.secondfactor import DevicePasswords
from gateway.core import path as vpath
from gateway.dav.state import DbLockStorage, DbPropertyManager, GatewayLockManager, LockPrincipal
from gateway.web.httpauth import basic_header, parse_authorization
from gateway.core.entry import Entry
from gateway.core.mailbox import Mailbox
from gateway.core.session import MailboxSession
from gateway.web.websession import client_certificate, retry_after
from storage import errors
from storage.errors import (AlreadyExists, AuthenticationFailed, GatewayError, MalformedCredentials, NotFound,
                            ServiceUnavailable, lookup)

log = logging.getLogger("instpages.webdav")

REALM = "Institutional Pages"
SESSION_KEY = "instpages.session"
MAX_XML_BODY = 1024 * 1024
DAV_METHODS = "OPTIONS, GET, HEAD, PUT, DELETE, PROPFIND, PROPPATCH, MKCOL, COPY, MOVE, LOCK, UNLOCK"
# Finder's resource forks and folder settings: answered, never stored
_JUNK_PREFIXES = ("._",)
_JUNK_NAMES = {".DS_Store", "Thumbs.db", "desktop.ini", ".localized"}

# The one translation table: core error (storage.errors) -> HTTP status, looked up along the error's MRO. The
# error's message becomes the plain-text body. tests/test_errors.py checks that it answers every error; only a
# server fault (damaged stored bytes, bad configuration) is a 500.
ERRORS: dict[type[GatewayError], int] = {
    errors.NotFound: HTTP_NOT_FOUND,
    errors.PermissionDenied: HTTP_FORBIDDEN,
    errors.InstitutionNotActive: HTTP_FORBIDDEN,
    errors.AlreadyExists: HTTP_CONFLICT,
    errors.ContentRefused: 415,
    errors.TooLarge: 413,
    errors.InvalidName: HTTP_BAD_REQUEST,
    errors.MalformedRequest: HTTP_BAD_REQUEST,
    errors.Unsupported: HTTP_FORBIDDEN,
    errors.IntegrityFailure: HTTP_INTERNAL_ERROR,
    errors.ServiceUnavailable: 503,
    errors.AuthenticationFailed: HTTP_FORBIDDEN,  # inside a session; the login itself answers its own 401
    errors.Throttled: HTTP_FORBIDDEN,
    errors.ConfigError: HTTP_INTERNAL_ERROR,
    errors.Conflict: HTTP_CONFLICT,
    errors.AdminError: HTTP_BAD_REQUEST,
    errors.AdminNotFound: HTTP_NOT_FOUND,
    errors.AdminForbidden: HTTP_FORBIDDEN,
    errors.AdminConflict: HTTP_CONFLICT,
}


class GatewayDAVError(DAVError):
    """A DAV error whose body is the plain-text reason (no server banner, no HTML)."""

    def __init__(self, status: int, message: str, headers: list[tuple[str, str]] | None = None):
        super().__init__(status, context_info=message, add_headers=headers)
        self.message = message


def _plain_error_page(self: DAVError):
    """Every error body is plain text: the status and the reason, no HTML, no server banner."""
    if self.err_condition:
        return "application/xml; charset=utf-8", self.err_condition.as_string().encode()
    reason = getattr(self, "message", None) or self.context_info or ""
    return "text/plain; charset=utf-8", f"{util.get_http_status_string(self.value)}\n{reason}\n".encode()


# wsgidav renders its own errors (409 for a missing parent, 423 Locked...) as HTML naming its version
DAVError.get_response_page = _plain_error_page


def to_dav_error(exc: GatewayError) -> DAVError:
    return GatewayDAVError(lookup(ERRORS, exc) or HTTP_INTERNAL_ERROR, exc.message)


def _core(fn, *args):
    try:
        return fn(*args)
    except GatewayError as exc:
        raise to_dav_error(exc) from None


def _is_junk(name: str) -> bool:
    return name in _JUNK_NAMES or name.startswith(_JUNK_PREFIXES)


def _resolve(session: MailboxSession, path: str) -> tuple[vpath.VPath, Entry] | None:
    """The entry at ``path`` as this session sees it; None when there is none (wsgidav then answers 404)."""
    try:
        vp = vpath.parse(path)
        return vp, session.stat(vp)
    except NotFound:
        return None
    except GatewayError as exc:
        raise to_dav_error(exc) from None


def _request_target(environ) -> tuple[MailboxSession, str, vpath.VPath, Entry] | None:
    """For a middleware past the login: the session, the request's path and what the core finds there; None when
    nothing is there (the request goes on to wsgidav)."""
    session: MailboxSession = environ[SESSION_KEY]
    path = environ.get("PATH_INFO") or "/"
    found = _resolve(session, path)
    return None if found is None else (session, path, *found)


def _session(environ) -> MailboxSession:
    s = environ.get(SESSION_KEY)
    if s is None:  # never proceed as anonymous
        raise GatewayDAVError(401, "authentication required")
    return s


# -- resources ------------------------------------------------------------------------------------------------
class _Common:
    entry: Entry
    vp: vpath.VPath

    def get_display_name(self):
        return self.entry.display_name or self.entry.name

    def get_creation_date(self):
        return self.entry.mtime

    def get_last_modified(self):
        return self.entry.mtime

    def _check_writable(self):
        """PROPPATCH and other metadata writes need write permission in the centre."""
        _core(self.session.check_writable, self.vp)

    def set_property_value(self, name, value, *, dry_run=False):
        self._check_writable()
        return super().set_property_value(name, value, dry_run=dry_run)

    def set_last_modified(self, dest_path, time_stamp, *, dry_run):
        """Windows sets Win32LastModifiedTime after a copy; documents keep their delivery time, and the
        request is accepted so that Explorer does not report an error."""
        return True


class FolderResource(_Common, DAVCollection):
    def __init__(self, path: str, environ: dict, session: MailboxSession, vp: vpath.VPath, entry: Entry):
        super().__init__(path, environ)
        self.session, self.vp, self.entry = session, vp, entry
        self._members: list[Entry] | None = None

    def get_etag(self):
        return None

    def _list(self) -> list[Entry]:
        if self._members is None:
            self._members = _core(self.session.list, self.vp)
        return self._members

    def get_member_names(self):
        return [e.name for e in self._list()]

    def get_member_list(self):
        base = self.path.rstrip("/") + "/"
        return [make_resource(base + e.name + ("/" if e.is_folder else ""), self.environ, self.session,
                              self.vp.child(e.name), e) for e in self._list()]

    def get_member(self, name):
        for e in self._list():
            if e.name == name:
                return make_resource(self.path.rstrip("/") + "/" + name, self.environ, self.session,
                                     self.vp.child(name), e)
        return None

    def create_empty_resource(self, name):
        if _is_junk(name):
            return JunkResource(self.path.rstrip("/") + "/" + name, self.environ)
        return DocumentResource(self.path.rstrip("/") + "/" + name, self.environ, self.session,
                                self.vp.child(name), None)

    def create_collection(self, name):
        _core(self.session.mkdir, self.vp.child(name))

    def delete(self):
        # wsgidav also calls this on the destination of MOVE/COPY with Overwrite: T and expects it to be recursive
        self._members = None  # a DELETE request may have removed members since they were listed
        for member in self.get_member_list():
            member.delete()
        _core(self.session.rmdir, self.vp)
        self.remove_all_properties(recursive=True)
        self.remove_all_locks(recursive=True)

    def support_recursive_delete(self):
        return False

    def copy_move_single(self, dest_path, *, is_move):
        if is_move:
            raise GatewayDAVError(HTTP_FORBIDDEN, "folders are moved as a whole")
        dest = vpath.parse(dest_path)
        try:
            self.session.mkdir(dest)
        except AlreadyExists:  # COPY onto an existing folder (Overwrite: T) keeps it and merges into it
            if not _core(self.session.stat, dest).is_folder:
                raise to_dav_error(AlreadyExists()) from None
        except GatewayError as exc:
            raise to_dav_error(exc) from None
        pm = self.provider.prop_manager
        if pm:
            pm.copy_properties(self.get_ref_url(), _ref_url(self.provider, dest_path, collection=True))

    def support_recursive_move(self, dest_path):
        return True

    def move_recursive(self, dest_path):
        _core(self.session.move, self.vp, vpath.parse(dest_path))
        pm = self.provider.prop_manager
        if pm:
            pm.move_properties(self.get_ref_url(), _ref_url(self.provider, dest_path, collection=True),
                               with_children=True)
        return []


class _DownloadStream(io.RawIOBase):
    """File-like view of a core Download for wsgidav's GET (ranges seek); closing it records the download."""

    def __init__(self, download):
        self._d = download
        self._pos = 0

    def readable(self):
        return True

    def seekable(self):
        return True

    def seek(self, offset, whence=io.SEEK_SET):
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._d.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self):
        return self._pos

    def read(self, size=-1):
        if size is None or size < 0:
            size = self._d.size - self._pos
        data = _core(self._d.read, self._pos, size)
        self._pos += len(data)
        return data

    def readinto(self, b):
        data = self.read(len(b))
        b[:len(data)] = data
        return len(data)

    def close(self):
        if not self.closed:
            try:
                self._d.close()
            finally:
                super().close()


class _UploadSink:
    """What wsgidav writes the PUT body into: the core's atomic upload."""

    def __init__(self, upload):
        self.upload = upload
        self.received = 0

    def write(self, data):
        self.received += len(data)
        _core(self.upload.append, bytes(data))

    def close(self):
        pass  # the commit happens in end_write, which knows whether the body arrived whole


class DocumentResource(_Common, DAVNonCollection):
    def __init__(self, path, environ, session: MailboxSession, vp: vpath.VPath, entry: Entry | None):
        super().__init__(path, environ)
        self.session, self.vp = session, vp
        self.entry = entry or Entry(vp.name, False)
        self._sink: _UploadSink | None = None

    def get_content_length(self):
        return self.entry.size

    def get_content_type(self):
        return self.entry.content_type or mimetypes.guess_type(self.entry.name)[0] or "application/octet-stream"

    def get_etag(self):
        return self.entry.sha256[:40] or None

    def support_etag(self):
        return True

    def support_ranges(self):
        return True

    def get_content(self):
        return _DownloadStream(_core(self.session.open_download, self.vp))

    def begin_write(self, *, content_type=None):
        self._sink = _UploadSink(_core(self.session.open_upload, self.vp))
        return self._sink

    def end_write(self, *, with_errors):
        sink, self._sink = self._sink, None
        if sink is None:
            return
        expected = self.environ.get("CONTENT_LENGTH")
        if not with_errors and expected not in (None, ""):
            try:
                short = int(expected) != sink.received
            except ValueError:
                short = True
            if short:
                with_errors = True
                log.info("PUT %s: received %d of %s bytes", self.vp, sink.received, expected)
        if with_errors or self.environ.get("wsgidav.all_input_read") != 1 and expected in (None, ""):
            _core(sink.upload.abort, "request body incomplete (client gone or length short of Content-Length)")
            if not with_errors:
                raise GatewayDAVError(HTTP_BAD_REQUEST, "request body incomplete; nothing was stored")
            return
        self.entry = _core(sink.upload.commit)

    def delete(self):
        _core(self.session.archive, self.vp)
        self.remove_all_properties(recursive=False)
        self.remove_all_locks(recursive=False)

    def copy_move_single(self, dest_path, *, is_move):
        dst = vpath.parse(dest_path)
        if is_move:
            _core(self.session.move, self.vp, dst)
        else:
            _core(self.session.copy_document, self.vp, dst)
        pm = self.provider.prop_manager
        if pm:
            dest_ref = _ref_url(self.provider, dest_path)
            if is_move:
                pm.move_properties(self.get_ref_url(), dest_ref, with_children=False)
            else:
                pm.copy_properties(self.get_ref_url(), dest_ref)

    def support_recursive_move(self, dest_path):
        return True  # otherwise wsgidav deletes the source again after copy_move_single moved it

    def move_recursive(self, dest_path):
        self.copy_move_single(dest_path, is_move=True)
        return []


class JunkResource(DAVNonCollection):
    """``._*`` and ``.DS_Store`` from Finder: accepted and dropped, so the drive stays clean."""

    def get_content_length(self):
        return 0

    def get_content_type(self):
        return "application/octet-stream"

    def get_etag(self):
        return None

    def support_etag(self):
        return False

    def get_content(self):
        return io.BytesIO(b"")

    def begin_write(self, *, content_type=None):
        return io.BytesIO()

    def end_write(self, *, with_errors):
        pass

    def delete(self):
        pass


def _ref_url(provider, path: str, collection: bool = False) -> str:
    return quote(provider.share_path + path.rstrip("/") + ("/" if collection and path != "/" else ""))


def make_resource(path: str, environ: dict, session: MailboxSession, vp: vpath.VPath, entry: Entry):
    if entry.is_folder:
        return FolderResource(path, environ, session, vp, entry)
    return DocumentResource(path, environ, session, vp, entry)


class MailboxProvider(DAVProvider):
    """The virtual tree of the core as DAV resources; no filesystem behind it."""

    def is_readonly(self):
        return False

    def get_resource_inst(self, path: str, environ: dict):
        session = _session(environ)
        name = path.rstrip("/").rsplit("/", 1)[-1]
        if _is_junk(name):
            return None
        try:
            vp = vpath.parse(path)
            entry = session.stat(vp)
        except NotFound:
            return self._locked_placeholder(path, environ, session)
        except GatewayError as exc:
            raise to_dav_error(exc) from None
        return make_resource(path, environ, session, vp, entry)

    def _locked_placeholder(self, path: str, environ: dict, session: MailboxSession):
        """LOCK on a name that holds nothing yet (Windows and Office lock before they PUT): the locked name is a
        placeholder until the PUT stores the document. Nothing is stored for it."""
        if not self.lock_manager or path.endswith("/") or not self.lock_manager.get_url_lock_list(
                _ref_url(self, path)):
            return None
        try:
            vp = vpath.parse(path)
            if session.stat(vp.parent).is_folder:
                return DocumentResource(path, environ, session, vp, None)
        except GatewayError:
            pass
        return None


# -- authentication -------------------------------------------------------------------------------------------
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


# -- middleware -----------------------------------------------------------------------------------------------
def _plain(start_response, status: str, text: str, headers: Iterable[tuple[str, str]] = ()) -> list[bytes]:
    body = (text + "\n").encode()
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body))),
                            *headers])
    return [body]


class FrontDoor:
    """Before authentication: the client's address (X-Forwarded-For only from trusted proxies); OPTIONS, which
    Windows sends unauthenticated; the request path through the one path parser (a path that is no UTF-8 names
    nothing: 404; dot segments resolved inside the tree); Basic credentials through the one parser (malformed ones:
    401, on the record as a failed login)."""

    def __init__(self, app, mailbox: Mailbox, trusted_proxies=()):
        self.app = app
        self.mailbox = mailbox
        self.trusted_proxies = tuple(trusted_proxies)

    def __call__(self, environ, start_response):
        environ.pop(SESSION_KEY, None)  # only our domain controller sets it
        source = environ["instpages.source"] = client_address(
            environ.get("REMOTE_ADDR", ""), environ.get("HTTP_X_FORWARDED_FOR"), self.trusted_proxies)
        method = environ.get("REQUEST_METHOD", "")
        if method == "OPTIONS":
            headers = [("DAV", "1, 2"), ("MS-Author-Via", "DAV"), ("Allow", DAV_METHODS), ("Content-Length", "0")]
            start_response("200 OK", headers)
            return [b""]
        try:
            path = vpath.request_path(environ.get("PATH_INFO", ""))
        except NotFound as exc:
            return _plain(start_response, "404 Not Found", exc.message)
        environ["PATH_INFO"] = path.encode("utf-8").decode("latin-1")  # WSGI's form, as wsgidav expects it
        header = environ.get("HTTP_AUTHORIZATION")
        if header is not None:
            try:
                auth = parse_authorization(header)
            except MalformedCredentials as exc:
                self.mailbox.record_failed_login("", "webdav", source, "basic", exc.reason)
                return _plain(start_response, "401 Unauthorized", "authentication required",
                              [("WWW-Authenticate", f'Basic realm="{REALM}", charset="UTF-8"')])
            if auth.scheme == "basic":  # what wsgidav parses again, in a form it cannot trip over
                environ["HTTP_AUTHORIZATION"] = basic_header(auth)
        return self.app(environ, start_response)


def _on_collection(environ) -> bool:
    """Does the request name a collection? A PROPFIND of Depth infinity (the default, which webdav4 sends before
    every upload) is refused on collections only."""
    found = _resolve(_session(environ), environ.get("PATH_INFO") or "/")
    return found is not None and found[1].is_folder


class CoreErrors(BaseMiddleware):
    """Just inside wsgidav's ErrorPrinter: a core error that escaped through wsgidav's own code (a malformed body
    read by wsgidav, say, which it wraps as a 500) is answered with its status from ``ERRORS``."""

    def is_disabled(self):
        return False

    def __call__(self, environ, start_response):
        try:
            yield from self.next_app(environ, start_response)
        except GatewayError as exc:
            raise to_dav_error(exc) from None
        except DAVError as exc:
            if isinstance(exc.src_exception, GatewayError):
                raise to_dav_error(exc.src_exception) from None
            raise


class RequestChecks(BaseMiddleware):
    """After login (so that a request without valid credentials gets 401 first): XML bodies checked with
    defusedxml before wsgidav parses them, bodies bounded, ``Depth: infinity`` PROPFIND refused on collections."""

    def is_disabled(self):
        return False

    def __call__(self, environ, start_response):
        method = environ.get("REQUEST_METHOD", "")
        if method == "PROPFIND" and environ.get("HTTP_DEPTH", "infinity").strip().lower() == "infinity" \
                and not _on_collection(environ):
            environ["HTTP_DEPTH"] = "0"  # on a document (or nothing) infinity and 0 are the same answer
        if method == "PROPFIND" and environ.get("HTTP_DEPTH", "infinity").strip().lower() == "infinity":
            body = (b'<?xml version="1.0" encoding="utf-8"?>\n<D:error xmlns:D="DAV:"><D:propfind-finite-depth/>'
                    b"</D:error>\n")
            start_response("403 Forbidden", [("Content-Type", "application/xml; charset=utf-8"),
                                              ("Content-Length", str(len(body)))])
            return [body]
        if method in ("PROPFIND", "PROPPATCH", "LOCK", "UNLOCK", "MKCOL", "COPY", "MOVE", "DELETE", "REPORT",
                      "SEARCH"):
            refusal = self._check_xml_body(environ)
            if refusal:
                return _plain(start_response, "400 Bad Request", refusal)
        return self.next_app(environ, start_response)

    @staticmethod
    def _check_xml_body(environ) -> str | None:
        length = environ.get("CONTENT_LENGTH") or ""
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        if not length and not chunked:
            return None
        try:
            n = int(length) if length else -1
        except ValueError:
            return "bad Content-Length"
        if n == 0:
            return None
        if n > MAX_XML_BODY:
            return "request body too large"
        data = environ["wsgi.input"].read(n if n > 0 else MAX_XML_BODY + 1)
        if len(data) > MAX_XML_BODY:
            return "request body too large"
        environ["wsgi.input"] = io.BytesIO(data)
        environ["CONTENT_LENGTH"] = str(len(data))
        environ.pop("HTTP_TRANSFER_ENCODING", None)
        if not data.strip():
            return None
        if environ.get("REQUEST_METHOD") == "MKCOL":
            return None  # wsgidav answers 415 for MKCOL with a body
        try:
            SafeET.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
        except DefusedXmlException:
            return "XML with a DTD, entities or external references is refused"
        except ParseError:
            return None  # malformed XML: wsgidav answers 400 with its own reason
        return None


#: the core's checks each write method starts with (its operation's own first step, refusals recorded)
_WRITE_CHECKS = {"PUT": "may_upload", "MKCOL": "may_mkdir", "DELETE": "may_remove", "PROPPATCH": "check_writable"}


def _core_first(fn, *args, **kw) -> None:
    """A refusal of the core's check ends the request; "not found" and "exists" are left to wsgidav's own
    answers (its lookups give those, as before)."""
    try:
        fn(*args, **kw)
    except (NotFound, AlreadyExists):
        pass
    except GatewayError as exc:
        raise to_dav_error(exc) from None


class WriteChecks(BaseMiddleware):
    """Every write asks the core first, before wsgidav looks anything up. wsgidav resolves the target and its
    parent before it calls the provider, and answered what the core refused there (an uploader's PUT into a centre
    that is not active, anything by the security cell) without the core's record; now the core's check -- the
    first step of its own operation -- refuses, on the record exactly as over SFTP.

    LOCK asks the core whether the account may lock there, and for how long (the Timeout header becomes what it
    grants). Locks are held under the canonical account name, which carries whether other accounts' locks hold the
    account's writes back (never POD MI's deliveries: :class:`gateway.dav.state.GatewayLockManager`)."""

    def __init__(self, wsgidav_app, next_app, config):
        super().__init__(wsgidav_app, next_app, config)
        self.mount = config.get("mount_path") or ""
        self._locking = threading.Lock()  # one LOCK at a time in this process: the per-account bound holds

    def is_disabled(self):
        return False

    def __call__(self, environ, start_response):
        session = _session(environ)
        environ["wsgidav.auth.user_name"] = LockPrincipal(session.principal.name, session.held_back_by_others_locks())
        method = environ["REQUEST_METHOD"]
        path = environ.get("PATH_INFO") or "/"
        if method == "LOCK":
            return self._lock(session, path, environ, start_response)
        if _is_junk(path.rstrip("/").rsplit("/", 1)[-1]):
            return self.next_app(environ, start_response)
        if method in _WRITE_CHECKS:
            _core_first(getattr(session, _WRITE_CHECKS[method]), path)
        elif method in ("COPY", "MOVE") and (dest := self._destination(environ)) is not None:
            _core_first(session.may_copy_or_move, path, dest, move=method == "MOVE")
        return self.next_app(environ, start_response)

    def _destination(self, environ) -> str | None:
        """The Destination header as a path below the mount; None when it is not one (wsgidav refuses it)."""
        dest = urlparse(unquote(environ.get("HTTP_DESTINATION", "")), allow_fragments=False).path
        return dest[len(self.mount):] if dest.startswith(self.mount + "/") else None

    def _lock(self, session: MailboxSession, path: str, environ, start_response):
        depth = (environ.get("HTTP_DEPTH") or "infinity").strip().lower()
        owner = None
        if environ.get("CONTENT_LENGTH") in (None, "", "0"):  # a refresh of the lock named in the If header
            lock = self._refreshed_lock(environ)
            if lock is None:
                return self.next_app(environ, start_response)  # wsgidav answers 400 or 412
            owner = lock["principal"]
        timeout = util.read_timeout_value_header(environ.get("HTTP_TIMEOUT", ""))
        with self._locking:
            seconds = _core(partial(session.authorize_lock, path, depth=depth, timeout=timeout, owner=owner))
            environ["HTTP_TIMEOUT"] = f"Second-{seconds}"
            return list(self.next_app(environ, start_response))

    def _refreshed_lock(self, environ) -> dict | None:
        util.parse_if_header_dict(environ)
        tokens = environ.get("wsgidav.ifLockTokenList") or []
        return self.wsgidav_app.lock_manager.get_lock(tokens[0]) if len(tokens) == 1 else None


class SessionGuard(BaseMiddleware):
    """After wsgidav's authenticator: no core session, no access (wsgidav would fall back to anonymous)."""

    def __init__(self, wsgidav_app, next_app, config):
        super().__init__(wsgidav_app, next_app, config)

    def is_disabled(self):
        return False

    def __call__(self, environ, start_response):
        if environ.get(SESSION_KEY) is None:
            return _plain(start_response, "401 Unauthorized", "authentication required",
                          [("WWW-Authenticate", f'Basic realm="{REALM}", charset="UTF-8"')])
        return self.next_app(environ, start_response)


_SUPPORTEDLOCK = ("<D:supportedlock><D:lockentry><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/>"
                  "</D:locktype></D:lockentry><D:lockentry><D:lockscope><D:shared/></D:lockscope><D:locktype>"
                  "<D:write/></D:locktype></D:lockentry></D:supportedlock>")
_LIVE = ("{DAV:}resourcetype", "{DAV:}creationdate", "{DAV:}getlastmodified", "{DAV:}displayname",
         "{DAV:}getcontentlength", "{DAV:}getcontenttype", "{DAV:}getetag", "{DAV:}lockdiscovery",
         "{DAV:}supportedlock")
_HREF_SAFE = "/" + "!*'()," + "$-_|."


def _x(text: str) -> str:
    return html.escape(text, quote=False)


class FastPropfind(BaseMiddleware):
    """PROPFIND with Depth 0 or 1 answered from one listing, one property query and one lock query, the XML
    written as strings. wsgidav builds an element tree per property per member and asks the property and lock
    stores once per member, which is what made 10,000-entry folders slow. Anything this path does not cover
    (propname requests, locks anywhere near the target, unparsable bodies) goes to wsgidav unchanged."""

    def __init__(self, wsgidav_app, next_app, config):
        super().__init__(wsgidav_app, next_app, config)
        self.mount = config.get("mount_path") or ""
        self.props: DbPropertyManager = config["property_manager"]
        self.locks: DbLockStorage = config["lock_storage"]

    def is_disabled(self):
        return False

    def __call__(self, environ, start_response):
        if environ["REQUEST_METHOD"] != "PROPFIND" or environ.get("HTTP_DEPTH") not in ("0", "1"):
            return self.next_app(environ, start_response)
        wanted = self._wanted(environ)
        if wanted is False:
            return self.next_app(environ, start_response)
        target = _request_target(environ)
        if target is None:
            return self.next_app(environ, start_response)
        session, path, vp, entry = target
        own = "/" if vp.is_root else str(vp) + ("/" if entry.is_folder else "")
        for root in self.locks.roots():
            r = root.rstrip("/") or "/"
            o = own.rstrip("/") or "/"
            if r == o or r.startswith(o.rstrip("/") + "/") or o.startswith(r.rstrip("/") + "/") or r == "/":
                return self.next_app(environ, start_response)
        members: list[tuple[str, Entry]] = [(own, entry)]
        if entry.is_folder and environ["HTTP_DEPTH"] == "1":
            base = own if own.endswith("/") else own + "/"
            for e in _core(session.list, vp):
                members.append((base + e.name + ("/" if e.is_folder else ""), e))
        dead = self.props.under(quote(own)) if self._has_dead(wanted) else {}
        parts = ['<?xml version="1.0" encoding="utf-8"?>\n<D:multistatus xmlns:D="DAV:">']
        for p, e in members:
            parts.append(self._response(p, e, wanted, dead.get(quote(p), ())))
        parts.append("</D:multistatus>\n")
        body = "".join(parts).encode("utf-8")
        start_response("207 Multi-Status", [("Content-Type", "application/xml; charset=utf-8"),
                                            ("Content-Length", str(len(body))), ("DAV", "1, 2")])
        return [body]

    @staticmethod
    def _has_dead(wanted) -> bool:
        return wanted is None or any(not n.startswith("{DAV:}") for n in wanted)

    @staticmethod
    def _wanted(environ):
        """None = allprop; a list of Clark names; False = not for this path (propname, odd bodies)."""
        data = environ["wsgi.input"].read() if environ.get("CONTENT_LENGTH") not in (None, "", "0") else b""
        environ["wsgi.input"] = io.BytesIO(data)
        if not data.strip():
            return None
        try:
            root = SafeET.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
        except (DefusedXmlException, ParseError):
            return False
        if root.tag != "{DAV:}propfind" or len(root) != 1:
            return False
        node = root[0]
        if node.tag == "{DAV:}allprop" and len(node) == 0:
            return None
        if node.tag == "{DAV:}prop":
            return [child.tag for child in node]
        return False

    def _response(self, path: str, e: Entry, wanted, dead) -> str:
        found: list[str] = []
        missing: list[str] = []
        live = self._live(e)
        names = list(_LIVE) + [n for n, _ in dead] if wanted is None else wanted
        dead_map = dict(dead)
        for name in names:
            if name in live:
                if live[name] is not None:
                    found.append(live[name])
                elif wanted is not None:
                    missing.append(name)
            elif name in dead_map:
                found.append(dead_map[name])
            elif wanted is not None:
                missing.append(name)
        href = quote(self.mount + path, safe=_HREF_SAFE)
        out = [f"<D:response><D:href>{href}</D:href>"]
        if found:
            out.append(f"<D:propstat><D:prop>{''.join(found)}</D:prop><D:status>HTTP/1.1 200 OK</D:status>"
                       "</D:propstat>")
        if missing:
            out.append("<D:propstat><D:prop>")
            for name in missing:
                ns, _, local = name[1:].partition("}") if name.startswith("{") else ("", "", name)
                out.append(f'<ns0:{local} xmlns:ns0="{html.escape(ns)}"/>' if ns else f"<{local}/>")
            out.append("</D:prop><D:status>HTTP/1.1 404 Not Found</D:status></D:propstat>")
        out.append("</D:response>")
        return "".join(out)

    @staticmethod
    def _live(e: Entry) -> dict[str, str | None]:
        mtime = e.mtime or 0.0
        display = e.display_name or e.name
        live: dict[str, str | None] = {
            "{DAV:}resourcetype": "<D:resourcetype><D:collection/></D:resourcetype>" if e.is_folder
            else "<D:resourcetype/>",
            "{DAV:}creationdate": f"<D:creationdate>{util.get_rfc3339_time(mtime)}</D:creationdate>",
            "{DAV:}getlastmodified": f"<D:getlastmodified>{util.get_rfc1123_time(mtime)}</D:getlastmodified>",
            "{DAV:}displayname": f"<D:displayname>{_x(display)}</D:displayname>",
            "{DAV:}lockdiscovery": "<D:lockdiscovery/>",
            "{DAV:}supportedlock": _SUPPORTEDLOCK,
            "{DAV:}getcontentlength": None, "{DAV:}getcontenttype": None, "{DAV:}getetag": None,
        }
        if not e.is_folder:
            ctype = e.content_type or mimetypes.guess_type(e.name)[0] or "application/octet-stream"
            live["{DAV:}getcontentlength"] = f"<D:getcontentlength>{e.size}</D:getcontentlength>"
            live["{DAV:}getcontenttype"] = f"<D:getcontenttype>{_x(ctype)}</D:getcontenttype>"
            if e.sha256:
                live["{DAV:}getetag"] = f"<D:getetag>{e.sha256[:40]}</D:getetag>"
        return live


_PAGE = """<!DOCTYPE html>
<html lang="nl"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;margin:2em}}td{{padding:.2em 1em}}th{{text-align:left}}</style></head>
<body><h1>{title}</h1><p>{user}</p><table><tr><th>Naam / Nom</th><th>Grootte / Taille</th><th>Datum / Date</th></tr>
{rows}</table></body></html>
"""


class ListingPage(BaseMiddleware):
    """GET on a folder: a plain HTML listing with download links; every name escaped, no script at all."""

    def __init__(self, wsgidav_app, next_app, config):
        super().__init__(wsgidav_app, next_app, config)
        self.mount = config.get("mount_path") or ""

    def is_disabled(self):
        return False

    def __call__(self, environ, start_response):
        if environ["REQUEST_METHOD"] not in ("GET", "HEAD"):
            return self.next_app(environ, start_response)
        target = _request_target(environ)
        if target is None:
            return self.next_app(environ, start_response)
        session, path, vp, entry = target
        if not entry.is_folder:
            return self.next_app(environ, start_response)
        if not path.endswith("/"):
            start_response("301 Moved Permanently", [("Location", quote(self.mount + path + "/")),
                                                     ("Content-Length", "0")])
            return [b""]
        entries = _core(session.list, vp)
        rows = []
        if not vp.is_root:
            rows.append('<tr><td><a href="../">..</a></td><td></td><td></td></tr>')
        for e in entries:
            href = quote(e.name) + ("/" if e.is_folder else "")
            label = e.name + (f" ({e.display_name})" if e.display_name else "") + ("/" if e.is_folder else "")
            size = "" if e.is_folder else f"{e.size:,}"
            when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(e.mtime)) if e.mtime else ""
            rows.append(f'<tr><td><a href="{html.escape(href, quote=True)}">{html.escape(label)}</a></td>'
                        f"<td>{size}</td><td>{when}</td></tr>")
        title = "Institutional Pages " + str(vp)
        page = _PAGE.format(title=html.escape(title), user=html.escape(f"{session.principal.name}"),
                            rows="\n".join(rows)).encode()
        start_response("200 OK", [
            ("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(page))),
            ("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; "
                                        "form-action 'none'; frame-ancestors 'none'"),
            ("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "no-referrer"), ("Cache-Control", "no-store"),
        ])
        return [b""] if environ["REQUEST_METHOD"] == "HEAD" else [page]


def create_app(mailbox: Mailbox, *, mount_path: str = "/dav", auth_cache_seconds: float = 60,
               block_size: int = 1024 * 1024, fast_propfind: bool = True, trusted_proxies=()):
    config = {
        "provider_mapping": {"/": MailboxProvider()},
        "mount_path": mount_path,
        "http_authenticator": {"domain_controller": GatewayDomainController, "accept_basic": True,
                               "accept_digest": False, "default_to_digest": False, "trusted_auth_header": None},
        "instpages": {"mailbox": mailbox, "auth_cache_seconds": auth_cache_seconds},
        "middleware_stack": [ErrorPrinter, CoreErrors, HTTPAuthenticator, SessionGuard, RequestChecks, WriteChecks,
                             FastPropfind, ListingPage, RequestResolver],
        "property_manager": DbPropertyManager(mailbox.repo),
        "lock_storage": DbLockStorage(mailbox.repo, max_seconds=mailbox.config.webdav.lock_max_seconds),
        "dir_browser": {"enable": False},
        "suppress_version_info": True,
        "add_header_MS_Author_Via": True,
        "block_size": block_size,
        "verbose": 1,
        "logging": {"enable": False},
        "hotfixes": {"emulate_win32_lastmod": True, "re_encode_path_info": True, "unquote_path_info": False},
        "simple_dc": {"user_mapping": {}},
    }
    if not fast_propfind:
        config["middleware_stack"].remove(FastPropfind)
    dav = WsgiDAVApp(config)
    dav.lock_manager = GatewayLockManager(config["lock_storage"])
    for provider in dav.provider_map.values():
        provider.set_lock_manager(dav.lock_manager)
    return FrontDoor(dav, mailbox, trusted_proxies)

