"""The ``instpages`` commands, one handler per command, grouped by topic; ``gateway/cli.py`` wires them into the
parser (``set_defaults(func=...)``) and runs the one the operator named.

- ``base``: what every command shares -- the exit code of a failure, command and sub-command declaration, the
  table printer, the wrappers that hand a handler the :class:`~gateway.admin.service.Administration` service
  (``administration``; ``reports`` for a handler returning the one line it says, ``lists`` for one returning the
  rows of a table);
- ``serve``: ``init`` and ``serve`` (with ``--demo``);
- ``centres``: ``institution ...`` -- centres, their lifecycle, settings and people;
- ``accounts``: ``account ...``;
- ``credentials``: ``token ...``, ``device-password ...`` and ``api-token ...``;
- ``grants``: ``grant ...`` -- staff access to centres;
- ``notifications``: ``notify ...`` -- mails to the centres;
- ``audit``: ``audit ...`` -- the record and its hash chain;
- ``bans``: ``ban ...`` -- names and addresses banned after failed logins;
- ``documents``: ``document ...``;
- ``reload``: ``reload`` -- every gateway process reads its trust material again.

Each topic module has ``add_<command>(sub, common)`` functions that declare a command's arguments, and one short
handler per sub-command: ``handler(args, cfg) -> exit code`` (the ones wrapped by
:func:`~gateway.commands.base.administration` are written as ``handler(args, admin)``, those wrapped by
:func:`~gateway.commands.base.reports` / :func:`~gateway.commands.base.lists` return the line / the rows they
print).
"""
