"""Administration: :mod:`~gateway.admin.service` holds the ``Administration`` service, made of one module per
topic (``centres``, ``delegation``, ``accounts``, ``credentials``, ``grants``, ``documents``, ``record``, over what
they share in ``base``: who acts, the collaborators, the record, the delegation checks; it decides through the
delegation policy and records every change) and
:mod:`~gateway.admin.notify` the notifications (activation notices, digests, test mails) rendered from
``templates/mail/``. Used by the CLI, the console, the account page and the REST API; this package imports nothing
on its own so that importing it never pulls a front-end back in."""
