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


# -- the page acts as the person, through the core's session checks (issue 9, item 8) ------------------------------
def page_login(gw, name: str = "jan", password: str = PW):
    """A strong login on the account page with a real HTTPS client: (opener, its cookie jar, CSRF token)."""
    base = f"https://127.0.0.1:{gw.dav_port}/account/"
    op, jar = opener()
    _, page, _ = post(op, base + "login", username=name, step="username")
    number = int(re.search(r"Code number (\d+) of your token", page).group(1))
    status, page, _ = post(op, base + "login", username=name, password=password, number=number,
                           code=gw.card[number])
    assert status == 200 and f"Logged in as {name}" in page, page
    return op, jar, re.search(r'name="csrf" value="([0-9a-f]+)"', page).group(1)


def device_passwords(gw, name: str = "jan") -> list:
    return gw.admin.device_passwords(name)


def refusals(gw, name: str = "jan") -> list[str]:
    return [e.detail for e in gw.audit(action="login", limit=60) if e.actor == name and e.outcome == "failed"]


def test_a_disabled_account_cannot_create_device_passwords_with_its_cookie(gw):
    from tests.conftest import cli

    base = f"https://127.0.0.1:{gw.dav_port}/account/"
    op, _, csrf = page_login(gw)
    status, page, _ = post(op, base + "create", label="laptop", csrf=csrf)
    assert status == 200 and "ipdp-" in page
    assert len(device_passwords(gw)) == 1
    # a normal creation is on the record as the person, over the web, from where the person was
    made = next(e for e in gw.audit(action="device-password-create", limit=20))
    assert (made.actor, made.protocol, made.source, made.outcome) == ("jan", "web", "127.0.0.1", "ok"), made

    r = cli("account", "disable", "jan", data_dir=gw.data_dir)
    assert r.returncode == 0, r.stderr
    status, page, headers = post(op, base + "create", label="after disable", csrf=csrf)
    assert status == 401 and "ipdp-" not in page and "Log in" in page, (status, page)
    assert "ip_account=;" in headers.get("Set-Cookie", "") or "Max-Age=0" in headers.get("Set-Cookie", "")
    assert len(device_passwords(gw)) == 1, "a disabled account created a device password"
    assert any("account gone or disabled" in d and "account-page" in d for d in refusals(gw)), refusals(gw)
    assert len([e for e in gw.audit(action="device-password-create", limit=20) if e.outcome == "ok"]) == 1

    # enabled again: a fresh login works; the old cookie was ended by the refusal only in the browser
    r = cli("account", "enable", "jan", data_dir=gw.data_dir)
    assert r.returncode == 0, r.stderr
    op, _, csrf = page_login(gw)
    status, _, _ = post(op, base + "create", label="second", csrf=csrf)
    assert status == 200 and len(device_passwords(gw)) == 2


def test_after_logout_the_cookie_creates_nothing(gw):
    base = f"https://127.0.0.1:{gw.dav_port}/account/"
    op, jar, csrf = page_login(gw)
    cookie = next(c.value for c in jar if c.name == "ip_account")
    status, page, _ = post(op, base + "logout", csrf=csrf)
    assert status == 200 and "Log in" in page, (status, page)
    assert ("logout", "ok") in [(e.action, e.outcome) for e in gw.audit(limit=10) if e.actor == "jan"]
    # the same cookie, replayed (a copy kept by an attacker or another tab): refused, nothing created
    replay, _ = opener()
    data = urllib.parse.urlencode({"label": "replayed", "csrf": csrf}).encode()
    req = urllib.request.Request(base + "create", data=data, method="POST", headers={"Cookie": f"ip_account={cookie}"})
    try:
        with replay.open(req, timeout=30) as r:
            status, page = r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        status, page = e.code, e.read().decode()
    assert status == 401 and "ipdp-" not in page, (status, page)
    assert device_passwords(gw) == []
    assert any("session ended by a logout" in d for d in refusals(gw)), refusals(gw)


def test_the_page_acts_as_the_person_not_the_operator(gw):
    """The page may only touch the logged-in person's own device passwords: revoking another person's id is
    refused (and recorded), and that person's device password keeps working."""
    gw.admin.add_account("piet", "staff", password="a long password for piet")
    piet_id, _ = gw.admin.create_device_password("piet", "piet's laptop")
    base = f"https://127.0.0.1:{gw.dav_port}/account/"
    op, _, csrf = page_login(gw)
    status, page, _ = post(op, base + "revoke", id=str(piet_id), csrf=csrf)
    assert status == 400, (status, page)
    assert [d.revoked for d in device_passwords(gw, "piet")] == [False]
    assert not [e for e in gw.audit(action="device-password-revoke", limit=20) if e.outcome == "ok"]
