"""Raw HTTP/1.1 over a real TLS socket, for requests no well-behaved client sends (malformed headers, bad chunk
sizes, odd escapes) and for checking that the answer is complete: a status line, headers, and exactly the body
its Content-Length (or chunked framing) announces.

    r = send(port, b"GET /dav/ HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n")
    r.status, r.headers["content-type"], r.body, r.complete
"""
from __future__ import annotations

import socket
import ssl
import time
from dataclasses import dataclass, field


@dataclass
class Response:
    status: int = 0
    reason: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    #: status line, headers and a body of exactly the announced length all arrived
    complete: bool = False
    #: what went wrong when it is not complete (timeout, connection closed early, ...)
    problem: str = ""
    raw: bytes = b""


def tls_connect(port: int, host: str = "127.0.0.1", timeout: float = 10.0, cert=None) -> ssl.SSLSocket:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if cert is not None:
        ctx.load_cert_chain(str(cert.cert), str(cert.key))
    sock = socket.create_connection((host, port), timeout=timeout)
    return ctx.wrap_socket(sock)


def _read_until(sock, buf: bytearray, marker: bytes, deadline: float) -> int:
    while (i := buf.find(marker)) < 0:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed before " + repr(marker))
        buf += chunk
    return i


def _read_exactly(sock, buf: bytearray, n: int, deadline: float) -> None:
    while len(buf) < n:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"connection closed after {len(buf)} of {n} body bytes")
        buf += chunk


def read_response(sock, *, method: str = "GET", timeout: float = 10.0) -> Response:
    """One response from ``sock``, checked for completeness (a HEAD answer has no body)."""
    r = Response()
    buf = bytearray()
    deadline = time.monotonic() + timeout
    try:
        end = _read_until(sock, buf, b"\r\n\r\n", deadline)
        head, rest = bytes(buf[:end]), bytearray(buf[end + 4:])
        lines = head.decode("latin-1").split("\r\n")
        proto, _, tail = lines[0].partition(" ")
        code, _, r.reason = tail.partition(" ")
        if not proto.startswith("HTTP/1.") or not code.isdigit():
            r.problem = f"bad status line {lines[0]!r}"
            return r
        r.status = int(code)
        for line in lines[1:]:
            k, _, v = line.partition(":")
            r.headers[k.strip().lower()] = v.strip()
        if method == "HEAD" or r.status in (204, 304) or 100 <= r.status < 200:
            r.complete = True
        elif "chunked" in r.headers.get("transfer-encoding", "").lower():
            body = bytearray()
            while True:
                i = _read_until(sock, rest, b"\r\n", deadline)
                size = int(bytes(rest[:i]).split(b";")[0], 16)
                del rest[:i + 2]
                _read_exactly(sock, rest, size + 2, deadline)
                body += rest[:size]
                del rest[:size + 2]
                if size == 0:
                    break
            r.body, r.complete = bytes(body), True
        elif "content-length" in r.headers:
            n = int(r.headers["content-length"])
            _read_exactly(sock, rest, n, deadline)
            r.body, r.complete = bytes(rest[:n]), True
        else:  # the body ends when the connection does
            while True:
                sock.settimeout(max(0.01, deadline - time.monotonic()))
                chunk = sock.recv(65536)
                if not chunk:
                    break
                rest += chunk
            r.body, r.complete = bytes(rest), True
    except (OSError, ValueError) as exc:
        r.problem = f"{type(exc).__name__}: {exc}"
    r.raw = bytes(buf)
    return r


def send(port: int, request: bytes, *, timeout: float = 10.0, method: str = "GET", cert=None) -> Response:
    """Send ``request`` as it is on a new TLS connection and read one answer."""
    with tls_connect(port, timeout=timeout, cert=cert) as sock:
        sock.sendall(request)
        return read_response(sock, method=method, timeout=timeout)


def request(method: str, path: str, headers: dict[str, str] | list[tuple[str, str]] = (), body: bytes = b"", *,
            close: bool = True) -> bytes:
    """A request as bytes; header values are sent as latin-1 (so any byte can be put into one)."""
    items = list(headers.items()) if isinstance(headers, dict) else list(headers)
    names = {k.lower() for k, _ in items}
    if "host" not in names:
        items.insert(0, ("Host", "127.0.0.1"))
    if close and "connection" not in names:
        items.append(("Connection", "close"))
    if body and "content-length" not in names and "transfer-encoding" not in names:
        items.append(("Content-Length", str(len(body))))
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in items) + "\r\n"
    return head.encode("latin-1") + body
