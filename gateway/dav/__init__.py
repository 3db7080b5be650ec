"""The WebDAV front-end: :mod:`~gateway.dav.app` assembles the wsgidav application from the DAV provider
(:mod:`~gateway.dav.provider`), the domain controller (:mod:`~gateway.dav.domain`) and the middlewares
(:mod:`~gateway.dav.middleware`, :mod:`~gateway.dav.propfind`, :mod:`~gateway.dav.listing`), which only translate
WebDAV to core calls and core errors to HTTP answers through the one table in :mod:`~gateway.dav.errors`;
:mod:`~gateway.dav.state` keeps the DAV state (locks and properties) in the database so that every gateway process
shares it."""
