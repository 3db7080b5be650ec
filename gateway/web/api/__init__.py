"""The REST API under ``/api/``: everything the web console does, as JSON, described by ``/api/openapi.json``.

Like the other front-ends it only translates: HTTP requests into calls of the core's
:class:`~gateway.admin.service.Administration` (which asks :func:`auth.policy.decide_admin` and puts every change
and every refusal on the record), and the core's errors into HTTP statuses through the one table
:data:`gateway.web.api.app.ERRORS`. Nothing here decides who may do what.

Authentication, per request (nothing is remembered between requests except by the core):

- ``Authorization: Bearer <session token>``: the signed value ``POST /api/session`` returns after a strong login
  (password + token card code, or password + eID certificate), valid for ``webdav.session_seconds``;
- ``Authorization: Bearer ipat-...``: an API token for scripts, created with ``POST /api/tokens`` after a strong
  login (never with another API token, so a stolen token cannot mint more); POD MI's uploaders, machine accounts
  that cannot log in strongly, get theirs from the security cell (``POST /api/uploaders/{account}/tokens``, also
  after a strong login) or the operator, and read with it the catalogue and receipts of what they sent;
- the console's cookie ``ip_console`` (same signer), with ``X-CSRF-Token`` on every request that is not a GET.

Whichever it is, the session is resumed in the core for every request (``Mailbox.resume_session``): a revoked
designation, a removed grant, a disabled account or a source range set on the account or its centres applies to
the very next call, on every gateway process, and the refusal is on the record.

Bodies are JSON objects (``application/json``, at most 64 KiB, unknown fields refused); answers are JSON with
``Cache-Control: no-store``; errors are ``{"error": "<message>"}``. A centre the caller may not know about
answers exactly as a centre that does not exist, and as a malformed id: 404 ``{"error": "no such centre"}``.

The modules, by role:

- :mod:`~gateway.web.api.app` -- the WSGI application :class:`~gateway.web.api.app.RestApi`: authentication,
  dispatch to the handler of the route, the one error table ``ERRORS``;
- :mod:`~gateway.web.api.routes` -- the routes (path pattern, method -> operation) and the one place a path is
  taken apart;
- :mod:`~gateway.web.api.request` -- the request and the reply, reading and checking JSON bodies and queries;
- handlers per resource: :mod:`~gateway.web.api.sessions` (the document, login, logout, who am I),
  :mod:`~gateway.web.api.tokens` (the caller's API tokens, uploaders' tokens), :mod:`~gateway.web.api.centres`
  (centres, their lifecycle, designations, contacts, record), :mod:`~gateway.web.api.access` (grants),
  :mod:`~gateway.web.api.documents` (the catalogue and receipts, asked of the core on the caller's
  :class:`~gateway.core.session.MailboxSession`; archived documents, restoring);
- :mod:`~gateway.web.api.openapi` -- the OpenAPI 3.1 document, whose patterns the handlers enforce.
"""
