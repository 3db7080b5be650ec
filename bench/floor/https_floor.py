#!/usr/bin/env python3
"""Stack floors for the WebDAV benchmark: the gateway's HTTPS transport serving plain files, and nothing else.

    python bench/floor/https_floor.py --kind {wsgidav,wsgi} --port P --host 127.0.0.1 --root DIR \\
        --cert CERT --key KEY --workers N --threads T

Both kinds answer under ``/dav/``: ``/dav/<path>`` is ``<root>/<path>`` (nginx's ``alias`` in bench/dav_bench.py),
anonymously. They do none of the gateway's own work: no database, no login, no at-rest decryption, no SHA-256
check, no audit record.

- ``wsgidav``: wsgidav's own ``FilesystemProvider`` (read-only) under ``/dav`` with wsgidav's default middleware
  stack (ErrorPrinter, HTTPAuthenticator, RequestResolver; CORS and the directory browser are off), anonymous
  access (``simple_dc`` with ``"*": True``), in-memory locks, no property manager, and the gateway's
  ``block_size`` and hotfixes. PROPFIND is wsgidav's own (the gateway answers it with its FastPropfind
  middleware instead).
- ``wsgi``: a hand-written WSGI application: GET/HEAD of a file answer its bytes, read from disk in blocks of
  ``block_size`` (the gateway's default, 1 MiB) and returned as an iterable, with Content-Length. Anything else
  is 405 (PROPFIND included): what cheroot + Python TLS cost alone.

The transport is the gateway's own, imported, not copied (gateway/web/https.py, tlsaccept.py, supervisor.py,
server.py; none of them touches the database):

- cheroot's WSGI server as :class:`gateway.web.tlsaccept.HandshakingServer` with ``numthreads`` = ``--threads``
  (the gateway's default ``webdav.threads``, 256), ``timeout=60``, ``request_queue_size=256``, its
  ``keep_alive_conn_limit`` (1024) and the gateway's connection class
  (:class:`gateway.web.continuation.ContinuingConnection`);
- TLS handshakes off cheroot's accept thread, in a :class:`~gateway.web.tlsaccept.HandshakePool` of the same size
  (4 threads) with the gateway's default deadline; the TLS environ of each connection (``tls_environ``) is built
  the same way;
- the TLS context of :func:`gateway.web.tls.server_context` (TLS 1.2+, ECDHE AEAD suites, no compression, server
  preference, no renegotiation) with client certificates optional (``CERT_OPTIONAL``, as the gateway asks for eID
  certificates); cheroot's ``BuiltinSSLAdapter`` set on the server for the request streams, as in the gateway;
- ``--workers N`` > 1: one listening socket opened here before forking (:func:`gateway.supervisor.listen`: the
  same backlog, 1024), inherited by N forked processes that take connections in turns on a
  :class:`gateway.loadboard.LoadBoard`, exactly like ``instpages serve --workers N``. ``--workers 1``: the one
  worker binds the port itself, as ``instpages serve`` does with one worker (which is then its only process).

What differs from the gateway: the application (above), and around it no ``ErrorGuard``, no health/root
dispatcher, no ``instpages.source``; no trust-refresh thread (it reads the database every 5 s) and no asyncio
loop or SFTP port in the worker processes. The parent is the gateway's own supervisor
(:class:`gateway.supervisor.Supervisor`): it forks the workers, restarts one that dies, and on SIGTERM or SIGINT
stops them all (SIGTERM, then SIGKILL after its grace period) and exits 0. ``ready: N workers serving`` on stderr
says that every child serves.
"""
from __future__ import annotations

import argparse
import functools
import logging
import mimetypes
import os
import signal
import ssl
import stat
import sys
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from cheroot.ssl.builtin import BuiltinSSLAdapter  # noqa: E402

from gateway.config import ServerConfig, WebDAVConfig  # noqa: E402  (storage.errors only: no database)
from gateway.loadboard import LoadBoard  # noqa: E402
from gateway.supervisor import Supervisor, listen  # noqa: E402
from gateway.web import tls  # noqa: E402
from gateway.web.continuation import ContinuingConnection  # noqa: E402
from gateway.web.tlsaccept import HandshakePool, HandshakingServer  # noqa: E402

log = logging.getLogger("floor")

MOUNT = "/dav"
_DEFAULTS = WebDAVConfig()


# --------------------------------------------------------------------------------------------------------
# The applications


def wsgidav_app(root: str, block_size: int):
    """wsgidav's FilesystemProvider under /dav, anonymous, with the gateway's block size and hotfixes."""
    from wsgidav.fs_dav_provider import FilesystemProvider
    from wsgidav.wsgidav_app import WsgiDAVApp

    config = {
        "provider_mapping": {"/": FilesystemProvider(root, readonly=True)},
        "mount_path": MOUNT,
        "http_authenticator": {"domain_controller": None, "accept_basic": True, "accept_digest": False,
                               "default_to_digest": False, "trusted_auth_header": None},
        "simple_dc": {"user_mapping": {"*": True}},  # anonymous (wrk's Authorization header is not looked at)
        "dir_browser": {"enable": False},
        "lock_storage": True,
        "property_manager": None,
        "suppress_version_info": True,
        "add_header_MS_Author_Via": True,
        "block_size": block_size,
        "verbose": 1,
        "logging": {"enable": False},
        "hotfixes": {"emulate_win32_lastmod": True, "re_encode_path_info": True, "unquote_path_info": False},
    }
    dav = WsgiDAVApp(config)

    def mounted(environ, start_response):
        # what cheroot's PathInfoDispatcher does for the gateway's "/dav" mount
        path = environ.get("PATH_INFO", "")
        if path == MOUNT or path.startswith(MOUNT + "/"):
            environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + MOUNT
            environ["PATH_INFO"] = path[len(MOUNT):] or "/"
            return dav(environ, start_response)
        return _plain(start_response, "404 Not Found")

    return mounted


