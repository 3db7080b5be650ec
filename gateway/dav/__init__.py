"""The WebDAV front-end: :mod:`~gateway.dav.app` is the wsgidav application (provider, domain controller,
middlewares) that only translates WebDAV to core calls and core errors to HTTP answers; :mod:`~gateway.dav.state`
keeps the DAV state (locks and properties) in the database so that every gateway process shares it."""
