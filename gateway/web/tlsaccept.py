"""TLS handshakes for the HTTPS port, off cheroot's accept path.

cheroot does every TLS handshake in its one connection-manager thread, blocking (cherrypy/cheroot#748): a client
that connected and sent nothing stalled every other client until the socket timed out, and fifty of them for as
long as they stayed. Here cheroot's accept thread only accepts; the new socket goes to a :class:`HandshakePool`:
a few :class:`Handshaker` threads, each driving its share of the handshakes non-blocking from a selector, each
handshake bounded by a deadline (``webdav.handshake_timeout_seconds``). The crypto runs in parallel: CPython
releases the GIL inside ``SSL_do_handshake``, and with one thread 200 connecting clients queued behind each
other's key exchanges. A finished connection goes to cheroot's connection manager with its TLS
environ, which hands it to a worker thread once a request arrives. So a client that never completes its
handshake, or never sends a request, costs a file descriptor until its deadline and holds up no one.

Behind TCP load balancers (``server.proxy_protocol_from``) the same threads first read the PROXY header of each
connection from a balancer, non-blocking, bounded by its own deadline and never past the header's last byte; the
client address it names is the connection's ``REMOTE_ADDR`` (:mod:`gateway.proxyheader`).

The cheroot internals used are the connection manager's ``_from_server_socket`` (cheroot 10 and 11), replaced by
an accept that hands over, and its ``_num_connections``, counted without its selector's lock; the tests in
tests/gateway/test_https_handshakes.py notice if either changes.
"""
from __future__ import annotations

import collections
import errno
import logging
import select
import selectors
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Callable

from cheroot import connections, wsgi

from gateway.proxyheader import HeaderReader, MalformedHeader, ProxyPolicy

log = logging.getLogger("instpages.https")

#: handshakes in progress at most (per thread); beyond, the oldest is dropped (it has had the longest to finish)
MAX_PENDING = 4096
#: handshake threads per process
HANDSHAKE_THREADS = 4
#: clients that gave up during their handshake are logged as one line per this many seconds at most
REPORT_SECONDS = 1.0
#: a worker sharing its listening socket with sibling processes takes a new connection in its turn (the workers'
#: load board, gateway.loadboard); out of turn it looks every SHARED_ACCEPT_POLL seconds whether the connection
#: is still waiting, and takes it after SHARED_ACCEPT_WAIT (the worker whose turn it is may be busy or stuck)
SHARED_ACCEPT_POLL = 0.0005
SHARED_ACCEPT_WAIT = 0.01
_NO_FD = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
_PLAIN_HTTP = (b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 38\r\n"
               b"Connection: close\r\n\r\nThis port speaks HTTPS only (TLS).\r\n\r\n")


@dataclass(eq=False)
class _Pending:
    sock: ssl.SSLSocket | socket.socket
    addr: tuple
    deadline: float
    done: bool = False
    #: while a balancer's PROXY header is read (the socket is not wrapped in TLS yet)
    header: HeaderReader | None = None


