"""The WebDAV front-end's fast PROPFIND: Depth 0 or 1 answered from one listing, one property query and one lock
query, the XML written as strings; anything it does not cover goes on to wsgidav unchanged.
"""
from __future__ import annotations

import html
import io
import mimetypes
from urllib.parse import quote
from xml.etree.ElementTree import ParseError

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException
from wsgidav import util
from wsgidav.mw.base_mw import BaseMiddleware

from gateway.core.entry import Entry
from gateway.dav import filingprops
from gateway.dav.errors import core_call
from gateway.dav.middleware import request_target
from gateway.dav.state import DbLockStorage, DbPropertyManager

_SUPPORTEDLOCK = ("<D:supportedlock><D:lockentry><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/>"
                  "</D:locktype></D:lockentry><D:lockentry><D:lockscope><D:shared/></D:lockscope><D:locktype>"
                  "<D:write/></D:locktype></D:lockentry></D:supportedlock>")
_LIVE = ("{DAV:}resourcetype", "{DAV:}creationdate", "{DAV:}getlastmodified", "{DAV:}displayname",
         "{DAV:}getcontentlength", "{DAV:}getcontenttype", "{DAV:}getetag", "{DAV:}lockdiscovery",
         "{DAV:}supportedlock")
_HREF_SAFE = "/" + "!*'()," + "$-_|."
#: responses per piece of the answer
_PIECE = 1000
#: seconds whose formatted dates a FastPropfind keeps (then it starts again)
_DATES_MAX = 100_000
#: documents' <D:response> elements a FastPropfind keeps (~0.5 KB each; then it starts again)
_MADE_MAX = 30_000


def _x(text: str) -> str:
    return html.escape(text, quote=False) if "&" in text or "<" in text or ">" in text else text


class FastPropfind(BaseMiddleware):
    """PROPFIND with Depth 0 or 1 answered from one listing, one property query and one lock query, the XML
    written as strings. wsgidav builds an element tree per property per member and asks the property and lock
    stores once per member, which is what made 10,000-entry folders slow. Anything this path does not cover
    (propname requests, locks anywhere near the target, unparsable bodies) goes to wsgidav unchanged.

    A document's ``<D:response>`` is a pure function of its href, its id, its time and the asked properties (a
    stored document's size, digest and type never change; its time changes when a staged upload is committed): it
    is made once and kept (bounded), so a folder listed again costs the core's listing and little more. Nothing kept
    depends on who asks: which documents an answer holds is the core's listing for the caller, every time; documents
    with dead properties are made afresh.

    A document's filing (kind, legislation, period: :mod:`gateway.dav.filingprops`) comes with the listing's rows
    and is answered as live properties, their namespace (``ip:``) declared on the response of a filed document."""

    def __init__(self, wsgidav_app, next_app, config):
        super().__init__(wsgidav_app, next_app, config)
        self.mount = config.get("mount_path") or ""
        self.props: DbPropertyManager = config["property_manager"]
        self.locks: DbLockStorage = config["lock_storage"]
        self._dates: dict[int, tuple[str, str]] = {}  # second -> its dates as the properties show them
        self._made: dict[tuple, str] = {}  # (href, document id, its time, asked properties) -> its <D:response>

    def is_disabled(self):
        return False

    def __call__(self, environ, start_response):
        if environ["REQUEST_METHOD"] != "PROPFIND" or environ.get("HTTP_DEPTH") not in ("0", "1"):
            return self.next_app(environ, start_response)
        wanted = self._wanted(environ)
        if wanted is False:
            return self.next_app(environ, start_response)
        target = request_target(environ)
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
            members.extend((base + e.name + ("/" if e.is_folder else ""), e) for e in core_call(session.list, vp))
        dead = self.props.under(quote(own)) if self._has_dead(wanted) else {}
        body = self._body(members, wanted, dead)
        start_response("207 Multi-Status", [("Content-Type", "application/xml; charset=utf-8"),
                                            ("Content-Length", str(sum(map(len, body)))), ("DAV", "1, 2")])
        return body

    def _body(self, members: list[tuple[str, Entry]], wanted, dead) -> list[bytes]:
        """The multistatus in pieces of ``_PIECE`` responses each, encoded as they are made: a 10,000-document
        answer is never one string and one copy of it in bytes at once. The server sends them one after the
        other."""
        body: list[bytes] = []
        parts = ['<?xml version="1.0" encoding="utf-8"?>\n<D:multistatus xmlns:D="DAV:">']
        if len(self._dates) > _DATES_MAX:
            self._dates.clear()
        if len(self._made) > _MADE_MAX:
            self._made.clear()
        dates, made, asked = self._dates, self._made, None if wanted is None else tuple(wanted)
        for i, (p, e) in enumerate(members, 1):
            own_dead = dead.get(quote(p), ()) if dead else ()
            if own_dead or e.is_folder:
                parts.append(self._response(p, e, wanted, own_dead, dates))
            else:  # made once, answered many times: a document's size, digest and type never change once stored,
                # its time only when a staged upload is committed (so it is part of the key); the href holds its name
                key = (p, e.document_id, e.mtime, e.filing, asked) if e.document_id is not None else (p, e, asked)
                xml = made.get(key)
                if xml is None:
                    xml = made[key] = self._response(p, e, wanted, (), dates)
                parts.append(xml)
            if i % _PIECE == 0:
                body.append("".join(parts).encode("utf-8"))
                parts.clear()
        parts.append("</D:multistatus>\n")
        body.append("".join(parts).encode("utf-8"))
        return body

    @staticmethod
    def _has_dead(wanted) -> bool:
        return wanted is None or any(not n.startswith("{DAV:}") and not filingprops.is_ours(n) for n in wanted)

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

    def _response(self, path: str, e: Entry, wanted, dead, dates: dict) -> str:
        found: list[str] = []
        missing: list[str] = []
        if wanted is None:  # allprop: the live ones, the filing when the document has one, the dead ones
            names = [*_LIVE, *filingprops.names(e), *(n for n, _ in dead if not filingprops.is_ours(n))]
        else:
            names = wanted
        dead_map = dict(dead) if dead else {}
        for name in names:
            render = _RENDER.get(name)
            if render is not None:
                xml = render(e, dates)
                if xml is not None:
                    found.append(xml)
                elif wanted is not None:
                    missing.append(name)
            elif name in dead_map:
                found.append(dead_map[name])
            elif wanted is not None:
                missing.append(name)
        href = quote(self.mount + path, safe=_HREF_SAFE)
        out = [f"<D:response{_FILED_NS if e.filing else ''}><D:href>{href}</D:href>"]
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


