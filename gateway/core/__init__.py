"""The core: the rules every front-end goes through. :mod:`~gateway.core.mailbox` is the mailbox service, the
only place that authorises and records: a facade over logins and resumed sessions (:mod:`~gateway.core.login`),
the tree operations of a session (:mod:`~gateway.core.session`), its downloads and uploads
(:mod:`~gateway.core.transfer`), what a name shows (:mod:`~gateway.core.entry`) and crash recovery and
housekeeping (:mod:`~gateway.core.housekeeping`);
:mod:`~gateway.core.path` parses every path, :mod:`~gateway.core.content` holds the PDF content rule,
:mod:`~gateway.core.lifecycle` the centre lifecycle, :mod:`~gateway.core.enterprise` the enterprise-number check and
:mod:`~gateway.core.localtime` the one local time zone. Nothing here knows a protocol."""
