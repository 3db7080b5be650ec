"""The fast PROPFIND path must answer what wsgidav's own PROPFIND answers (compared semantically), and fall
back to wsgidav where it does not apply."""
from __future__ import annotations

import base64
import io
import xml.etree.ElementTree as ET

import pytest

from gateway.core.enterprise import with_check
from gateway.dav.app import create_app
from tests import pdfsamples

PW = "propfind-password-1"
SCRATCH = with_check("02077777")


def call(app, method, path, body=b"", headers=None, user="pf-writer", password=PW):
    env = {"REQUEST_METHOD": method, "SCRIPT_NAME": "/dav", "QUERY_STRING": "",
           "PATH_INFO": path.encode("utf-8").decode("latin-1"),  # as a WSGI server passes it
           "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8443", "SERVER_PROTOCOL": "HTTP/1.1",
           "wsgi.url_scheme": "https", "wsgi.input": io.BytesIO(body), "wsgi.errors": io.StringIO(),
           "wsgi.version": (1, 0), "wsgi.multithread": True, "wsgi.multiprocess": False, "wsgi.run_once": False,
           "REMOTE_ADDR": "127.0.0.1", "CONTENT_LENGTH": str(len(body)),
           "HTTP_AUTHORIZATION": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}
    for k, v in (headers or {}).items():
        env["HTTP_" + k.upper().replace("-", "_")] = v
    out = {}

    def start_response(status, hdrs, exc_info=None):
        out["status"], out["headers"] = status, dict(hdrs)

    chunks = app(env, start_response)
    data = b"".join(chunks)
    if hasattr(chunks, "close"):
        chunks.close()
    return out["status"], out["headers"], data


def semantic(xml: bytes) -> dict:
    root = ET.fromstring(xml)
    result = {}
    for resp in root.findall("{DAV:}response"):
        href = resp.findtext("{DAV:}href")
        props = {}
        for ps in resp.findall("{DAV:}propstat"):
            status = ps.findtext("{DAV:}status").split()[1]
            for prop in ps.find("{DAV:}prop"):
                props[prop.tag] = (status, ET.tostring(prop, encoding="unicode") if status == "200" else "")
        result[href] = props
    return result


def canon(props: dict) -> dict:
    """Compare element structure and text, not namespace prefixes."""
    out = {}
    for name, (status, xml) in props.items():
        if xml:
            el = ET.fromstring(xml)
            xml = [(x.tag, (x.text or "").strip()) for x in el.iter()]
        out[name] = (status, xml)
    return out


@pytest.fixture(scope="module")
def apps(world):
    admin = world.admin
    admin.add_institution(SCRATCH, "PF scratch", "active", content_types="*", mutable=True)
    admin.add_account("pf-writer", "staff", password=PW)
    admin.grant("pf-writer", SCRATCH, can_remove=True, can_write=True)
    mb = world.services.mailbox
    fast, slow = create_app(mb), create_app(mb, fast_propfind=False)
    for name in ("a.pdf", "b <&> é.pdf"):
        status, _, _ = call(fast, "PUT", f"/{SCRATCH}/{name}", pdfsamples.minimal_pdf(name))
        assert status.startswith("201"), status
    assert call(fast, "MKCOL", f"/{SCRATCH}/sub")[0].startswith("201")
    body = (b'<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:x-test:"><D:set><D:prop>'
            b"<Z:colour>blue &amp; green</Z:colour></D:prop></D:set></D:propertyupdate>")
    assert call(fast, "PROPPATCH", f"/{SCRATCH}/a.pdf", body)[0].startswith("207")
    return fast, slow


@pytest.mark.parametrize("depth", ["0", "1"])
@pytest.mark.parametrize("body", [
    b"",
    b'<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>',
    b'<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns:Z="urn:x-test:"><D:prop><D:getcontentlength/>'
    b"<D:getetag/><D:resourcetype/><Z:colour/><Z:nothing/><D:displayname/></D:prop></D:propfind>",
])
def test_fast_path_matches_wsgidav(apps, depth, body):
    fast, slow = apps
    s1, h1, x1 = call(fast, "PROPFIND", f"/{SCRATCH}/", body, {"Depth": depth})
    s2, h2, x2 = call(slow, "PROPFIND", f"/{SCRATCH}/", body, {"Depth": depth})
    assert s1.startswith("207") and s2.startswith("207")
    a, b = semantic(x1), semantic(x2)
    assert sorted(a) == sorted(b)
    assert len(a) == (1 if depth == "0" else 4)
    for href in a:
        assert canon(a[href]) == canon(b[href]), href


def test_dead_property_is_listed(apps):
    fast, _ = apps
    body = (b'<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns:Z="urn:x-test:"><D:prop><Z:colour/>'
            b"</D:prop></D:propfind>")
    _, _, xml = call(fast, "PROPFIND", f"/{SCRATCH}/a.pdf", body, {"Depth": "0"})
    assert "blue &amp; green" in xml.decode()


def test_locked_targets_fall_back_to_wsgidav(apps):
    fast, _ = apps
    lock = (b'<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope>'
            b"<D:locktype><D:write/></D:locktype><D:owner>tester</D:owner></D:lockinfo>")
    status, headers, _ = call(fast, "LOCK", f"/{SCRATCH}/a.pdf", lock, {"Timeout": "Second-60"})
    assert status.startswith("200"), status
    token = headers["Lock-Token"]
    try:
        _, _, xml = call(fast, "PROPFIND", f"/{SCRATCH}/", b"", {"Depth": "1"})
        assert token.strip("<>") in xml.decode()  # lockdiscovery shows the lock
    finally:
        assert call(fast, "UNLOCK", f"/{SCRATCH}/a.pdf", b"", {"Lock-Token": token})[0].startswith("204")
