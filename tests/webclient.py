"""A browser without JavaScript, for the tests of the web pages (the console, the institutional page): http.client
on the gateway's HTTPS port, cookies kept per name, forms sent (a field may repeat: give a list), redirects
followed only when asked, and optionally an eID card in the reader (its certificate in the TLS handshake)."""
from __future__ import annotations

import http.client
import ssl
import urllib.parse
from dataclasses import dataclass

#: the gateway's certificate is its own (self-signed in tests)
CTX = ssl._create_unverified_context()


@dataclass
class Resp:
    status: int
    headers: dict[str, str]
    cookies: list[str]
    raw: bytes

    @property
    def text(self) -> str:
        return self.raw.decode("utf-8", "replace")

    @property
    def location(self) -> str:
        return self.headers.get("location", "")


class Client:
    def __init__(self, gw, accept_language: str | None = None, cert=None):
        self.gw = gw
        self.jar: dict[str, str] = {}
        self.accept_language = accept_language
        self.ctx = CTX
        if cert is not None:  # an eID card in the reader: its certificate in the TLS handshake
            self.ctx = ssl._create_unverified_context()
            self.ctx.load_cert_chain(str(cert.chain), str(cert.key))

    def request(self, method: str, path: str, form: dict | None = None, headers: dict | None = None) -> Resp:
        conn = http.client.HTTPSConnection("127.0.0.1", self.gw.dav_port, context=self.ctx, timeout=30)
        h = dict(headers or {})
        if self.jar:
            h["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.jar.items())
        if self.accept_language:
            h["Accept-Language"] = self.accept_language
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form, doseq=True)
            h["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            conn.request(method, path, body=body, headers=h)
            r = conn.getresponse()
            raw = r.read()
            cookies = [v for k, v in r.getheaders() if k.lower() == "set-cookie"]
            for c in cookies:
                name, _, rest = c.partition("=")
                if "Max-Age=0" in c:
                    self.jar.pop(name, None)
                else:
                    self.jar[name] = rest.split(";")[0]
            return Resp(r.status, {k.lower(): v for k, v in r.getheaders()}, cookies, raw)
        finally:
            conn.close()

    def get(self, path: str, **kw) -> Resp:
        return self.request("GET", path, **kw)

    def post(self, path: str, /, **form) -> Resp:
        return self.request("POST", path, form=form)

    def follow(self, r: Resp) -> Resp:
        while r.status in (302, 303):
            r = self.get(r.location.split("#")[0])
        return r
