"""The web front-ends and the HTTPS server under them: :mod:`~gateway.web.https` wires the threaded TLS server
(:mod:`~gateway.web.tls` for contexts, :mod:`~gateway.web.tlsaccept` for handshakes off the accept thread) and
routes to WebDAV, the console (:mod:`~gateway.web.console`, :mod:`~gateway.web.i18n`, ``templates/console/``), the
account page (:mod:`~gateway.web.accountpage`) and the REST API (the package :mod:`~gateway.web.api`: the WSGI
application, routes, request checks, handlers per resource and its OpenAPI document in
:mod:`~gateway.web.api.openapi`); :mod:`~gateway.web.httpauth` and :mod:`~gateway.web.websession` hold the HTTP
authentication and web sessions they share."""
