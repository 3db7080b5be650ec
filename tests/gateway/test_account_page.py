"""The person's own page: strong login (password + token code) in a real HTTPS session, then a device password
that works for WebDAV, and CSRF on every form."""
from __future__ import annotations

import re
import ssl
import urllib.error
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar

import pytest

PW = "a long password for jan"


@pytest.fixture
def gw(make_gateway):
    g = make_gateway(env={"INSTPAGES_AUTH_SECOND_FACTOR": "required"})
    from tests.conftest import CENTRE_A

    g.admin.add_account("jan", "staff", password=PW)
    g.admin.grant("jan", CENTRE_A)
    g.card = dict(g.admin.issue_token_card("jan"))
    return g


def opener():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    jar = CookieJar()
    return urllib.request.build_opener(urllib.request.HTTPSHandler(context=ctx),
                                       urllib.request.HTTPCookieProcessor(jar)), jar


def post(op, url, **fields):
    data = urllib.parse.urlencode(fields).encode()
    try:
        with op.open(urllib.request.Request(url, data=data, method="POST"), timeout=30) as r:
            return r.status, r.read().decode(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), dict(e.headers)


def test_token_login_then_device_password_for_webdav(gw):
    base = f"https://127.0.0.1:{gw.dav_port}/account/"
    op, jar = opener()
    status, page, headers = post(op, base + "login", username="jan", step="username")
    assert status == 200 and "script" not in page.lower()
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    number = int(re.search(r"Code number (\d+) of your token", page).group(1))
    # a wrong code: generic failure, no cookie
    status, page, _ = post(op, base + "login", username="jan", password=PW, number=number, code="000000x")
    assert status == 401 and "Login failed." in page and not list(jar)
    # the same number is asked again until answered
    status, page, _ = post(op, base + "login", username="jan", step="username")
    assert int(re.search(r"Code number (\d+)", page).group(1)) == number
    status, page, _ = post(op, base + "login", username="jan", password=PW, number=number, code=gw.card[number])
    assert status == 200 and "Logged in as jan" in page
    cookie = next(c for c in jar if c.name == "ip_account")
    assert cookie.secure and cookie.has_nonstandard_attr("HttpOnly")
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page).group(1)
    # without the CSRF token: refused
    status, _, _ = post(op, base + "create", label="laptop")
    assert status == 403
    status, page, _ = post(op, base + "create", label="laptop", csrf=csrf)
    assert status == 200
    secret = re.search(r"<pre>(ipdp-[^<]+)</pre>", page).group(1)
    # the device password opens the WebDAV drive (and only that)
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    req = urllib.request.Request(gw.dav_url + "/", method="PROPFIND", headers={"Depth": "1"})
    import base64
    req.add_header("Authorization", "Basic " + base64.b64encode(f"jan:{secret}".encode()).decode())
    with urllib.request.urlopen(req, context=ctx, timeout=30) as r:
        assert r.status == 207
    # the plain password alone does not
    req = urllib.request.Request(gw.dav_url + "/", method="PROPFIND", headers={"Depth": "1"})
    req.add_header("Authorization", "Basic " + base64.b64encode(f"jan:{PW}".encode()).decode())
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, context=ctx, timeout=30)
    assert e.value.code == 401
    # revoke it from the page
    status, page, _ = post(op, base, csrf=csrf)  # a plain reload through POST changes nothing
    device_id = re.search(r'name="id" value="(\d+)"', page).group(1)
    status, page, _ = post(op, base + "revoke", id=device_id, csrf=csrf)
    assert status == 200 and "revoked" in page
    req = urllib.request.Request(gw.dav_url + "/", method="PROPFIND", headers={"Depth": "1"})
    req.add_header("Authorization", "Basic " + base64.b64encode(f"jan:{secret}".encode()).decode())
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, context=ctx, timeout=30)
    assert e.value.code == 401
    actions = [(e.action, e.outcome) for e in gw.audit(limit=40) if e.actor == "jan"]
    assert ("device-password-create", "ok") in actions and ("device-password-revoke", "ok") in actions


def test_forged_cookie_is_ignored(gw):
    base = f"https://127.0.0.1:{gw.dav_port}/account/"
    op, jar = opener()
    req = urllib.request.Request(base, headers={"Cookie": "ip_account=MXxqYW58OTk5OTk5OTk5OQ.0000"})
    with op.open(req, timeout=30) as r:
        assert "Log in" in r.read().decode()