def file_app(root: str, block_size: int):
    """GET/HEAD /dav/<path>: the file's bytes in blocks of ``block_size``, with Content-Length."""
    base = os.path.realpath(root)

    def app(environ, start_response):
        method = environ["REQUEST_METHOD"]
        if method not in ("GET", "HEAD"):
            return _plain(start_response, "405 Method Not Allowed", [("Allow", "GET, HEAD")])
        path = environ.get("PATH_INFO", "")
        if not path.startswith(MOUNT + "/"):
            return _plain(start_response, "404 Not Found")
        parts = [p for p in path[len(MOUNT) + 1:].split("/") if p]
        if any(p in (".", "..") or "\0" in p for p in parts):
            return _plain(start_response, "404 Not Found")
        try:
            f = open(os.path.join(base, *parts), "rb")
        except OSError:
            return _plain(start_response, "404 Not Found")
        try:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                f.close()
                return _plain(start_response, "404 Not Found")
            ctype = mimetypes.guess_type(parts[-1])[0] or "application/octet-stream"
            start_response("200 OK", [("Content-Type", ctype), ("Content-Length", str(st.st_size))])
        except BaseException:
            f.close()
            raise
        if method == "HEAD":
            f.close()
            return [b""]
        return _blocks(f, block_size)

    return app


def _blocks(f, block_size: int):
    try:
        while block := f.read(block_size):
            yield block
    finally:
        f.close()


def _plain(start_response, status: str, extra: list | None = None) -> list[bytes]:
    body = (status + "\n").encode()
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))] + (extra or []))
    return [body]


APPS = {"wsgidav": wsgidav_app, "wsgi": file_app}


# --------------------------------------------------------------------------------------------------------
# One serving process: the gateway's HTTPS server (gateway.web.https.HTTPSFrontend), minus the gateway


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    """HTTPSFrontend._tls_context without the eID CAs and pinned certificates (the bench configures none)."""
    ctx = tls.server_context(Path(cert), Path(key))
    ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx


def build_server(args, listener=None, seat=None) -> HandshakingServer:
    app = APPS[args.kind](args.root, args.block_size)
    server = HandshakingServer((args.host, args.port), app, numthreads=args.threads, server_name="instpages-floor",
                               timeout=60, request_queue_size=256)
    server.listener, server.seat = listener, seat
    server.ConnectionClass = ContinuingConnection
    server.ssl_adapter = BuiltinSSLAdapter(args.cert, args.key)
    context = tls_context(args.cert, args.key)
    server.handshaker = HandshakePool(lambda: context, server.deliver, timeout=args.handshake_timeout)
    return server


def serve(args, listener, seat, ready) -> int:
    """One worker: serves until SIGTERM/SIGINT (the gateway's worker runs cheroot in a thread as well)."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    server = build_server(args, listener, seat)
    server.prepare()
    thread = threading.Thread(target=server.serve, name="https", daemon=True)
    thread.start()
    ready()
    while not stop.wait(1.0):
        if not thread.is_alive():
            log.error("the server thread ended")
            return 1
    server.stop()
    thread.join(10)
    return 0


# --------------------------------------------------------------------------------------------------------
# The parent: the gateway's own supervisor (gateway/supervisor.py) forks, restarts and stops the workers


def _worker(args, listener, board, slot: int, ready) -> None:
    code = serve(args, listener, board.seat(slot) if board is not None else None, ready)
    if code:
        raise SystemExit(code)


def run(args) -> int:
    listener = board = None
    if args.workers > 1:  # instpages serve --workers N: one socket, opened before the fork, turns on a board
        listener = listen(args.host, args.port, "--port")
        board = LoadBoard(args.workers)
    try:
        sup = Supervisor(args.workers, functools.partial(_worker, args, listener, board), board=board)
        return sup.run(lambda: log.info("ready: %d workers serving %s on https://%s:%d%s/ (pids %s)", args.workers,
                                        args.kind, args.host, args.port, MOUNT, " ".join(map(str, sup.pids))))
    finally:
        if listener is not None:
            listener.close()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="The gateway's HTTPS transport serving plain files (bench floor).")
    p.add_argument("--kind", choices=sorted(APPS), required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--root", required=True, help="served as /dav/")
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--workers", type=int, default=ServerConfig().workers,
                   help="processes sharing the port (default: the gateway's, the number of cores)")
    p.add_argument("--threads", type=int, default=_DEFAULTS.threads,
                   help=f"cheroot threads per process (default: the gateway's webdav.threads, {_DEFAULTS.threads})")
    p.add_argument("--block-size", type=int, default=_DEFAULTS.block_size,
                   help=f"bytes per read of a file (default: the gateway's webdav.block_size, {_DEFAULTS.block_size})")
    p.add_argument("--handshake-timeout", type=float, default=_DEFAULTS.handshake_timeout_seconds)
    a = p.parse_args(argv)
    if not 1 <= a.workers <= 256 or not 1 <= a.threads <= 1024:
        p.error("--workers must be 1..256 and --threads 1..1024")
    if not os.path.isdir(a.root):
        p.error(f"--root {a.root}: not a directory")
    return a


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
