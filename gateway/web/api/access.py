"""The REST API's ``/institutions/{id}/access``: who has access to a centre's mailbox, and giving (with an end
date, a day in Brussels) or revoking a person's access."""
from __future__ import annotations

import re
from datetime import date, datetime

from gateway.core.localtime import last_day
from gateway.web.api.openapi import DATE
from gateway.web.api.request import ApiError, Handlers, Reply, Request, fields, iso, text

# the OpenAPI document's date pattern: the server accepts exactly what the document describes
_DATE = re.compile(DATE)
_ISO_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _until(expires: datetime | None) -> str | None:
    """The last day (Brussels) of a grant ending at ``expires``: what ``until`` was given as."""
    return None if expires is None else last_day(expires)


class AccessHandlers(Handlers):
    """``/institutions/{id}/access`` and ``/institutions/{id}/access/{account}``."""

    def _access(self, req: Request) -> Reply:
        rows = self._admin(req).access(req.params["id"])
        return Reply(200, [{"account": g.name, "display_name": g.display_name or "", "enabled": bool(g.enabled),
                            "can_remove": bool(g.can_remove), "can_write": bool(g.can_write),
                            "granted_by": g.granted_by or "", "since": iso(g.created_at),
                            "until": _until(g.expires_at), "expires_at": iso(g.expires_at)} for g in rows])

    def _grant(self, req: Request) -> Reply:
        body = req.body
        fields(body, {"can_remove", "until"})
        can_remove = body.get("can_remove", False)
        if not isinstance(can_remove, bool):
            raise ApiError(400, "can_remove must be true or false")
        until = body.get("until")
        if until is not None:
            until = text(until, "until", max_len=10)
            try:
                date.fromisoformat(until if _ISO_DAY.fullmatch(until) else "")
            except ValueError:
                raise ApiError(400, f"until is not a date (YYYY-MM-DD): {until!r}") from None
            if not _DATE.fullmatch(until):  # also keeps the core's date arithmetic far from date.max
                raise ApiError(400, f"until {until} is too far in the future (dates before the year 9000)")
        self._admin(req).grant(req.params["account"], req.params["id"], can_remove=can_remove, until=until)
        return Reply(204)

    def _revoke(self, req: Request) -> Reply:
        self._admin(req).revoke(req.params["account"], req.params["id"])
        return Reply(204)
