"""The WebDAV front-end's folder listing for browsers: GET on a folder answers a plain HTML page with download
links, every name escaped, no script at all.
"""
from __future__ import annotations

import html
import time
from urllib.parse import quote

from wsgidav.mw.base_mw import BaseMiddleware

from gateway.dav.errors import core_call
from gateway.dav.middleware import request_target

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
        target = request_target(environ)
        if target is None:
            return self.next_app(environ, start_response)
        session, path, vp, entry = target
        if not entry.is_folder:
            return self.next_app(environ, start_response)
        if not path.endswith("/"):
            start_response("301 Moved Permanently", [("Location", quote(self.mount + path + "/")),
                                                     ("Content-Length", "0")])
            return [b""]
        entries = core_call(session.list, vp)
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