def _times(mtime: float, dates: dict) -> tuple[str, str]:
    """(RFC 3339, RFC 1123) of ``mtime``, formatted once per second of time a request meets: both have a
    resolution of one second, and the documents of a folder arrive in bursts."""
    second = int(mtime)
    if mtime - second >= 0.999 or mtime < 0:  # where rounding to the microsecond could reach the next second
        return util.get_rfc3339_time(mtime), util.get_rfc1123_time(mtime)
    hit = dates.get(second)
    if hit is None:
        hit = dates[second] = (util.get_rfc3339_time(second), util.get_rfc1123_time(second))
    return hit


def _content_type(e: Entry) -> str:
    return e.content_type or mimetypes.guess_type(e.name)[0] or "application/octet-stream"


#: the live properties: Clark name -> its XML for an entry (None: the entry has none)
_RENDER = {
    "{DAV:}resourcetype": lambda e, d: "<D:resourcetype><D:collection/></D:resourcetype>" if e.is_folder
    else "<D:resourcetype/>",
    "{DAV:}creationdate": lambda e, d: f"<D:creationdate>{_times(e.mtime or 0.0, d)[0]}</D:creationdate>",
    "{DAV:}getlastmodified": lambda e, d: f"<D:getlastmodified>{_times(e.mtime or 0.0, d)[1]}</D:getlastmodified>",
    "{DAV:}displayname": lambda e, d: f"<D:displayname>{_x(e.display_name or e.name)}</D:displayname>",
    "{DAV:}lockdiscovery": lambda e, d: "<D:lockdiscovery/>",
    "{DAV:}supportedlock": lambda e, d: _SUPPORTEDLOCK,
    "{DAV:}getcontentlength": lambda e, d: None if e.is_folder
    else f"<D:getcontentlength>{e.size}</D:getcontentlength>",
    "{DAV:}getcontenttype": lambda e, d: None if e.is_folder
    else f"<D:getcontenttype>{_x(_content_type(e))}</D:getcontenttype>",
    "{DAV:}getetag": lambda e, d: f"<D:getetag>{e.sha256[:40]}</D:getetag>" if not e.is_folder and e.sha256
    else None,
}
assert set(_RENDER) == set(_LIVE)


_FILED_NS = f' xmlns:{filingprops.PREFIX}="{filingprops.NS}"'


def _filing(index: int, local: str):
    tag = f"{filingprops.PREFIX}:{local}"
    return lambda e, d: f"<{tag}>{_x(e.filing[index])}</{tag}>" if e.filing else None


# the filing (None for folders and unclassified documents: asked by name, they answer 404)
_RENDER.update({name: _filing(i, name[len(filingprops.CLARK):]) for i, name in enumerate(filingprops.NAMES)})
