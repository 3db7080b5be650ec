"""A document's filing (kind, legislation, period) as WebDAV properties in ``urn:x-instpages:``, with curl against a
real gateway: PROPFIND Depth 1 (allprop, by name, propname) shows them for filed documents and not for unclassified
ones or folders; PROPPATCH of them is refused (403, ``cannot-modify-protected-property``) and on the record. And
the fast PROPFIND path answers them as wsgidav's own path does."""
from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET

import pytest

from gateway.dav.app import create_app
from tests.conftest import CENTRE_A, STAFF_PASSWORD, keygen
from tests.davtools import audit_list, dav_curl
from tests.gateway.test_webdav_propfind import call, canon, semantic
from tests.pdfsamples import minimal_pdf

NS = "urn:x-instpages:"
KIND, LEG, PERIOD = (f"{{{NS}}}{n}" for n in ("kind", "legislation", "period"))
WRITER, WRITER_PW = "fp-writer", "fp-writer-password-1"
BY_NAME = "ris_maandstaat_2026-10.pdf"
BY_FOLDER = "law1965/refused-forms/2026-09/lijst.pdf"
PLAIN = "brief <aan> het centrum.pdf"
ALLPROP = b'<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>'
NAMED = (b'<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns:ip="urn:x-instpages:"><D:prop><D:getcontentlength/>'
         b"<ip:kind/><ip:legislation/><ip:period/></D:prop></D:propfind>")
PROPNAME = b'<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:propname/></D:propfind>'


def _set(prop: str = "kind", value: str = "annual-settlement", verb: str = "set") -> bytes:
    inner = f"<ip:{prop}>{value}</ip:{prop}>" if verb == "set" else f"<ip:{prop}/>"
    return (f'<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:ip="{NS}"><D:{verb}><D:prop>{inner}'
            f"</D:prop></D:{verb}></D:propertyupdate>").encode()


@pytest.fixture(scope="module")
def fp(world, tmp_path_factory):
    """A folder of A holding a document filed by name, one filed by folder, and an unclassified one (podmi, SFTP)."""
    tmp = tmp_path_factory.mktemp("filingprops")
    folder = "fp-" + hashlib.sha256(tmp.name.encode()).hexdigest()[:8]
    key = keygen(tmp / WRITER)
    world.admin.add_account(WRITER, "staff", None, [key.with_suffix(".pub").read_text()], WRITER_PW, allow_keys=True)
    world.admin.grant(WRITER, CENTRE_A, can_write=True, can_remove=True)
    cmds = [f'mkdir "/{CENTRE_A}/{folder}"']
    sub = f"/{CENTRE_A}/{folder}"
    for part in BY_FOLDER.split("/")[:-1]:
        sub += "/" + part
        cmds.append(f'mkdir "{sub}"')
    for i, name in enumerate((BY_NAME, BY_FOLDER, PLAIN)):
        (tmp / f"doc{i}").write_bytes(minimal_pdf(name))
        cmds.append(f'put "{tmp / f"doc{i}"}" "/{CENTRE_A}/{folder}/{name}"')
    p = world.sftp("podmi", "\n".join(cmds) + "\n")
    assert p.returncode == 0, p.stdout + p.stderr
    return folder


def _props(xml: bytes) -> dict[str, dict[str, tuple[str, str]]]:
    """{href: {property: (status, text)}}"""
    out = {}
    for resp in ET.fromstring(xml).findall("{DAV:}response"):
        props = {}
        for ps in resp.findall("{DAV:}propstat"):
            status = ps.findtext("{DAV:}status").split()[1]
            for prop in ps.find("{DAV:}prop"):
                props[prop.tag] = (status, (prop.text or "").strip())
        out[resp.findtext("{DAV:}href")] = props
    return out


def _by_name(props: dict, name: str) -> dict:
    [hit] = [v for href, v in props.items() if href.rstrip("/").endswith("/" + name.replace(" ", "%20")
                                                                            .replace("<", "%3C").replace(">", "%3E"))]
    return hit


def _propfind(world, path: str, body: bytes, tmp, depth: str = "1"):
    r = dav_curl(world, "PROPFIND", path, tmp, user="staff-a", password=STAFF_PASSWORD, body=body,
                 headers={"Depth": depth, "Content-Type": "application/xml"})
    assert r.status == 207, r
    return _props(r.body)


