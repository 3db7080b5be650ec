"""The throttle's arithmetic on a real (SQLite) repository with a hand-driven clock; the behaviour through real
clients is in tests/gateway/test_throttle.py."""
from __future__ import annotations

import pytest

from auth.networks import parse_networks
from auth.throttle import LoginThrottle, source_subject
from storage.errors import Throttled
from storage.db import create_engine
from storage.repository import Repository


class Clock:
    def __init__(self):
        self.now = 1_000_000.0

    def __call__(self):
        return self.now


@pytest.fixture
def throttle(tmp_path):
    repo = Repository(create_engine(f"sqlite:///{tmp_path}/t.db"))
    repo.initialize()
    clock = Clock()
    t = LoginThrottle(repo, window=600, delay_base=0.5, delay_max=2, ban_after=4, ban_seconds=60,
                      source_ban_score=9, score_unknown_name=3, score_known_name=1,
                      exempt_networks=parse_networks("198.18.0.0/15"), clock=clock)
    t.clock_ = clock
    yield t
    repo.engine.dispose()


def refused(t: LoginThrottle, name: str, source: str) -> Throttled | None:
    try:
        t.check(name, source)
    except Throttled as exc:
        return exc
    return None


def test_addresses_are_counted_as_sources_are_written():
    assert source_subject("::ffff:192.0.2.7") == "192.0.2.7"
    assert source_subject("2001:db8:1:2:3:4:5:6") == source_subject("2001:db8:1:2::9") == "2001:db8:1:2::/64"
    assert source_subject("fe80::1%eth0") == "fe80::/64"
    assert source_subject("local") == "local"
    assert LoginThrottle.target_key("2001:db8:1:2::77") == "source:2001:db8:1:2::/64"
    assert LoginThrottle.target_key("192.0.2.7") == "source:192.0.2.7"
    assert LoginThrottle.target_key("Jan.Peeters") == "account:jan.peeters"


def test_a_name_waits_doubling_delays_then_is_banned_without_extension(throttle):
    t, clock = throttle, throttle.clock_
    waits = []
    for _ in range(3):
        f = t.failed("jan", "192.0.2.1")
        waits.append(f.delay)
        exc = refused(t, "JAN", "192.0.2.99")  # the name, from anywhere, in any case
        assert exc is not None and not exc.banned and exc.until == clock.now + f.delay
        clock.now += f.delay
        assert refused(t, "jan", "192.0.2.1") is None
    assert waits == [0.5, 1.0, 2.0]
    f = t.failed("jan", "192.0.2.1")
    assert f.until == clock.now + 60
    for _ in range(3):  # attempts during the ban are refused before anything is counted: nothing grows
        clock.now += 10
        exc = refused(t, "jan", "192.0.2.1")
        assert exc.banned and exc.until == f.until
    assert [(b.kind, b.subject, b.count, b.banned_until) for b in t.bans()] == [("account", "jan", 4, f.until)]
    clock.now = f.until
    assert refused(t, "jan", "192.0.2.1") is None
    assert t.failed("jan", "192.0.2.1").delay == 0.5  # a served ban starts the count again


def test_an_address_scores_unknown_names_and_first_failures_of_known_names(throttle):
    t, clock = throttle, throttle.clock_
    for _ in range(3):  # one known name, again and again: scored once
        t.failed("jan", "192.0.2.1")
        clock.now += 5
    t.failed("piet", "192.0.2.1")
    assert [(b.subject, b.count) for b in t.bans(counting=True) if b.kind == "address"] == [("192.0.2.1", 2)]
    t.failed("nobody-1", "192.0.2.1", unknown_name=True)
    assert refused(t, "eva", "192.0.2.1") is None
    f = t.failed("nobody-2", "192.0.2.1", unknown_name=True)  # 2 + 3 + 3 = 8 < 9
    assert refused(t, "eva", "192.0.2.1") is None
    f = t.failed("", "192.0.2.1")  # an API token that is no token: as an unknown name
    assert f.until == clock.now + 60
    exc = refused(t, "eva", "192.0.2.1")
    assert exc.banned and exc.key == "source:192.0.2.1"
    assert refused(t, "eva", "192.0.2.2") is None
    lifted = t.lift("192.0.2.1")
    assert (lifted.kind, lifted.subject, lifted.count) == ("address", "192.0.2.1", 11)
    assert refused(t, "eva", "192.0.2.1") is None and t.lift("192.0.2.1") is None


def test_exempt_networks_never_score(throttle):
    t = throttle
    for i in range(10):
        t.failed(f"nobody-{i}", "198.18.7.7", unknown_name=True)
    assert refused(t, "eva", "198.18.7.7") is None
    assert not [b for b in t.bans(counting=True) if b.kind == "address"]
    assert len(t.bans(counting=True)) == 10  # the names are still counted
