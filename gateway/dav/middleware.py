"""The WebDAV front-end's request checks, as WSGI middlewares around wsgidav: :class:`FrontDoor` before
authentication (client address, OPTIONS, the path and Basic credentials through the one parsers),
:class:`CoreErrors` (core errors raised through wsgidav's code keep their status), :class:`SessionGuard` (401 unless
the core accepted the login), :class:`RequestChecks` (XML bodies checked with defusedxml and bounded, ``Depth:
infinity`` refused on collections) and :class:`WriteChecks` (each write and LOCK asks the core first). They only
translate: what is allowed is the core's answer.
"""
from __future__ import annotations

import io
import threading
from collections.abc import Iterable
from functools import partial
from urllib.parse import unquote, urlparse
from xml.etree.ElementTree import ParseError

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException
from wsgidav import util
from wsgidav.dav_error import DAVError
from wsgidav.mw.base_mw import BaseMiddleware

from auth.networks import client_address
from gateway.core import path as vpath
from gateway.core.entry import Entry
from gateway.core.mailbox import Mailbox
from gateway.core.session import MailboxSession
from gateway.dav.domain import REALM, SESSION_KEY, session_of
from gateway.dav.errors import core_call, to_dav_error
from gateway.dav.provider import is_junk, lookup
from gateway.dav.state import LockPrincipal
from gateway.web.httpauth import basic_header, parse_authorization
from storage.errors import AlreadyExists, GatewayError, MalformedCredentials, NotFound

MAX_XML_BODY = 1024 * 1024
DAV_METHODS = "OPTIONS, GET, HEAD, PUT, DELETE, PROPFIND, PROPPATCH, MKCOL, COPY, MOVE, LOCK, UNLOCK"


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


def request_target(environ) -> tuple[MailboxSession, str, vpath.VPath, Entry] | None:
    """For a middleware past the login: the session, the request's path and what the core finds there; None when
    nothing is there (the request goes on to wsgidav, which then answers 404)."""
    session: MailboxSession = environ[SESSION_KEY]
    path = environ.get("PATH_INFO") or "/"
    found = lookup(session, path, environ)
    return None if found is None else (session, path, *found)


def _on_collection(environ) -> bool:
    """Does the request name a collection? A PROPFIND of Depth infinity (the default, which webdav4 sends before
    every upload) is refused on collections only."""
    found = lookup(session_of(environ), environ.get("PATH_INFO") or "/", environ)
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
            root = SafeET.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
        except DefusedXmlException:
            return "XML with a DTD, entities or external references is refused"
        except ParseError:
            return None  # malformed XML: wsgidav answers 400 with its own reason
        if environ.get("REQUEST_METHOD") == "PROPFIND" and root.tag == "{DAV:}propfind" and len(root) == 1 \
                and root[0].tag == "{DAV:}propname" and len(root[0]) == 0:
            # wsgidav 4.4 looks for <D:name/> where RFC 4918 says <D:propname/>, and answered a propname request
            # with no property at all: it is given the request in the form it understands
            environ["wsgi.input"] = io.BytesIO(_PROPNAME_AS_WSGIDAV_READS_IT)
            environ["CONTENT_LENGTH"] = str(len(_PROPNAME_AS_WSGIDAV_READS_IT))
        return None


_PROPNAME_AS_WSGIDAV_READS_IT = b'<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:"><D:name/>' \
    b"</D:propfind>"


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
        session = session_of(environ)
        environ["wsgidav.auth.user_name"] = LockPrincipal(session.principal.name, session.held_back_by_others_locks())
        method = environ["REQUEST_METHOD"]
        path = environ.get("PATH_INFO") or "/"
        if method == "LOCK":
            return self._lock(session, path, environ, start_response)
        if is_junk(path.rstrip("/").rsplit("/", 1)[-1]):
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
            seconds = core_call(partial(session.authorize_lock, path, depth=depth, timeout=timeout, owner=owner))
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