def test_allprop_depth1_shows_the_filing_of_filed_documents_only(world, fp, tmp_path):
    props = _propfind(world, f"/{CENTRE_A}/{fp}/", ALLPROP, tmp_path)
    filed = _by_name(props, BY_NAME)
    assert (filed[KIND], filed[LEG], filed[PERIOD]) == (("200", "monthly-statement"), ("200", "ris"),
                                                         ("200", "2026-10"))
    plain = _by_name(props, PLAIN)
    assert "{DAV:}getcontentlength" in plain and not any(k.startswith(f"{{{NS}}}") for k in plain)
    folder = _by_name(props, "law1965")  # folders are not filed
    assert not any(k.startswith(f"{{{NS}}}") for k in folder)
    deep = _propfind(world, f"/{CENTRE_A}/{fp}/law1965/refused-forms/2026-09/", b"", tmp_path)  # empty body: allprop
    doc = _by_name(deep, "lijst.pdf")
    assert (doc[KIND], doc[LEG], doc[PERIOD]) == (("200", "refused-forms"), ("200", "law1965"), ("200", "2026-09"))


def test_asked_by_name_an_unclassified_document_answers_404_for_them(world, fp, tmp_path):
    props = _propfind(world, f"/{CENTRE_A}/{fp}/", NAMED, tmp_path)
    assert _by_name(props, BY_NAME)[KIND] == ("200", "monthly-statement")
    plain = _by_name(props, PLAIN)
    assert plain[KIND] == plain[LEG] == plain[PERIOD] == ("404", "")
    assert plain["{DAV:}getcontentlength"][0] == "200"
    one = _propfind(world, f"/{CENTRE_A}/{fp}/{BY_NAME}", NAMED, tmp_path, depth="0")  # a document's own stat
    assert list(one.values())[0][PERIOD] == ("200", "2026-10")


def test_propname_lists_them_for_filed_documents_only(world, fp, tmp_path):
    props = _propfind(world, f"/{CENTRE_A}/{fp}/", PROPNAME, tmp_path)
    assert {KIND, LEG, PERIOD} <= set(_by_name(props, BY_NAME))
    assert not {KIND, LEG, PERIOD} & set(_by_name(props, PLAIN))


@pytest.mark.parametrize("prop,verb", [("kind", "set"), ("period", "set"), ("legislation", "remove"),
                                       ("colour", "set")])
def test_proppatch_of_the_filing_is_refused_and_on_the_record(world, fp, tmp_path, prop, verb):
    path = f"/{CENTRE_A}/{fp}/{BY_NAME}"
    r = dav_curl(world, "PROPPATCH", path, tmp_path, user=WRITER, password=WRITER_PW, body=_set(prop, verb=verb),
                 headers={"Content-Type": "application/xml"})
    assert r.status == 207, r
    [resp] = _props(r.body).values()
    assert resp[f"{{{NS}}}{prop}"][0] == "403", r
    assert "cannot-modify-protected-property" in r.text and "set by the filing rules" in r.text
    row = next(x for x in audit_list(world) if x["ACTOR"] == WRITER and x["VIA"] == "webdav")
    assert row["ACTION"] == "upload" and row["OUTCOME"] == "denied" and row["PATH"] == path, row
    assert f"{prop} is set by the filing rules" in row["DETAIL"], row
    after = _propfind(world, path, NAMED, tmp_path, depth="0")
    assert list(after.values())[0][KIND] == ("200", "monthly-statement")  # nothing changed
    # the same writer may still set a property of its own namespace (dead properties work as before)
    other = _set("colour").replace(f'xmlns:ip="{NS}"'.encode(), b'xmlns:ip="urn:x-test:"')
    ok = dav_curl(world, "PROPPATCH", path, tmp_path, user=WRITER, password=WRITER_PW, body=other,
                  headers={"Content-Type": "application/xml"})
    assert ok.status == 207 and "200 OK" in ok.text and "403" not in ok.text, ok


@pytest.mark.parametrize("body", [b"", NAMED, PROPNAME])
def test_fast_path_answers_them_as_wsgidav_does(world, fp, body):
    mb = world.services.mailbox
    fast, slow = create_app(mb), create_app(mb, fast_propfind=False)
    who = {"user": "staff-a", "password": STAFF_PASSWORD}
    s1, _, x1 = call(fast, "PROPFIND", f"/{CENTRE_A}/{fp}/", body, {"Depth": "1"}, **who)
    s2, _, x2 = call(slow, "PROPFIND", f"/{CENTRE_A}/{fp}/", body, {"Depth": "1"}, **who)
    assert s1.startswith("207") and s2.startswith("207"), (s1, s2)
    a, b = semantic(x1), semantic(x2)
    assert sorted(a) == sorted(b) and len(a) == 4
    for href in a:
        assert canon(a[href]) == canon(b[href]), href
    assert any(KIND in props for props in a.values())
