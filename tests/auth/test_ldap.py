"""auth.ldap against a real slapd (tests/ldapserver.py): passwords, escaping, groups, TLS, outages, the cache."""
from __future__ import annotations

import logging
import socket
import threading
import time
import uuid

import ldap
import ldap.dn
import ldap.ldapobject
import pytest

from auth.ldap.directory import Directory
from auth.ldap.person import DirectoryUser, centre_access
from auth.ldap.settings import LDAPSettings
from storage.errors import AuthenticationFailed, ConfigError, ServiceUnavailable
from tests.ldapserver import (  # noqa: F401  (slapd: the session fixture)
    ADMIN_GROUP, ALICE_NRN, BOB_NRN, DUPONT_DN, PASSWORDS, REMOVE_GROUP, STAFF_GROUP, free_port, slapd,
)

ALICE_PW = PASSWORDS["alice"]


@pytest.fixture(autouse=True)
def _slapd_up(slapd):
    """A test that stopped or paused the server (and failed before restoring it) does not break the next one."""
    slapd.ensure_running()
    yield
    slapd.ensure_running()


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_settings(slapd, **overrides) -> LDAPSettings:
    values = dict(
        uris=(slapd.uri,), start_tls=True, ca_file=slapd.ca_file,
        bind_dn=slapd.service_dn, bind_password=slapd.service_password,
        user_base=slapd.people, disabled_filter="(employeeType=disabled)", group_base=slapd.groups,
        timeout=2.0,
    )
    values.update(overrides)
    return LDAPSettings(**values)


