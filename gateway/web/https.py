"""The HTTPS port: cheroot serving WebDAV under ``/dav``, the institutional page (``/page``, where a browser opening
``/`` lands), the account page, the console and the REST API.

cheroot runs its own worker threads; the WSGI application calls the (synchronous, thread-safe) core directly.
TLS handshakes happen off cheroot's accept thread, in a few threads, each with a deadline
(:mod:`gateway.web.tlsaccept`), and so does the PROXY header of a TCP load balancer (``server.proxy_protocol_from``).
``/healthz`` and ``/readyz`` answer a load balancer without a login.
"""
from __future__ import annotations

import logging
import ssl
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from cheroot import wsgi
from cheroot.ssl.builtin import BuiltinSSLAdapter

from gateway.web import tls
from gateway.web.continuation import ContinuingConnection
from gateway.web.tlsaccept import HandshakePool, HandshakingServer
from gateway.config import Config
from gateway.proxyheader import ProxyPolicy
from storage.errors import MalformedRequest
from gateway.core.mailbox import Mailbox
from auth.networks import client_address
from gateway.web.accountpage import AccountPage
from gateway.dav.app import create_app
from gateway.dav.middleware import DAV_METHODS

if TYPE_CHECKING:
    from gateway.admin.service import Administration

log = logging.getLogger("instpages.https")


def root_app(environ, start_response):
    """Everything outside /dav/: Windows probes the server root with OPTIONS (unauthenticated)."""
    method = environ.get("REQUEST_METHOD")
    if method == "OPTIONS":
        start_response("200 OK", [("DAV", "1, 2"), ("MS-Author-Via", "DAV"), ("Allow", DAV_METHODS),
                                  ("Content-Length", "0")])
        return [b""]
    if method == "PROPFIND" and environ.get("PATH_INFO", "/") in ("", "/"):
        # Windows' mini-redirector probes the server root before the mapped folder: the root is a collection
        # holding /dav/ and nothing else (the mailboxes themselves need a login)
        depth = environ.get("HTTP_DEPTH", "1")
        members = '<D:response><D:href>/dav/</D:href><D:propstat><D:prop><D:resourcetype><D:collection/>' \
                  '</D:resourcetype></D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>'
        body = ('<?xml version="1.0" encoding="utf-8"?>\n<D:multistatus xmlns:D="DAV:"><D:response><D:href>/</D:href>'
                "<D:propstat><D:prop><D:resourcetype><D:collection/></D:resourcetype></D:prop>"
                "<D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>"
                + (members if depth == "1" else "") + "</D:multistatus>\n").encode()
        start_response("207 Multi-Status", [("Content-Type", "application/xml; charset=utf-8"),
                                            ("Content-Length", str(len(body))), ("DAV", "1, 2")])
        return [body]
    if method in ("GET", "HEAD") and environ.get("PATH_INFO", "/") in ("", "/"):
        # a browser (it asks for HTML) lands on the institutional page; anything else on the WebDAV tree
        page = "text/html" in environ.get("HTTP_ACCEPT", "")
        start_response("302 Found", [("Location", "/page/" if page else "/dav/"), ("Content-Length", "0"),
                                     ("Vary", "Accept")])
        return [b""]
    body = b"404 Not Found\n"
    start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def health_app(ready: Callable[[], bool], app):
    """``/healthz`` (the process answers) and ``/readyz`` (it can serve: ``ready()``, i.e. the database and the blob
    store answer), for load balancers: no login, nothing on the record (a probe every few seconds would flood
    it), and nothing revealed but the status. Everything else goes to ``app``."""
    def wrapped(environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path not in ("/healthz", "/readyz"):
            return app(environ, start_response)
        method = environ.get("REQUEST_METHOD")
        if method not in ("GET", "HEAD"):
            status, body, extra = "405 Method Not Allowed", b"405 Method Not Allowed\n", [("Allow", "GET, HEAD")]
        elif path == "/healthz" or ready():
            status, body, extra = "200 OK", b"ok\n", []
        else:
            status, body, extra = "503 Service Unavailable", b"not ready\n", [("Retry-After", "5")]
        start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body))),
                                ("Cache-Control", "no-store")] + extra)
        return [b"" if method == "HEAD" else body]
    return wrapped


def with_source(app, trusted_proxies):
    """Sets ``instpages.source``: the client's address, from X-Forwarded-For only behind trusted proxies."""
    def wrapped(environ, start_response):
        environ["instpages.source"] = client_address(environ.get("REMOTE_ADDR", ""),
                                                     environ.get("HTTP_X_FORWARDED_FOR"), trusted_proxies)
        return app(environ, start_response)
    return wrapped


