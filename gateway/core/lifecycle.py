"""The switch-over lifecycle of a centre, as a pure function.

    paper --request--> requested --activate--> active --suspend--> suspended --activate--> active

A centre asks (request); the security cell checks that the signed forms arrived and activates it, for all three
legislations at once (activate); it can suspend an active centre and activate it again. Nothing else: a centre
cannot skip its request, and nothing goes back to paper. Uploads and reads follow the status (auth.policy).
"""
from __future__ import annotations

from storage.errors import IllegalTransition

VERBS = ("request", "activate", "suspend")

_TRANSITIONS: dict[str, tuple[frozenset[str], str]] = {
    "request": (frozenset({"paper"}), "requested"),
    "activate": (frozenset({"requested", "suspended"}), "active"),
    "suspend": (frozenset({"active"}), "suspended"),
}

_WHY = {
    ("request", "requested"): "its request is already recorded",
    ("request", "active"): "it is already active",
    ("request", "suspended"): "it is suspended; activate it again instead",
    ("activate", "paper"): "it has not asked to switch over yet; record its request first",
    ("activate", "active"): "it is already active",
    ("suspend", "paper"): "only an active centre can be suspended",
    ("suspend", "requested"): "only an active centre can be suspended",
    ("suspend", "suspended"): "it is already suspended",
}


def next_status(current: str, verb: str) -> str:
    """The status ``verb`` leads to from ``current``; IllegalTransition (with the reason) otherwise."""
    if verb not in _TRANSITIONS:
        raise IllegalTransition(f"unknown transition {verb!r} (one of {', '.join(VERBS)})")
    sources, target = _TRANSITIONS[verb]
    if current not in sources:
        raise IllegalTransition(f"cannot {verb}: the centre is {current}; "
                                + _WHY.get((verb, current), "not allowed from this status"))
    return target


def allowed_verbs(current: str) -> list[str]:
    return [v for v in VERBS if current in _TRANSITIONS[v][0]]
