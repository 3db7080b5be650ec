"""The metadata repository, one module per aggregate; :mod:`storage.repository` composes them into one class.

- ``base``: the tables, the read/write transactions, ``utcnow``/``as_utc`` and ``Conflict``, shared by all;
- ``institutions``: the centres, their status and history; ``grants``: who may reach which centre;
- ``accounts``: account rows; ``credentials``: SSH keys, certificates, token cards, device passwords, API tokens;
- ``folders`` and ``documents``: a centre's mailbox tree and the documents' lifecycle; ``catalogue``: the
  documents filed by kind, legislation and period, their receipts, and the staff's page visits;
- ``notifications``: digest cursors and the mail outbox; ``davstate``: reads over the WebDAV locks;
- ``failures``: failed-login counts and bans; ``epochs``: the cache epochs every gateway process polls;
- ``audit``: the hash-chained audit trail;
- ``batcher`` (no aggregate): group commit of the record writes of many request threads of one process.
"""
