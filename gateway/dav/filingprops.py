"""A document's filing as WebDAV properties: its kind, legislation and period (:mod:`gateway.core.filing`), in the
gateway's own namespace ``urn:x-instpages:``::

    <ip:kind xmlns:ip="urn:x-instpages:">monthly-statement</ip:kind>
    <ip:legislation xmlns:ip="urn:x-instpages:">ris</ip:legislation>
    <ip:period xmlns:ip="urn:x-instpages:">2026-10</ip:period>

The values are the codes (``filing.KINDS``, ``filing.LEGISLATIONS``; a period ``YYYY-MM`` or ``YYYY``), as the
REST API gives them. They are live, read-only properties, taken from the document's row (the listing PROPFIND
makes anyway), never stored as dead properties: PROPFIND shows them with ``allprop``, ``propname`` and by name.

An **unclassified** document (no filing rule filed it), and every folder, has *none* of them -- not three empty
ones: ``allprop`` and ``propname`` leave them out and a PROPFIND asking for them by name answers 404 for them,
so a client can tell "not filed" from a value.

The namespace is the gateway's: PROPPATCH of any property in it (set or remove) is refused with 403 and the
precondition ``DAV:cannot-modify-protected-property``, and put on the record by the core
(:meth:`~gateway.core.catalogue.CatalogueViews.refuse_filing_change`).
"""
from __future__ import annotations

from wsgidav.dav_error import (HTTP_FORBIDDEN, HTTP_NOT_FOUND, PRECONDITION_CODE_ProtectedProperty, DAVError,
                               DAVErrorCondition)
from wsgidav.util import etree

from gateway.core.entry import Entry
from gateway.dav.errors import to_dav_error
from storage.errors import GatewayError, PermissionDenied

NS = "urn:x-instpages:"
#: the Clark prefix of every name in the namespace
CLARK = "{" + NS + "}"
KIND, LEGISLATION, PERIOD = CLARK + "kind", CLARK + "legislation", CLARK + "period"
#: in the order of :class:`gateway.core.filing.Filing` (kind, legislation, period)
NAMES = (KIND, LEGISLATION, PERIOD)
#: the prefix the fast PROPFIND declares on its multistatus for the namespace
PREFIX = "ip"


def is_ours(name: str) -> bool:
    return name.startswith(CLARK)


def names(entry: Entry) -> list[str]:
    """The filing properties the entry has: all three, or none (unclassified, folders)."""
    return list(NAMES) if entry.filing else []


def value(entry: Entry, name: str) -> str | None:
    """The property's value, or None when the entry has none (or the name is not one of ours)."""
    if not entry.filing or name not in NAMES:
        return None
    return entry.filing[NAMES.index(name)]


def element(entry: Entry, name: str):
    """The property as wsgidav's element; DAVError 404 when the entry has none."""
    text = value(entry, name)
    if text is None:
        raise DAVError(HTTP_NOT_FOUND)
    el = etree.Element(name)
    el.text = text
    return el


class _Protected(DAVErrorCondition):
    """The precondition, shown by its name in the multistatus' responsedescription (wsgidav writes its repr)."""

    def __init__(self):
        super().__init__(PRECONDITION_CODE_ProtectedProperty)

    def __repr__(self) -> str:
        return "DAV:cannot-modify-protected-property"


def refuse_change(session, vp, name: str) -> DAVError:
    """The answer to a PROPPATCH of ``name`` (in our namespace): the core refuses it, on the record."""
    try:
        session.refuse_filing_change(vp, name)
        exc: GatewayError = PermissionDenied()  # pragma: no cover -- the core always refuses
    except GatewayError as refused:
        exc = refused
    if isinstance(exc, PermissionDenied):
        err = DAVError(HTTP_FORBIDDEN, context_info=exc.message, err_condition=PRECONDITION_CODE_ProtectedProperty)
        err.err_condition = _Protected()  # (wsgidav's constructor takes its own class only)
        return err
    return to_dav_error(exc)
