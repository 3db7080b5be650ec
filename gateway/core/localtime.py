"""The gateway's one local time zone (Brussels) and what it means for a grant's dates.

A grant "until DATE" lasts through that day in Brussels and is stored as the local midnight after it
(:func:`gateway.admin.grants.grant_end`); :func:`last_day` turns that end back into the day people gave and see.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from storage.repository import as_utc

BRUSSELS = ZoneInfo("Europe/Brussels")


def last_day(expires: datetime) -> str:
    """The last day (Brussels, ``YYYY-MM-DD``) of a grant ending at ``expires``: what ``until`` was given as."""
    return (as_utc(expires).astimezone(BRUSSELS) - timedelta(microseconds=1)).date().isoformat()


def minute(moment: datetime | None, none: str = "-") -> str:
    """A stored moment as people read it: Brussels time to the minute (``YYYY-MM-DD HH:MM``); ``none`` for none."""
    return as_utc(moment).astimezone(BRUSSELS).strftime("%Y-%m-%d %H:%M") if moment else none
