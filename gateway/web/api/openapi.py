"""The OpenAPI 3.1 document of the REST API (served at ``GET /api/openapi.json``; see :mod:`gateway.web.api`).

The patterns below are also what the API itself checks request fields against, so that the document and the
server accept exactly the same requests.
"""
from __future__ import annotations

import copy

from gateway.core.catalogue import MAX_ROWS, UNCLASSIFIED
from gateway.core.filing import KINDS, LEGISLATIONS

#: no control characters (the record and PostgreSQL keep none)
TEXT = r"^[^\x00-\x1f\x7f]*$"
#: whitespace as Python's str.split() and ECMAScript's \s see it, together
_SPACE = r"\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
#: a reference says something: at least one character that is neither a control character nor whitespace
REFERENCE = rf"^[^\x00-\x1f\x7f]*[^\x00-\x1f\x7f{_SPACE}][^\x00-\x1f\x7f]*$"
#: the core's e-mail address rule (gateway.admin.centres._EMAIL), anchored the same way in every regex dialect
EMAIL = (r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
         r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$")
ACCOUNT = r"^[A-Za-z0-9._@-]{1,64}$"
CENTRE_ID = r"^[01][0-9]{9}$"
_C, _N = r"[^\x00-\x1f\x7f/]", r"[^\x00-\x1f\x7f/.]"
_COMPONENT = rf"(?:{_N}{_C}*|\.{_N}{_C}*|\.\.{_C}+)"
#: a document's path inside its mailbox: components separated by "/", none empty, "." or ".."
DOCUMENT_PATH = rf"^{_COMPONENT}(?:/{_COMPONENT})*$"
#: YYYY-MM-DD before the year 9000
DATE = r"^[0-8][0-9]{3}-[0-9]{2}-[0-9]{2}$"
#: an RFC 3339 date-time with its offset (years 1000 to 2999, no leap second)
SINCE = (r"^[12][0-9]{3}-[0-9]{2}-[0-9]{2}[Tt]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?"
         r"([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$")
#: a period filter: a year, or a year and month
PERIOD = r"^[0-9]{4}(-(0[1-9]|1[0-2]))?$"

STATUS_ENUM = ["paper", "requested", "active", "suspended"]


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(properties: dict, required: list[str] | None = None, **extra) -> dict:
    return {"type": "object", "properties": properties, "required": list(properties) if required is None
            else required, "additionalProperties": False, **extra}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_STR = {"type": "string"}
_TIME = {"type": "string", "format": "date-time"}
_TIME_OR_NULL = {"type": ["string", "null"], "format": "date-time"}

_NAME_OR_NULL = {"type": ["string", "null"]}
#: a document's receipt: delivered when and by whom, first fetched when, by whom and how, archived when and by whom
_RECEIPT = {
    "id": {"type": "integer", "minimum": 1}, "path": {"type": "string", "description": "inside the mailbox"},
    "name": _STR, "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
    "delivered_at": _TIME_OR_NULL, "sender": {"type": "string", "description": "the account that delivered it"},
    "first_fetched_at": _TIME_OR_NULL, "first_fetched_by": _NAME_OR_NULL,
    "first_fetched_protocol": {"type": ["string", "null"], "examples": ["sftp", "webdav", "web"]},
    "archived_at": _TIME_OR_NULL, "archived_by": _NAME_OR_NULL,
}

SCHEMAS = {
    "Error": _obj({"error": {"type": "string", "description": "what went wrong, in words"}}),
    "Challenge": _obj({"number": {"type": "integer", "minimum": 1,
                                  "description": "the number of the token card code to give"}}),
    "LoginRequest": _obj({
        "username": {"type": "string", "minLength": 1, "maxLength": 64, "pattern": TEXT},
        "password": {"type": "string", "minLength": 1, "maxLength": 1024, "pattern": TEXT},
        "number": {"type": "integer", "minimum": 1, "maximum": 1000,
                   "description": "the code number GET /session/challenge asked (not with an eID certificate)"},
        "code": {"type": "string", "maxLength": 64, "pattern": TEXT,
                 "description": "the token card code with that number (not with an eID certificate)"},
    }, required=["username", "password"]),
    "Session": _obj({
        "token": {"type": "string", "description": "send as Authorization: Bearer <token>"},
        "expires_at": _TIME, "account": _STR,
        "second_factor": {"type": "string", "enum": ["token", "eid"]},
    }),
    "Me": _obj({
        "name": _STR,
        "role": {"type": "string", "enum": ["staff", "local-admin", "security-cell", "uploader"]},
        "administers": {"type": "array", "items": _STR,
                        "description": "centres this person administers (as local administrator or acting "
                                       "security consultant)"},
        "authenticated_by": {"type": "string", "enum": ["session", "cookie", "api-token"]},
    }),
    "Token": _obj({"id": {"type": "integer"}, "label": _STR, "created_at": _TIME, "expires_at": _TIME,
                   "revoked": {"type": "boolean"}, "last_used_at": _TIME_OR_NULL}),
    "TokenRequest": _obj({
        "label": {"type": "string", "maxLength": 100, "pattern": TEXT},
        "days": {"type": "integer", "minimum": 1, "maximum": 365, "description": "lifetime (default 90 days)"},
    }, required=[]),
    "NewToken": _obj({"id": {"type": "integer"},
                      "token": {"type": "string", "description": "the secret, shown once: keep it safe"},
                      "label": _STR, "expires_at": _TIME_OR_NULL}),
    "Institution": _obj({"id": _STR, "name": _STR, "status": {"type": "string", "enum": STATUS_ENUM},
                         "language": _STR, "status_changed_at": _TIME, "status_changed_by": _STR}),
    "HistoryEntry": _obj({"from": _STR, "to": _STR, "actor": _STR, "reference": _STR, "at": _TIME}),
    "OutboxEntry": _obj({"id": {"type": "integer"}, "kind": _STR, "created_at": _TIME, "sent_at": _TIME_OR_NULL,
                         "attempts": {"type": "integer"}, "last_error": _STR}),
    "Overview": _obj({
        "id": _STR, "name": _STR, "status": {"type": "string", "enum": STATUS_ENUM}, "status_reference": _STR,
        "status_changed_at": _TIME, "status_changed_by": _STR, "language": _STR,
        "contacts": {"type": "array", "items": _STR},
        "local_admins": {"type": "array", "items": _STR},
        "security_consultant": {"type": ["string", "null"]},
        "acting_consultant": {"type": "boolean",
                              "description": "the security consultant acts as local administrator (none designated)"},
        "history": {"type": "array", "items": _ref("HistoryEntry")},
        "outbox": {"type": "array", "items": _ref("OutboxEntry")},
    }),
    "TransitionRequest": _obj({"reference": {
        "type": "string", "minLength": 1, "maxLength": 500, "pattern": REFERENCE,
        "description": "e.g. the date and number of the centre's request, or of the signed forms received"}}),
    "TransitionResult": _obj({"from": _STR, "to": _STR, "notice_queued": {"type": "boolean"},
                              "outbox_id": {"type": ["integer", "null"]}}),
    "ConsultantRequest": _obj({"account": {"type": ["string", "null"], "pattern": ACCOUNT,
                                           "description": "a person's account, or null to remove"}}),
    "ContactsRequest": _obj({
        "contacts": {"type": "array", "maxItems": 20,
                     "items": {"type": "string", "maxLength": 254, "pattern": EMAIL}},
        "language": {"type": "string", "enum": ["nl", "fr"]},
    }, required=[], minProperties=1),
    "Access": _obj({"account": _STR, "display_name": _STR, "enabled": {"type": "boolean"},
                    "can_remove": {"type": "boolean"},
                    "can_write": {"type": "boolean", "description": "set by the operator only (test accounts)"},
                    "granted_by": _STR, "since": _TIME,
                    "until": {"type": ["string", "null"], "format": "date"}, "expires_at": _TIME_OR_NULL}),
    "GrantRequest": _obj({
        "can_remove": {"type": "boolean", "default": False,
                       "description": "may also remove (archive) documents from the mailbox"},
        "until": {"type": ["string", "null"], "format": "date", "pattern": DATE,
                  "description": "the last day of access (Brussels time), today or later; null: until revoked"},
    }, required=[]),
    "ArchivedDocument": _obj({"id": {"type": "integer"}, "path": _STR, "size": {"type": "integer"},
                              "delivered_at": _TIME_OR_NULL, "archived_at": _TIME_OR_NULL, "archived_by": _STR}),
    "RestoreRequest": _obj({"path": {"type": "string", "maxLength": 1000, "pattern": DOCUMENT_PATH,
                                     "description": "the document's path inside the mailbox",
                                     "examples": ["2026-11/maandstaat.pdf"]}}),
    "Restored": _obj({"document_id": {"type": "integer"}}),
    "Receipt": _obj(_RECEIPT),
    "Document": _obj({
        **_RECEIPT, "size": {"type": "integer", "minimum": 0},
        "kind": {"type": ["string", "null"], "enum": [*KINDS, None],
                 "description": "the kind of document, by the filing rules; null: unclassified"},
        "legislation": {"type": ["string", "null"], "enum": [*LEGISLATIONS, None]},
        "period": {"type": ["string", "null"], "description": "YYYY or YYYY-MM; null: unclassified",
                   "examples": ["2026-10"]},
        "archived": {"type": "boolean", "description": "removed from the mailbox (kept, restorable)"},
    }),
    "AuditEvent": _obj({"id": {"type": "integer"}, "ts": _TIME, "actor": _STR, "protocol": _STR, "action": _STR,
                        "outcome": _STR, "path": _STR, "detail": _STR}),
    "Queued": _obj({"outbox_id": {"type": "integer"}}),
}

_ERROR = {"content": {"application/json": {"schema": _ref("Error")}}}
RESPONSES = {
    "BadRequest": {"description": "malformed request: the message says what", **_ERROR},
    "Unauthorized": {"description": "no valid session or API token", **_ERROR},
    "Forbidden": {"description": "the caller may not do this (or a cookie without its X-CSRF-Token)", **_ERROR},
    "NotFound": {"description": "no such centre (also for a centre the caller does not administer, and for a "
                                "malformed id: always the same answer), account, document or token", **_ERROR},
    "Conflict": {"description": "does not fit the current state (e.g. an illegal transition)", **_ERROR},
    "TooLarge": {"description": "the body exceeds 64 KiB", **_ERROR},
    "UnsupportedMediaType": {"description": "the body is not application/json", **_ERROR},
    "Unavailable": {"description": "a service the gateway needs (the directory) does not answer", **_ERROR},
    "TooManyAttempts": {
        "description": "a login (or an API token) refused at once, nothing looked at: the account name is in its "
                       "delay after failed logins, or it or the source address is banned; try again after "
                       "Retry-After seconds",
        "headers": {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer", "minimum": 1}}},
        **_ERROR},
}

PARAMETERS = {
    "CentreId": {"name": "id", "in": "path", "required": True,
                 "description": "the centre's enterprise number (ten digits)",
                 "schema": {"type": "string", "pattern": CENTRE_ID}, "example": "0212345668"},
    "Account": {"name": "account", "in": "path", "required": True, "description": "a person's account name",
                "schema": {"type": "string", "pattern": ACCOUNT}},
    "TokenId": {"name": "token_id", "in": "path", "required": True,
                "schema": {"type": "integer", "minimum": 1}},
    "Uploader": {"name": "account", "in": "path", "required": True,
                 "description": "an uploader (POD MI machine) account name", "schema": {"type": "string",
                                                                                     "pattern": ACCOUNT}},
    "DocumentId": {"name": "doc", "in": "path", "required": True,
                   "description": "a document's id (as the catalogue gives it)",
                   "schema": {"type": "integer", "minimum": 1}, "example": 1},
}

_FILTERS = [
    {"name": "kind", "in": "query", "required": False,
     "schema": {"type": "string", "enum": [*KINDS, UNCLASSIFIED]}},
    {"name": "legislation", "in": "query", "required": False, "schema": {"type": "string", "enum": [*LEGISLATIONS]}},
    {"name": "period", "in": "query", "required": False, "description": "a year (2026) or a month (2026-10)",
     "schema": {"type": "string", "pattern": PERIOD}},
    {"name": "since", "in": "query", "required": False, "description": "delivered after this moment",
     "schema": {"type": "string", "format": "date-time", "pattern": SINCE}},
    {"name": "archived", "in": "query", "required": False,
     "description": "true: the archived documents instead of the mailbox's",
     "schema": {"type": "string", "enum": ["true", "false"], "default": "false"}},
    {"name": "limit", "in": "query", "required": False,
     "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ROWS, "default": 100}},
    {"name": "offset", "in": "query", "required": False,
     "schema": {"type": "integer", "minimum": 0, "maximum": 999999999, "default": 0}},
]


def _errors(*codes: int, auth: bool = True, body: bool = False) -> dict:
    names = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 409: "Conflict",
             413: "TooLarge", 415: "UnsupportedMediaType", 429: "TooManyAttempts", 503: "Unavailable"}
    wanted = set(codes) | ({401, 429, 503} if auth else set()) | ({400, 413, 415} if body else set())
    return {str(c): {"$ref": f"#/components/responses/{names[c]}"} for c in sorted(wanted)}


def _op(op_id: str, summary: str, ok: dict, *, tags: list[str], errors: tuple[int, ...] = (),
        body: str | None = None, body_required: bool = True, public: bool = False, params: list[str] = (),
        query: list[dict] = (), description: str = "") -> dict:
    out: dict = {"operationId": op_id, "summary": summary, "tags": tags}
    if description:
        out["description"] = description
    parameters = [{"$ref": f"#/components/parameters/{p}"} for p in params] + list(query)
    if parameters:
        out["parameters"] = parameters
    if body:
        out["requestBody"] = {"required": body_required, "content": {"application/json": {"schema": _ref(body)}}}
    responses = dict(ok)
    responses.update(_errors(*errors, auth=not public, body=bool(body)))
    out["responses"] = responses
    if public:
        out["security"] = []
    return out


_NO_CONTENT = {"204": {"description": "done"}}
_CENTRE = ["CentreId"]
_CENTRE_ERRORS = (403, 404)

PATHS = {
    "/openapi.json": {"get": _op("openapi", "This document", {"200": _json({"type": "object"}, "the document")},
                                 tags=["meta"], public=True)},
    "/session/challenge": {"get": _op(
        "sessionChallenge", "Which token card code to give at login",
        {"200": _json(_ref("Challenge"), "the code number")}, tags=["session"], public=True, errors=(400,),
        query=[{"name": "username", "in": "query", "required": True,
                "schema": {"type": "string", "minLength": 1, "maxLength": 64, "pattern": TEXT}}],
        description="The same number is asked until it is answered; an unknown name gets a stable made-up one.")},
    "/session": {
        "post": _op("login", "Strong login: password and token card code (or password and eID certificate)",
                    {"201": _json(_ref("Session"), "a session token")}, tags=["session"], public=True,
                    errors=(401, 429, 503), body="LoginRequest",
                    description="Any failure answers 401 {\"error\": \"authentication failed\"} at once, whatever "
                                "was wrong, in the same time. After a failure the account name waits a moment "
                                "(doubling per failure) and repeated failures ban it; many names from one "
                                "address ban the address. Meanwhile logins are refused at once with 429 and "
                                "Retry-After, without looking at the credentials."),
        "delete": _op("logout", "Log out (forget the session token: it is stateless and short-lived)",
                      _NO_CONTENT, tags=["session"], public=True),
    },
    "/me": {"get": _op("me", "Who the caller is", {"200": _json(_ref("Me"), "the caller")}, tags=["session"])},
    "/tokens": {
        "get": _op("listTokens", "The caller's API tokens",
                   {"200": _json({"type": "array", "items": _ref("Token")}, "tokens")}, tags=["tokens"]),
        "post": _op("createToken", "Create an API token for scripts (only with a session from a strong login)",
                    {"201": _json(_ref("NewToken"), "the token, shown once")}, tags=["tokens"], errors=(403,),
                    body="TokenRequest", body_required=False),
    },
    "/tokens/{token_id}": {"delete": _op("revokeToken", "Revoke one of the caller's API tokens", _NO_CONTENT,
                                         tags=["tokens"], errors=(404,), params=["TokenId"])},
    "/uploaders/{account}/tokens": {
        "get": _op("listUploaderTokens", "An uploader's API tokens (security cell)",
                   {"200": _json({"type": "array", "items": _ref("Token")}, "tokens")}, tags=["tokens"],
                   errors=(403, 404), params=["Uploader"]),
        "post": _op("createUploaderToken", "Issue an API token to an uploader, with which it reads the receipts of "
                                           "what it sent (security cell, only with a session from a strong login)",
                    {"201": _json(_ref("NewToken"), "the token, shown once")}, tags=["tokens"], errors=(403, 404),
                    params=["Uploader"], body="TokenRequest", body_required=False),
    },
    "/uploaders/{account}/tokens/{token_id}": {"delete": _op(
        "revokeUploaderToken", "Revoke an uploader's API token (security cell)", _NO_CONTENT, tags=["tokens"],
        errors=(403, 404), params=["Uploader", "TokenId"])},
    "/institutions": {"get": _op(
        "listInstitutions", "Centres the caller administers (all of them for the security cell)",
        {"200": _json({"type": "array", "items": _ref("Institution")}, "centres")}, tags=["centres"],
        errors=(400, 403),
        query=[{"name": "status", "in": "query", "required": False,
                "schema": {"type": "string", "enum": STATUS_ENUM}}])},
    "/institutions/{id}": {"get": _op(
        "getInstitution", "One centre: status and its history, administrators, contacts, outgoing mail",
        {"200": _json(_ref("Overview"), "the centre")}, tags=["centres"], errors=_CENTRE_ERRORS, params=_CENTRE)},
    "/institutions/{id}/local-admins/{account}": {
        "put": _op("setLocalAdmin", "Designate a local administrator (security cell)", _NO_CONTENT,
                   tags=["delegation"], errors=(*_CENTRE_ERRORS, 409), params=["CentreId", "Account"]),
        "delete": _op("unsetLocalAdmin", "Remove a local administrator's designation (security cell)", _NO_CONTENT,
                      tags=["delegation"], errors=_CENTRE_ERRORS, params=["CentreId", "Account"]),
    },
    "/institutions/{id}/security-consultant": {"put": _op(
        "setSecurityConsultant", "Set or remove the centre's security consultant (security cell)", _NO_CONTENT,
        tags=["delegation"], errors=_CENTRE_ERRORS, params=_CENTRE, body="ConsultantRequest")},
    "/institutions/{id}/contacts": {"put": _op(
        "setContacts", "Notification addresses and language", _NO_CONTENT, tags=["centres"],
        errors=_CENTRE_ERRORS, params=_CENTRE, body="ContactsRequest")},
    "/institutions/{id}/access": {"get": _op(
        "listAccess", "Who has access to the centre's mailbox",
        {"200": _json({"type": "array", "items": _ref("Access")}, "grants")}, tags=["access"],
        errors=_CENTRE_ERRORS, params=_CENTRE)},
    "/institutions/{id}/access/{account}": {
        "put": _op("grant", "Grant (or change) a person's access (local administrator)", _NO_CONTENT,
                   tags=["access"], errors=_CENTRE_ERRORS, params=["CentreId", "Account"], body="GrantRequest",
                   body_required=False),
        "delete": _op("revoke", "Revoke a person's access (local administrator)", _NO_CONTENT, tags=["access"],
                      errors=_CENTRE_ERRORS, params=["CentreId", "Account"]),
    },
    "/institutions/{id}/archived": {"get": _op(
        "listArchived", "Archived documents (names and dates), restorable (local administrator)",
        {"200": _json({"type": "array", "items": _ref("ArchivedDocument")}, "archived documents")},
        tags=["documents"], errors=_CENTRE_ERRORS, params=_CENTRE)},
    "/institutions/{id}/restore": {"post": _op(
        "restore", "Restore an archived document into the mailbox (local administrator)",
        {"200": _json(_ref("Restored"), "restored")}, tags=["documents"], errors=(*_CENTRE_ERRORS, 409),
        params=_CENTRE, body="RestoreRequest")},
    "/institutions/{id}/documents": {"get": _op(
        "listDocuments", "The centre's documents, newest first, filed by kind, legislation and period, each with "
                         "its receipt (names and dates, never content)",
        {"200": _json({"type": "array", "items": _ref("Document")}, "documents")}, tags=["documents"],
        errors=(400, *_CENTRE_ERRORS), params=_CENTRE, query=_FILTERS,
        description="Staff see the documents of a centre that granted them access; POD MI's uploader sees what it "
                    "sent itself; the security cell reads no mailbox (403). Unknown filter values or parameters "
                    "answer 400 naming what is accepted.")},
    "/institutions/{id}/documents/{doc}/receipt": {"get": _op(
        "getReceipt", "A document's receipt: delivered when and by whom, first fetched when, by whom and how, "
                      "archived when and by whom",
        {"200": _json(_ref("Receipt"), "the receipt")}, tags=["documents"], errors=(400, *_CENTRE_ERRORS),
        params=["CentreId", "DocumentId"],
        description="Another centre's document, another sender's (for an uploader) or an id no document has "
                    "answers 404 like a missing one.")},
    "/institutions/{id}/audit": {"get": _op(
        "audit", "The centre's part of the record, newest first",
        {"200": _json({"type": "array", "items": _ref("AuditEvent")}, "events")}, tags=["record"],
        errors=(400, *_CENTRE_ERRORS), params=_CENTRE,
        query=[{"name": "limit", "in": "query", "required": False,
                "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}}])},
    "/institutions/{id}/notify-test": {"post": _op(
        "notifyTest", "Send a test mail to the centre's contacts",
        {"202": _json(_ref("Queued"), "queued in the outbox")}, tags=["centres"], errors=(*_CENTRE_ERRORS, 409),
        params=_CENTRE)},
}
for _verb, _what in (("request", "Record the centre's request to switch over (paper -> requested)"),
                     ("activate", "Activate the centre, all three legislations at once, and queue the notice "
                                  "to its contacts (requested or suspended -> active)"),
                     ("suspend", "Suspend the centre (active -> suspended)")):
    PATHS[f"/institutions/{{id}}/{_verb}"] = {"post": _op(
        _verb, _what + " (security cell)", {"200": _json(_ref("TransitionResult"), "the transition")},
        tags=["switch-over"], errors=(*_CENTRE_ERRORS, 409), params=_CENTRE, body="TransitionRequest")}

DOCUMENT = {
    "openapi": "3.1.0",
    "info": {
        "title": "Institutional Pages",
        "version": "1",
        "description": (
            "Administration of the institutional pages (one mailbox per public centre for social welfare): the "
            "switch-over of centres, their local administrators and security consultant, contacts, who has "
            "access to each mailbox, archived documents and the record. Everything the web console does.\n\n"
            "Log in with POST /session (password and token card code, or password and eID certificate), then "
            "send `Authorization: Bearer <token>`. Scripts use an API token (POST /tokens, after a strong "
            "login). The console's session cookie is accepted too, with its `X-CSRF-Token` header on every "
            "request that is not a GET. Bodies are JSON objects of at most 64 KiB; errors are "
            "`{\"error\": \"...\"}`."),
    },
    "servers": [{"url": "/api"}],
    "security": [{"bearer": []}, {"consoleCookie": []}],
    "tags": [{"name": n} for n in ("session", "tokens", "centres", "switch-over", "delegation", "access",
                                   "documents", "record", "meta")],
    "paths": PATHS,
    "components": {
        "schemas": SCHEMAS,
        "responses": RESPONSES,
        "parameters": PARAMETERS,
        "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer",
                       "description": "a session token (POST /session) or an API token (ipat-...)"},
            "consoleCookie": {"type": "apiKey", "in": "cookie", "name": "ip_console",
                              "description": "the web console's session; requests other than GET also need the "
                                             "X-CSRF-Token header"},
        },
    },
}


def document() -> dict:
    """A copy, for callers that want to change it."""
    return copy.deepcopy(DOCUMENT)
