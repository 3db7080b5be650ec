"""The core: the rules every front-end goes through. :mod:`~gateway.core.mailbox` is the mailbox service (login,
sessions, tree operations, housekeeping and recovery; the only place that authorises and records),
:mod:`~gateway.core.path` parses every path, :mod:`~gateway.core.content` holds the PDF content rule,
:mod:`~gateway.core.lifecycle` the centre lifecycle, :mod:`~gateway.core.enterprise` the enterprise-number check and
:mod:`~gateway.core.localtime` the one local time zone. Nothing here knows a protocol."""