class GuardedInput:
    """``wsgi.input`` whose framing errors (cheroot raises ValueError for a bad chunk size or chunk end) are
    MalformedRequest, which every front-end answers with 400."""

    def __init__(self, stream):
        self._stream = stream

    def _call(self, name: str, *args):
        try:
            return getattr(self._stream, name)(*args)
        except ValueError as exc:
            raise MalformedRequest(f"malformed request body: {str(exc)[:100]}") from None

    def read(self, *args):
        return self._call("read", *args)

    def readline(self, *args):
        return self._call("readline", *args)

    def readlines(self, *args):
        return self._call("readlines", *args)

    def __iter__(self):
        return iter(self.readline, b"")


class ErrorGuard:
    """The outermost layer of the HTTPS port: every request gets a complete answer. A malformed request that the
    application below did not answer itself gets 400, any other failure 500, and an answer that announced a body
    and sent none is replaced by a 500 -- as long as nothing of it has gone out; never a dropped connection or a
    client left waiting for bytes that do not come."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        if environ.get("wsgi.input") is not None:
            environ["wsgi.input"] = GuardedInput(environ["wsgi.input"])
        started: list = []

        def recording_start_response(status, headers, exc_info=None):
            started[:] = [status, headers]
            return start_response(status, headers, exc_info)

        return self._answer(environ, start_response, recording_start_response, started)

    def _answer(self, environ, start_response, recording_start_response, started):
        sent = 0
        try:
            result = self.app(environ, recording_start_response)
            try:
                for chunk in result:
                    sent += len(chunk)
                    yield chunk
            finally:
                if hasattr(result, "close"):
                    result.close()
        except Exception as exc:
            if sent:
                raise  # the answer is under way: the server can only close the connection
            yield self._failure(environ, start_response, exc)
            return
        if not sent and started and environ.get("REQUEST_METHOD") != "HEAD" and _announced(started[1]) > 0 \
                and not started[0].startswith(("1", "204", "304")):
            log.error("%s %s: a %s answer announced a body and sent none", environ.get("REQUEST_METHOD"),
                      environ.get("PATH_INFO", "")[:200], started[0][:3])
            yield self._failure(environ, start_response, RuntimeError("answer without its body"))

    @staticmethod
    def _failure(environ, start_response, exc: Exception) -> bytes:
        malformed = isinstance(exc, (MalformedRequest, UnicodeDecodeError))
        what = f"{environ.get('REQUEST_METHOD', '')} {environ.get('PATH_INFO', '')[:200]!r}"
        if malformed:
            log.info("malformed request %s from %s: %s", what, environ.get("REMOTE_ADDR", ""), exc)
            status, body = "400 Bad Request", f"400 Bad Request\n{getattr(exc, 'message', 'malformed request')}\n"
        else:
            log.error("%s failed", what, exc_info=exc)
            status, body = "500 Internal Server Error", "500 Internal Server Error\n"
        data = body.encode()
        try:
            raise exc
        except Exception:
            start_response(status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(data))),
                                    ("Connection", "close")], sys.exc_info())
        return data


def _announced(headers) -> int:
    for name, value in headers:
        if name.lower() == "content-length":
            try:
                return int(value)
            except ValueError:
                return -1
    return -1


class HTTPSFrontend:
    """The HTTPS port. ``ready`` answers ``/readyz``; ``listener`` is a listening socket opened by the supervisor
    before it forked the workers (None: bind ``webdav.host``/``port`` here)."""

    def __init__(self, config: Config, mailbox: Mailbox, keyring, administration: Callable[..., Administration], *,
                 ready: Callable[[], bool] = lambda: True, listener=None, seat=None):
        """``administration``: the services factory's (``Services.administration``), for the console, the account
        page and the REST API; ``seat``: this worker's slot on the workers' load board (with ``listener``)."""
        self.config = config
        cfg = config.webdav
        self.dav_app = create_app(mailbox, mount_path="/dav", auth_cache_seconds=cfg.auth_cache_seconds,
                                  block_size=cfg.block_size, trusted_proxies=config.auth.trusted_proxies)
        self.account_app = with_source(AccountPage(mailbox, keyring.derive(b"account-cookie"),
                                                   administration=administration, secure_cookie=not cfg.plain_http),
                                       config.auth.trusted_proxies)
        from gateway.web.api.app import RestApi
        from gateway.web.console import Console
        from gateway.web.websession import SessionSigner

        # one key for the console's cookie and the API's session tokens: the same strong login serves both
        signer = SessionSigner(keyring.derive(b"web-session"), seconds=cfg.session_seconds)
        self.console_app = with_source(Console(mailbox, signer, administration=administration,
                                               secure_cookie=not cfg.plain_http),
                                       config.auth.trusted_proxies)
        self.api_app = with_source(RestApi(mailbox, signer, administration=administration), config.auth.trusted_proxies)
        from gateway.web.page import InstitutionalPage

        # the same strong login and session key as the console
        self.page_app = with_source(InstitutionalPage(mailbox, signer, secure_cookie=not cfg.plain_http),
                                    config.auth.trusted_proxies)
        dispatcher = wsgi.PathInfoDispatcher({"/dav": self.dav_app, "/account": self.account_app,
                                              "/console": self.console_app, "/api": self.api_app,
                                              "/page": self.page_app, "/": health_app(ready, root_app)})
        self.server = HandshakingServer((cfg.host, cfg.port), ErrorGuard(dispatcher), numthreads=cfg.threads,
                                        server_name="instpages", timeout=60, request_queue_size=256)
        self.server.listener, self.server.seat = listener, seat
        self.server.ConnectionClass = ContinuingConnection  # "100 Continue" once the body is read
        self.mailbox = mailbox
        self.context: ssl.SSLContext | None = None
        self._pinned: frozenset[str] | None = None
        self._stopped = threading.Event()
        if not cfg.plain_http:
            tls.ensure_self_signed(config.tls_cert_path, config.tls_key_path, [cfg.host])
            self.server.ssl_adapter = BuiltinSSLAdapter(str(config.tls_cert_path), str(config.tls_key_path))
            self.refresh_trust()
            # behind TCP balancers, their PROXY headers are read by the same threads, before the handshake
            self.server.handshaker = HandshakePool(
                lambda: self.context, self.server.deliver, timeout=cfg.handshake_timeout_seconds,
                proxy=ProxyPolicy.from_networks(config.server.proxy_protocol_from))
        self._thread: threading.Thread | None = None
        self._keeper: threading.Thread | None = None

    def _tls_context(self, pinned_pems: list[str]) -> ssl.SSLContext:
        """Client certificates are optional on this port. The handshake lets through those of the eID CAs and
        the pinned ones (Python's ssl cannot ask for a certificate without judging it); who a certificate is,
        auth/ decides after the handshake: pinned ones by exact fingerprint, eIDs by their chain to the eID
        trust anchors alone."""
        ctx = tls.server_context(self.config.tls_cert_path, self.config.tls_key_path)
        ctx.verify_mode = ssl.CERT_OPTIONAL
        if self.config.webdav.client_ca_file:
            ctx.load_verify_locations(cafile=self.config.webdav.client_ca_file)
        for pem in pinned_pems:
            ctx.load_verify_locations(cadata=pem)
        return ctx

    def refresh_trust(self, force: bool = False) -> bool:
        """Read the pinned client certificates again (whichever process pinned them); when they changed, or
        ``force`` (the eID CA file may have changed: SIGHUP, ``instpages reload``), new TLS handshakes use a context
        that lets exactly those through. True when it changed."""
        if self.server.ssl_adapter is None:
            return False
        repo = self.mailbox.repo
        with repo.read() as c:
            pems = sorted(set(repo.client_certificate_pems(c)))
        if self._pinned == frozenset(pems) and not force:
            return False
        self.context = self._tls_context(pems)
        self._pinned = frozenset(pems)
        return True

    def _keep_trust(self) -> None:
        """Pinned certificates are trusted within ``webdav.trust_refresh_seconds`` of being pinned."""
        while not self._stopped.wait(self.config.webdav.trust_refresh_seconds):
            try:
                if self.refresh_trust():
                    log.info("pinned client certificates changed: %d now", len(self._pinned or ()))
            except Exception:  # the database may be briefly away: keep the current trust, try again
                log.exception("refreshing the pinned client certificates failed")

    def start(self) -> int:
        self.server.prepare()
        self._thread = threading.Thread(target=self.server.serve, name="https", daemon=True)
        self._thread.start()
        if self.server.ssl_adapter is not None:
            self._keeper = threading.Thread(target=self._keep_trust, name="https-trust", daemon=True)
            self._keeper.start()
        return self.port

    @property
    def port(self) -> int:
        return self.server.bind_addr[1]

    def stop(self) -> None:
        self._stopped.set()
        self.server.stop()
        for t in (self._thread, self._keeper):
            if t is not None:
                t.join(10)