class Handshaker:
    """One thread, one selector: every TLS handshake of the port, each with a deadline.

    ``context()`` gives the SSLContext for a new connection (so that trust can change while running);
    ``deliver(sock, addr)`` receives each connection whose handshake completed (socket back in blocking mode)."""

    def __init__(self, context: Callable[[], ssl.SSLContext], deliver: Callable[[ssl.SSLSocket, tuple], None], *,
                 timeout: float, max_pending: int = MAX_PENDING, clock: Callable[[], float] = time.monotonic,
                 proxy: ProxyPolicy | None = None):
        self.context, self.deliver = context, deliver
        self.timeout, self.max_pending, self.clock = timeout, max_pending, clock
        self.proxy = proxy or ProxyPolicy()  # whose connections begin with a PROXY header (none by default)
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        for s in (self._wake_r, self._wake_w):
            s.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._incoming: collections.deque[tuple[socket.socket, tuple]] = collections.deque()
        self._pending: dict[_Pending, None] = {}  # insertion order = age order (one timeout for all)
        self._headers: dict[_Pending, None] = {}  # balancers' connections reading their PROXY header, by age
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._abandoned = self._expired = 0  # not yet logged
        self._reported = float("-inf")

    # -- any thread ----------------------------------------------------------------------------------------
    def submit(self, sock: socket.socket, addr: tuple) -> None:
        self._incoming.append((sock, addr))
        self._wake()

    def start(self, name: str = "tls-handshakes") -> None:
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        self._wake()
        if self._thread is not None:
            self._thread.join(10)
        for p in [*self._pending, *self._headers]:
            self._drop(p)
        while self._incoming:
            self._incoming.popleft()[0].close()
        self._report(force=True)
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()

    @property
    def pending(self) -> int:
        return len(self._pending) + len(self._headers) + len(self._incoming)

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except OSError:  # full (the thread is awake anyway) or closed (stopping)
            pass

    # -- the handshake thread ------------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stopping:
            try:
                for key, _ in self._selector.select(self._next_timeout()):
                    if key.data is None:
                        self._take_incoming()
                    elif key.data.done:
                        continue
                    elif key.data.header is not None:
                        self._read_header(key.data)
                    else:
                        self._step(key.data)
                self._expire()
                self._report()
            except Exception:  # keep handshaking for everyone else
                log.exception("TLS handshake loop")

    def _next_timeout(self) -> float | None:
        waits = [next(iter(queue)).deadline - self.clock() for queue in (self._pending, self._headers) if queue]
        if self._abandoned or self._expired:
            waits.append(self._reported + REPORT_SECONDS - self.clock())
        return max(0.0, min(waits)) if waits else None

    def _report(self, force: bool = False) -> None:
        """One line for the clients that gave up or ran out of time during their handshake (a benchmark's
        connections still waiting in their handshake when it stopped show up here), at most once a second."""
        if not (self._abandoned or self._expired) or (not force and self.clock() - self._reported < REPORT_SECONDS):
            return
        log.info("TLS handshakes: %d abandoned by the client during handshake, %d timed out", self._abandoned,
                 self._expired)
        self._abandoned = self._expired = 0
        self._reported = self.clock()

    def _take_incoming(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except OSError:
            pass
        # a connection leaves the queue only once it is counted among those in progress: the pool gives the next
        # one to the thread with the fewest, and a connection between the two would count for none
        while self._incoming:
            sock, addr = self._incoming[0]
            try:
                self._take(sock, addr)
            finally:
                self._incoming.popleft()

    def _take(self, sock: socket.socket, addr: tuple) -> None:
        if not self.proxy.expects(addr[0]):
            self._begin_tls(sock, addr)
            return
        try:
            sock.setblocking(False)
            p = _Pending(sock, addr, self.clock() + self.proxy.timeout, header=HeaderReader())
            self._selector.register(sock, selectors.EVENT_READ, p)
        except (OSError, ValueError):
            sock.close()
            return
        self._headers[p] = None
        while len(self._headers) > self.max_pending:
            self._drop(next(iter(self._headers)), "too many PROXY headers in progress")

    def _begin_tls(self, sock: socket.socket, addr: tuple) -> None:
        try:
            sock.setblocking(False)
            tls = self.context().wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        except (OSError, ValueError):
            sock.close()
            return
        p = _Pending(tls, addr, self.clock() + self.timeout)
        self._pending[p] = None
        self._selector.register(tls, selectors.EVENT_READ, p)
        while len(self._pending) > self.max_pending:
            self._drop(next(iter(self._pending)), "too many handshakes in progress")

    def _read_header(self, p: _Pending) -> None:
        """Read what a balancer's connection may still send of its PROXY header (never a byte of TLS after it);
        once complete, the TLS handshake starts under the client's address. Anything else closes it, logged."""
        try:
            data = p.sock.recv(p.header.wanted())
            if not data:
                raise MalformedHeader("closed before the end of its PROXY header")
            header = p.header.feed(data)
        except BlockingIOError:
            return
        except (OSError, MalformedHeader) as exc:
            self._drop(p, str(exc))
            return
        if header is not None:
            self._forget(p)
            self._begin_tls(p.sock, header.client(p.addr))

    def _step(self, p: _Pending) -> None:
        try:
            p.sock.do_handshake()
        except ssl.SSLWantReadError:
            self._selector.modify(p.sock, selectors.EVENT_READ, p)
            return
        except ssl.SSLWantWriteError:
            self._selector.modify(p.sock, selectors.EVENT_WRITE, p)
            return
        except (ssl.SSLEOFError, ssl.SSLZeroReturnError) as exc:
            self._abandoned += 1
            self._drop(p, f"connection closed during the TLS handshake: {exc}")
            return
        except ssl.SSLError as exc:
            if exc.reason == "HTTP_REQUEST":
                _answer_plain_http(p.sock)
            self._drop(p, f"TLS handshake failed: {exc.reason or exc}")
            return
        except OSError as exc:
            self._abandoned += 1
            self._drop(p, f"connection lost during the TLS handshake: {exc}")
            return
        self._forget(p)
        try:
            p.sock.setblocking(True)
            self.deliver(p.sock, p.addr)
        except Exception:
            log.exception("handing over a TLS connection from %s", p.addr[0])
            p.sock.close()

    def _expire(self) -> None:
        now = self.clock()
        while self._pending:
            first = next(iter(self._pending))
            if first.deadline > now:
                break
            self._expired += 1
            self._drop(first, f"no TLS handshake within {self.timeout:g} s")
        while self._headers:
            first = next(iter(self._headers))
            if first.deadline > now:
                break
            self._drop(first, f"no complete PROXY header within {self.proxy.timeout:g} s")

    def _forget(self, p: _Pending) -> None:
        p.done = True
        self._pending.pop(p, None)
        self._headers.pop(p, None)
        try:
            self._selector.unregister(p.sock)
        except (KeyError, ValueError, OSError):
            pass

    def _drop(self, p: _Pending, why: str = "") -> None:
        self._forget(p)
        if why and p.header is not None:  # a balancer misbehaving is the operator's business
            log.warning("connection from balancer %s closed: %s", p.addr[0], why)
        elif why:
            log.debug("client %s dropped: %s", p.addr[0] if p.addr else "?", why)
        p.sock.close()


class HandshakePool:
    """Several :class:`Handshaker` threads; a new connection goes to the one with the fewest in progress."""

    def __init__(self, context: Callable[[], ssl.SSLContext], deliver: Callable[[ssl.SSLSocket, tuple], None], *,
                 timeout: float, threads: int = HANDSHAKE_THREADS, max_pending: int = MAX_PENDING,
                 clock: Callable[[], float] = time.monotonic, proxy: ProxyPolicy | None = None):
        if threads < 1:
            raise ValueError("at least one handshake thread")
        self.members = [Handshaker(context, deliver, timeout=timeout, max_pending=max_pending, clock=clock,
                                   proxy=proxy) for _ in range(threads)]

    def submit(self, sock: socket.socket, addr: tuple) -> None:
        min(self.members, key=lambda h: h.pending).submit(sock, addr)

    def start(self) -> None:
        for i, h in enumerate(self.members):
            h.start(f"tls-handshakes-{i}")

    def stop(self) -> None:
        for h in self.members:
            h.stop()

    @property
    def pending(self) -> int:
        return sum(h.pending for h in self.members)


def _answer_plain_http(sock: ssl.SSLSocket) -> None:
    """Plain HTTP sent to the TLS port: say so in plain HTTP, best effort. What the client sent is read first, so
    that closing does not reset the connection before the answer is read."""
    raw = socket.socket  # the TCP socket under the TLS layer
    try:
        while raw.recv(sock, 65536):
            pass
    except OSError:
        pass
    try:
        raw.send(sock, _PLAIN_HTTP)
        raw.shutdown(sock, socket.SHUT_WR)
    except OSError:
        pass


class _AcceptOnly(connections.ConnectionManager):
    """cheroot's connection manager, whose accept hands the new socket to the handshaker and returns at once."""

    def __init__(self, server, handshaker: Handshaker | HandshakePool):
        super().__init__(server)
        self.handshaker = handshaker

    @property
    def _num_connections(self) -> int:
        """Connections watched for their next request. cheroot counts them under its selector's lock, asked by every
        worker thread after every request (may this one be kept alive?), while its manager thread holds that lock to
        walk all connections: under 200 clients a fifth of the worker threads' time went to waiting for it. The
        length of the selector's map is read whole without the lock (one dict), and the count only steers
        keep-alive and accept decisions."""
        mapping = self._selector._selector.get_map()
        return max(0, len(mapping) - 1) if mapping is not None else 0

    def _from_server_socket(self, server_socket):
        seat = self.server.seat
        if seat is not None and not self._mine(seat, server_socket):
            return None
        try:
            sock, addr = server_socket.accept()
        except OSError as exc:  # timeouts, a sibling took it, aborted before accept, no descriptors left
            if exc.errno in _NO_FD:
                log.warning("HTTPS accept failed: %s", exc)
                time.sleep(0.1)  # the listening socket stays readable: do not spin
            return None
        if seat is not None:
            seat.took()
        self.handshaker.submit(sock, addr)
        return None

    def _mine(self, seat, server_socket) -> bool:
        """Whether this worker takes the waiting connection: yes in its turn, or once the worker whose turn it is
        left it waiting for SHARED_ACCEPT_WAIT; no when a sibling took it meanwhile."""
        deadline = time.monotonic() + SHARED_ACCEPT_WAIT
        while not seat.my_turn() and time.monotonic() < deadline:
            time.sleep(SHARED_ACCEPT_POLL)
            if not select.select([server_socket], [], [], 0)[0]:
                return False
        return True


class HandshakingServer(wsgi.Server):
    """cheroot's WSGI server with TLS handshakes done by a :class:`Handshaker` instead of its accept thread.
    ``ssl_adapter`` stays set (it makes the request scheme https and wraps the connection's streams) but its
    blocking ``wrap`` is never called."""

    handshaker: Handshaker | HandshakePool | None = None
    #: idle keep-alive connections kept open (cheroot's default, 10, closed the connection after its request
    #: whenever more than 10 clients were between requests: 200 clients paid a new TLS handshake per request)
    keep_alive_conn_limit = 1024
    #: a listening socket opened before the workers were forked (``instpages serve --workers N``); None = bind
    listener: socket.socket | None = None
    #: this worker's slot on the workers' load board (gateway.loadboard), with ``listener``; None = one process
    seat = None

    def bind(self, family, type, proto=0):
        """cheroot's prepare binds here: a listener handed in is used as it is (shared by the worker processes)."""
        if self.listener is None:
            return super().bind(family, type, proto)
        self.socket = self.listener
        self.bind_addr = self.listener.getsockname()[:2]
        return self.socket

    def prepare(self):
        super().prepare()
        # accept only after the selector saw the socket readable, and never wait in it: when worker processes
        # share the listener another one may have taken the connection, and cheroot's 1 s timeout would hold
        # this accept thread (and every keep-alive connection it watches) that long
        self.socket.settimeout(0)
        if self.handshaker is not None:
            self._connections.close()
            self._connections = _AcceptOnly(self, self.handshaker)
            self.handshaker.start()
        if self.seat is not None:
            self.seat.arrive()

    def stop(self):
        if self.seat is not None:
            self.seat.leave()
        super().stop()
        if self.handshaker is not None:
            self.handshaker.stop()

    def deliver(self, sock: ssl.SSLSocket, addr: tuple) -> None:
        """A connection whose handshake completed: to the connection manager (a worker takes it when a request
        arrives), or straight to a worker when TLS already holds request bytes."""
        sock.settimeout(self.timeout)
        conn = self.ConnectionClass(self, sock, self.ssl_adapter.makefile)
        conn.remote_addr, conn.remote_port = addr[0], addr[1]
        conn.ssl_env = tls_environ(sock)
        if sock.pending():
            self.process_conn(conn)
        else:
            self.put_conn(conn)


def tls_environ(sock: ssl.SSLSocket) -> dict[str, str]:
    """What a request learns of its TLS connection. ``SSL_CLIENT_CERT`` is the certificate the client proved it
    holds the key of; the TLS layer's own verification is no statement about who that is (auth/ decides)."""
    cipher = sock.cipher() or ("", "", 0)
    env = {"wsgi.url_scheme": "https", "HTTPS": "on", "SSL_PROTOCOL": sock.version() or "", "SSL_CIPHER": cipher[0]}
    der = sock.getpeercert(binary_form=True)
    if der:
        env["SSL_CLIENT_CERT"] = ssl.DER_cert_to_PEM_cert(der).strip()
    return env
