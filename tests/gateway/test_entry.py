"""A stored time as the front-ends show it (gateway/core/entry.py): seconds since the epoch, a time without a zone
read as UTC (SQLite returns them so), the same float as ``datetime.timestamp()`` of the aware time."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from gateway.core.entry import epoch


def test_a_time_without_a_zone_is_utc_and_gives_the_timestamp_float():
    naive = datetime(2026, 11, 30, 17, 25, 1, 999_999)
    aware = naive.replace(tzinfo=timezone.utc)
    brussels = aware.astimezone(timezone(timedelta(hours=1)))
    assert epoch(naive) == epoch(aware) == epoch(brussels) == aware.timestamp() == 1796059501.999999
    assert epoch(None) == 0.0