@pytest.fixture
def directory(slapd):
    d = Directory(make_settings(slapd))
    yield d
    d.close()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def hung_port():
    """A TCP port whose connections are accepted by the kernel and never answered: a hung server."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(64)
    yield s.getsockname()[1]
    s.close()


def same_dn(a: str, b: str) -> bool:
    """DN equality up to escaping style (slapd answers ``\\2C`` where we wrote ``\\,``) and attribute-name case."""
    norm = lambda dn: [[(t.lower(), v) for t, v, _ in rdn] for rdn in ldap.dn.str2dn(dn)]  # noqa: E731
    return norm(a) == norm(b)


def refused(directory, username, password) -> AuthenticationFailed:
    with pytest.raises(AuthenticationFailed) as info:
        directory.authenticate(username, password)
    return info.value


# ------------------------------------------------------------------------------------------ passwords
def test_good_password_returns_the_entry(directory, slapd):
    user = directory.authenticate("alice", ALICE_PW)
    assert user == DirectoryUser(
        dn=slapd.user_dn("alice"), username="alice", display_name="Alice Peeters", email="alice@example.test",
        nrn=ALICE_NRN, groups=tuple(sorted([STAFF_GROUP, REMOVE_GROUP])), enabled=True,
    )
    assert directory.lookup("alice") == user


def test_wrong_password_and_unknown_user_look_the_same(directory):
    wrong = refused(directory, "alice", "not-" + ALICE_PW)
    unknown = refused(directory, "nobody-here", ALICE_PW)
    assert wrong.reason == "wrong password"
    assert unknown.reason == "unknown user"
    assert wrong.message == unknown.message == "authentication failed"
    assert ALICE_PW not in str(wrong) + str(unknown) + wrong.reason + unknown.reason


def test_login_is_case_insensitive_but_reports_the_directory_spelling(directory):
    assert directory.authenticate("ALICE", ALICE_PW).username == "alice"


def test_empty_password_is_refused_without_contacting_ldap(slapd, monkeypatch):
    def no_network(*a, **kw):
        raise AssertionError("LDAP contacted for an empty password")

    monkeypatch.setattr(ldap, "initialize", no_network)
    d = Directory(make_settings(slapd))
    for username in ("alice", "nobody-here"):
        assert refused(d, username, "").reason == "empty password"
    assert d.stats()["service_opened"] == d.stats()["user_opened"] == 0


@pytest.mark.parametrize("password", [ALICE_PW + "\x00", "\x00" + ALICE_PW, ALICE_PW[:-1], ALICE_PW.upper(),
                                      "\udcff" + ALICE_PW, "*"])
def test_odd_passwords_are_wrong_passwords(directory, password):
    assert isinstance(refused(directory, "alice", password), AuthenticationFailed)


def test_password_is_checked_by_ldap_every_time(directory, slapd):
    uid = unique("pwchange")
    slapd.add_user(uid, "first-Password-1")
    try:
        directory.authenticate(uid, "first-Password-1")
        slapd.set_password(uid, "second-Password-2")
        assert refused(directory, uid, "first-Password-1").reason == "wrong password"
        assert directory.authenticate(uid, "second-Password-2").username == uid
    finally:
        slapd.delete(uid)


# ------------------------------------------------------------------------------------------ injection
INJECTIONS = [
    "*", "**", ")(uid=*", "*)(uid=*", "alice)(|(uid=*", "alice)(|(uid=*))", "*)(|(objectClass=*",
    "al*", "*lice", "alice*", "(uid=alice)", "alice)(objectClass=*", "\\00", "alice\\00", "alice\\2a", "\\2a",
    "alice\x00", "\x00", "alicé", "ａｌｉｃｅ", "alice ", " alice", "alice\t", "ali\u200bce",
    "uid=alice,ou=people,dc=example,dc=test", "alice,ou=people", "alice+cn=Alice Peeters", "#alice", "alice\\",
]


@pytest.mark.parametrize("mode", ["search", "direct"])
def test_injection_strings_never_match_another_user(slapd, mode):
    if mode == "search":
        d = Directory(make_settings(slapd))
    else:
        d = Directory(make_settings(slapd, user_base="", user_dn_template=f"uid={{username}},{slapd.people}"))
    try:
        for username in INJECTIONS:
            for password in (ALICE_PW, PASSWORDS["bob"], "x"):
                with pytest.raises(AuthenticationFailed):
                    d.authenticate(username, password)
            assert d.lookup(username) is None, username
        assert d.authenticate("alice", ALICE_PW).username == "alice"  # the same directory still works
    finally:
        d.close()


def test_filters_sent_to_the_server_are_escaped(directory, monkeypatch):
    sent: list[str] = []
    real = ldap.ldapobject.SimpleLDAPObject.search_ext

    def spy(self, base, scope, filterstr=None, *a, **kw):
        sent.append(filterstr)
        return real(self, base, scope, filterstr, *a, **kw)

    monkeypatch.setattr(ldap.ldapobject.SimpleLDAPObject, "search_ext", spy)
    with pytest.raises(AuthenticationFailed):
        directory.authenticate("alice)(|(uid=*", ALICE_PW)
    assert sent == [r"(&(objectClass=inetOrgPerson)(uid=alice\29\28|\28uid=\2a))"]
    sent.clear()
    assert directory.lookup_by_nrn("*)(uid=*") is None
    assert sent == [r"(&(&(objectClass=inetOrgPerson)(uid=*))(serialNumber=\2a\29\28uid=\2a))"]
    sent.clear()
    directory.authenticate("ddupont", PASSWORDS["ddupont"])
    group_filters = [f for f in sent if f.startswith("(member=")]
    assert group_filters == [rf"(member=cn=Dupont\5c2C Dirk,{directory.settings.user_base})"]


@pytest.mark.parametrize("mode", ["search", "direct"])
def test_a_login_full_of_special_characters_is_a_login_like_any_other(slapd, mode):
    uid = unique("Zoë-o(Brien)*,jr+\\x=y;<#>")
    slapd.add_user(uid, "special-Password-1")
    if mode == "search":
        d = Directory(make_settings(slapd))
    else:
        d = Directory(make_settings(slapd, user_base="", user_dn_template=f"uid={{username}},{slapd.people}"))
    try:
        user = d.authenticate(uid, "special-Password-1")
        assert user.username == uid and same_dn(user.dn, slapd.user_dn(uid))
        assert refused(d, uid, "wrong").reason.startswith("wrong password")
        assert refused(d, uid[:-1], "special-Password-1")
    finally:
        d.close()
        slapd.delete(uid)


def test_a_login_matching_several_entries_is_refused(slapd, caplog):
    uid = unique("twin")
    first = slapd.add_user(uid, "twin-Password-1")
    second = slapd.add_user(uid, "twin-Password-1", dn=f"uid={uid},ou=services,{slapd.base_dn}")
    d = Directory(make_settings(slapd, user_base=slapd.base_dn))
    # a filter matching every person (more than the size limit): refused too, never the first entry
    broad = Directory(make_settings(slapd, user_filter="(|(uid={username})(objectClass=inetOrgPerson))"))
    try:
        with caplog.at_level(logging.WARNING, logger="instpages.ldap"):
            assert refused(d, uid, "twin-Password-1").reason.startswith("ambiguous")
        assert "several directory entries" in caplog.text
        assert d.lookup(uid) is None
        assert refused(broad, "alice", ALICE_PW).reason.startswith("ambiguous")
    finally:
        d.close()
        broad.close()
        slapd.delete(first)
        slapd.delete(second)


# ------------------------------------------------------------------------------------------ disabled, deleted, cache
def test_disabled_user_is_refused(directory):
    assert refused(directory, "carol", PASSWORDS["carol"]).reason == "disabled in the directory"
    assert refused(directory, "carol", "wrong").reason == "wrong password"
    carol = directory.lookup("carol")
    assert carol is not None and carol.enabled is False and carol.username == "carol"


def test_disabled_or_deleted_user_loses_access_after_the_cache_ttl(slapd):
    clock = FakeClock()
    d = Directory(make_settings(slapd, cache_seconds=60), clock=clock)
    uid = unique("dave")
    password = "dave-Password-1"
    slapd.add_user(uid, password, cn="Dave Test")
    try:
        assert d.authenticate(uid, password).enabled
        assert d.lookup(uid).centre_access() == {}

        slapd.set_disabled(uid, True)
        slapd.add_member(STAFF_GROUP, slapd.user_dn(uid))
        clock.advance(59)
        cached = d.lookup(uid)
        assert cached.enabled and cached.groups == ()  # trusted for cache_seconds
        clock.advance(2)
        fresh = d.lookup(uid)
        assert fresh.enabled is False and fresh.groups == (STAFF_GROUP,)
        assert refused(d, uid, password).reason == "disabled in the directory"  # a login always asks LDAP

        slapd.set_disabled(uid, False)
        assert d.authenticate(uid, password).enabled  # and refreshes the cache
        assert d.lookup(uid).enabled

        slapd.delete(uid)
        clock.advance(30)
        assert d.lookup(uid) is not None  # still cached
        clock.advance(31)
        assert d.lookup(uid) is None
        assert refused(d, uid, password).reason == "unknown user"
    finally:
        d.close()
        try:
            slapd.delete(uid)
        except ldap.NO_SUCH_OBJECT:
            pass


# ------------------------------------------------------------------------------------------ groups, nrn
def test_groups_map_to_centre_access(directory, slapd):
    alice = directory.authenticate("alice", ALICE_PW)
    assert alice.centre_access() == {"0212345668": "staff", "0207123407": "remove"}
    assert directory.centre_access(alice) == alice.centre_access()
    dupont = directory.authenticate("ddupont", PASSWORDS["ddupont"])  # a comma in the DN
    assert same_dn(dupont.dn, DUPONT_DN) and not same_dn(dupont.dn, slapd.user_dn("ddupont"))
    assert dupont.display_name == "Dupont, Dirk"
    assert dupont.groups == (ADMIN_GROUP,)
    assert dupont.centre_access() == {"0212345668": "admin"}
    bob = directory.authenticate("bob", PASSWORDS["bob"])
    assert bob.groups and bob.centre_access() == {}  # cn=unrelated maps to nothing


def test_centre_access_pattern_rules():
    groups = [
        "CN=OCMW-0212345668-STAFF,ou=groups,dc=x", "cn=ocmw-0212345668-admin,ou=groups,dc=x",
        "cn=ocmw-0212345668-remove,ou=groups,dc=x", "cn=ocmw-0207123407-staff,ou=groups,dc=x",
        "cn=ocmw-02071234-staff,ou=groups,dc=x", "cn=ocmw-0207123407-reader,ou=groups,dc=x",
        "cn=xocmw-0311111111-admin,ou=groups,dc=x", "cn=ocmw-0311111111-staff-old,ou=groups,dc=x",
    ]
    assert centre_access(groups, LDAPSettings.group_pattern) == {"0212345668": "admin", "0207123407": "staff"}
    custom = r"^cn=(?P<institution>\d{10})_(?P<access>staff|admin),"
    assert centre_access(["cn=0212345668_admin,o=x"], custom) == {"0212345668": "admin"}


def test_lookup_by_nrn(directory, slapd, caplog):
    alice = directory.lookup_by_nrn(ALICE_NRN)
    assert alice is not None and alice.username == "alice" and alice.nrn == ALICE_NRN
    assert directory.lookup_by_nrn(BOB_NRN).username == "bob"
    for nrn in ("00000000000", "*", "8507300332*", "*3328", f"{ALICE_NRN})(uid=*", "", f"{ALICE_NRN}\x00"):
        assert directory.lookup_by_nrn(nrn) is None, nrn
    uid = unique("nrntwin")
    slapd.add_user(uid, "twin-Password-1", nrn=BOB_NRN)
    d = Directory(make_settings(slapd))
    try:
        with caplog.at_level(logging.WARNING, logger="instpages.ldap"):
            assert d.lookup_by_nrn(BOB_NRN) is None  # two people claim it: nobody gets it
        assert "national register number" in caplog.text
    finally:
        d.close()
        slapd.delete(uid)


# ------------------------------------------------------------------------------------------ TLS
@pytest.mark.parametrize("tls", ["ldaps", "starttls"])
def test_tls_with_the_ca_file(slapd, tls):
    uri = slapd.ldaps_uri if tls == "ldaps" else slapd.uri
    with Directory(make_settings(slapd, uris=(uri,), start_tls=True)) as d:
        assert d.authenticate("alice", ALICE_PW).username == "alice"


@pytest.mark.parametrize("tls", ["ldaps", "starttls"])
def test_untrusted_server_certificate_is_unavailable(slapd, tls, caplog):
    uri = slapd.ldaps_uri if tls == "ldaps" else slapd.uri
    with Directory(make_settings(slapd, uris=(uri,), ca_file=slapd.untrusted_ca_file)) as d:
        with caplog.at_level(logging.WARNING, logger="instpages.ldap"):
            with pytest.raises(ServiceUnavailable) as info:
                d.authenticate("alice", ALICE_PW)
        assert info.value.message == "authentication service unavailable"
        assert uri in caplog.text
        assert d.stats()["service_opened"] == d.stats()["user_opened"] == 0


def test_starttls_is_really_used(slapd, monkeypatch):
    calls = []
    real = ldap.ldapobject.SimpleLDAPObject.start_tls_s
    monkeypatch.setattr(ldap.ldapobject.SimpleLDAPObject, "start_tls_s",
                        lambda self: (calls.append(1), real(self))[1])
    with Directory(make_settings(slapd)) as d:
        d.authenticate("alice", ALICE_PW)
    assert len(calls) == 2  # the service connection and the user's bind connection


# ------------------------------------------------------------------------------------------ outages
def test_server_stopped_then_restarted(slapd, caplog):
    d = Directory(make_settings(slapd, timeout=1.0))
    try:
        d.authenticate("alice", ALICE_PW)
        assert d.stats()["idle"] == 1
        slapd.stop()
        with caplog.at_level(logging.DEBUG, logger="instpages.ldap"):
            started = time.monotonic()
            with pytest.raises(ServiceUnavailable) as info:
                d.authenticate("alice", ALICE_PW)
            assert time.monotonic() - started < 1.5
            with pytest.raises(ServiceUnavailable):
                d.lookup("bob")
        assert info.value.message == "authentication service unavailable"
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert warnings and any("authentication service unavailable" in r.getMessage() for r in warnings)
        assert not any(secret in r.getMessage() for r in caplog.records
                       for secret in (ALICE_PW, slapd.service_password))

        slapd.start()
        assert d.authenticate("alice", ALICE_PW).username == "alice"
        assert d.lookup("bob").username == "bob"

        # a restart while connections sit in the pool: the stale one is replaced, no login fails
        opened = d.stats()["service_opened"]
        slapd.stop()
        slapd.start()
        assert d.authenticate("alice", ALICE_PW).username == "alice"
        assert d.stats()["service_opened"] == opened + 1
    finally:
        d.close()


@pytest.mark.parametrize("tls", ["ldaps", "starttls", "plain"])
def test_hung_server_gives_up_within_the_timeout(slapd, tls):
    """slapd stopped with SIGSTOP: connections are accepted, nothing is answered (TLS handshake included)."""
    uri = slapd.ldaps_uri if tls == "ldaps" else slapd.uri
    d = Directory(make_settings(slapd, uris=(uri,), start_tls=(tls != "plain"), timeout=1.0))
    warm = Directory(make_settings(slapd, uris=(uri,), start_tls=(tls != "plain"), timeout=1.0))
    try:
        warm.authenticate("alice", ALICE_PW)  # a pooled connection, then the server hangs
        slapd.pause()
        for directory in (d, warm):
            started = time.monotonic()
            with pytest.raises(ServiceUnavailable):
                directory.authenticate("alice", ALICE_PW)
            assert time.monotonic() - started < 2.0
        if tls == "ldaps":
            # libldap applies neither OPT_NETWORK_TIMEOUT nor OPT_TIMEOUT to the TLS handshake: the attempt the
            # login stopped waiting for is still blocked, on its helper thread, until the server answers
            assert d.stats()["stuck"] == 1
        else:
            # every step of a plain or StartTLS connection gives up by itself, even while the server hangs
            deadline = time.monotonic() + 2
            while d.stats()["stuck"] and time.monotonic() < deadline:
                time.sleep(0.02)
            assert d.stats()["stuck"] == 0
        slapd.resume()
        assert d.authenticate("alice", ALICE_PW).username == "alice"
        assert warm.authenticate("alice", ALICE_PW).username == "alice"
        deadline = time.monotonic() + 5
        while d.stats()["stuck"] and time.monotonic() < deadline:  # abandoned attempts finish and clean up
            time.sleep(0.02)
        assert d.stats()["stuck"] == 0
    finally:
        slapd.ensure_running()
        d.close()
        warm.close()


def test_failover_dead_first_uri(slapd, caplog):
    dead = f"ldap://127.0.0.1:{free_port()}"
    with Directory(make_settings(slapd, uris=(dead, slapd.uri))) as d:
        with caplog.at_level(logging.WARNING, logger="instpages.ldap"):
            started = time.monotonic()
            assert d.authenticate("alice", ALICE_PW).username == "alice"
            assert time.monotonic() - started < 1.0
        assert dead in caplog.text
        assert d.lookup_by_nrn(ALICE_NRN).username == "alice"


def test_failover_hung_first_uri(slapd, hung_port):
    hung = f"ldap://127.0.0.1:{hung_port}"
    with Directory(make_settings(slapd, uris=(hung, slapd.uri), timeout=1.0)) as d:
        started = time.monotonic()
        assert d.authenticate("alice", ALICE_PW).username == "alice"
        assert time.monotonic() - started < 2.5  # one timeout on the hung server, then the live one
        started = time.monotonic()
        assert d.authenticate("bob", PASSWORDS["bob"]).username == "bob"
        assert time.monotonic() - started < 0.5  # the hung URI is now tried last


def test_all_uris_dead(slapd, hung_port):
    uris = (f"ldap://127.0.0.1:{free_port()}", f"ldaps://127.0.0.1:{hung_port}")
    with Directory(make_settings(slapd, uris=uris, timeout=0.5)) as d:
        started = time.monotonic()
        with pytest.raises(ServiceUnavailable):
            d.authenticate("alice", ALICE_PW)
        with pytest.raises(ServiceUnavailable):
            d.lookup_by_nrn(ALICE_NRN)
        assert time.monotonic() - started < 2.5


def test_wrong_service_password_is_unavailable_not_a_login(slapd, caplog):
    bad = "Not-The-Service-Secret-7f3a"
    with Directory(make_settings(slapd, bind_password=bad)) as d:
        with caplog.at_level(logging.DEBUG):
            with pytest.raises(ServiceUnavailable):
                d.authenticate("alice", ALICE_PW)
        assert "INVALID_CREDENTIALS" in caplog.text
        assert ALICE_PW not in caplog.text and bad not in caplog.text


# ------------------------------------------------------------------------------------------ direct bind
def test_direct_bind_with_a_dn_template(slapd):
    template = f"uid={{username}},{slapd.people}"
    with Directory(make_settings(slapd, bind_dn="", bind_password="", user_base="",
                                 user_dn_template=template)) as d:
        alice = d.authenticate("alice", ALICE_PW)
        assert alice.dn == slapd.user_dn("alice") and alice.nrn == ALICE_NRN
        assert alice.centre_access() == {"0212345668": "staff", "0207123407": "remove"}
        assert refused(d, "alice", "wrong").reason == "wrong password or unknown user"
        assert refused(d, "nobody-here", "wrong").reason == "wrong password or unknown user"
        assert refused(d, "carol", PASSWORDS["carol"]).reason == "disabled in the directory"
        assert d.stats()["service_opened"] == 0  # everything read as the user
    with Directory(make_settings(slapd, user_base="", user_dn_template=template)) as d:
        assert d.lookup("bob").username == "bob"  # lookups need the service account
        assert d.lookup("nobody-here") is None
        assert d.lookup_by_nrn(ALICE_NRN).username == "alice"


# ------------------------------------------------------------------------------------------ pool, config
def test_pool_is_bounded_and_thread_safe(slapd):
    with Directory(make_settings(slapd, pool_size=2)) as d:
        errors: list[BaseException] = []
        names = ["alice", "bob", "ddupont"]

        def worker(i):
            try:
                for j in range(4):
                    name = names[(i + j) % 3]
                    assert d.authenticate(name, PASSWORDS[name]).username == name
                    d.invalidate()
                    assert d.lookup(name).username == name
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert not errors, errors[:3]
        stats = d.stats()
        assert stats["service_opened"] <= 2 and stats["open"] <= 2 and stats["idle"] == stats["open"]
        assert stats["user_opened"] == 40


def test_settings_never_show_the_service_password(slapd):
    s = make_settings(slapd)
    assert slapd.service_password not in repr(s)


@pytest.mark.parametrize("overrides", [
    {"uris": ()}, {"uris": ("http://127.0.0.1:389",)}, {"uris": "ldap://127.0.0.1:389"},
    {"user_base": ""}, {"user_filter": "(uid=alice)"}, {"group_filter": "(member=x)"},
    {"group_pattern": "(unclosed"}, {"timeout": 0},
])
def test_bad_settings_are_config_errors(slapd, overrides):
    with pytest.raises(ConfigError):
        Directory(make_settings(slapd, **overrides))
