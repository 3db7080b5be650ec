"""``Expect: 100-continue`` on the HTTPS port, answered the way RFC 9110 means it: "100 Continue" goes out when the
application first reads the request body, not before.

cheroot writes "100 Continue" as soon as it has read the headers (its own comment calls the alternative "a big
slowdown for such a rare case"), so a client whose upload is refused anyway -- no login, no right to the folder,
too large -- sends its whole body before it reads the refusal. Here the interim answer is held back: a refused
upload is answered before its body is sent, and the connection is then closed (the client did not send the body
the headers announced, so nothing more can be read from that connection reliably). An accepted upload gets its
"100 Continue" when the application starts reading, and the body is streamed to it as it arrives.

The cheroot internals relied on: ``HTTPRequest.read_request_headers`` writes the 100 through ``conn.wfile``;
``respond`` assigns ``self.rfile`` the body stream the WSGI gateway hands on as ``wsgi.input``; ``send_headers``
reads what is left of the body unless ``close_connection`` is set. tests/gateway/test_https_server.py notices a
change.
"""
from __future__ import annotations

from cheroot import server


class _HoldContinue:
    """``conn.wfile`` while cheroot reads the headers: its immediate "100 Continue" is kept, the rest passes."""

    def __init__(self, wfile):
        self.wfile = wfile
        self.held: bytes = b""

    def write(self, data: bytes):
        if data.endswith(b" 100 Continue\r\n\r\n") and data.count(b"\r\n") == 2:
            self.held = bytes(data)
            return len(data)
        return self.wfile.write(data)

    def __getattr__(self, name):
        return getattr(self.wfile, name)


class _ContinueOnRead:
    """The request body stream: the first read sends the held "100 Continue", then reads pass through."""

    def __init__(self, stream, send):
        self._stream, self._send = stream, send
        self.sent = False

    def _go(self) -> None:
        if not self.sent:
            self.sent = True
            self._send()

    def read(self, *args):
        self._go()
        return self._stream.read(*args)

    def readline(self, *args):
        self._go()
        return self._stream.readline(*args)

    def readlines(self, *args):
        self._go()
        return self._stream.readlines(*args)

    def __iter__(self):
        return iter(self.readline, b"")

    def __getattr__(self, name):  # remaining, close, ...
        return getattr(self._stream, name)


class ContinuingRequest(server.HTTPRequest):
    _continue: bytes = b""
    _body: _ContinueOnRead | None = None

    def read_request_headers(self):
        real = self.conn.wfile
        hold = _HoldContinue(real)
        self.conn.wfile = hold
        try:
            return super().read_request_headers()
        finally:
            self.conn.wfile = real
            self._continue = hold.held

    @property
    def rfile(self):
        return self.__dict__.get("_rfile")

    @rfile.setter
    def rfile(self, stream):
        if self._continue and self._body is None and stream is not None \
                and not isinstance(stream, server.SizeCheckWrapper):
            stream = self._body = _ContinueOnRead(stream, lambda: self.conn.wfile.write(self._continue))
        self.__dict__["_rfile"] = stream

    def send_headers(self):
        if self._body is not None and not self._body.sent:
            # answered without reading the body, which the client therefore never sent: end the connection
            # rather than wait for it
            self.close_connection = True
        return super().send_headers()


class ContinuingConnection(server.HTTPConnection):
    RequestHandlerClass = ContinuingRequest
