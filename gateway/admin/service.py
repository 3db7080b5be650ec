"""Administration as a core service: centres and their switch-over, delegation, accounts, credentials, grants,
restores, notifications, the audit record.

The CLI, the REST API, the web console and the account page all call :class:`Administration`; every change (and
every refused attempt) is put on the record, and every delegated operation asks :func:`auth.policy.decide_admin`
first. ``principal`` None is the operator on the gateway host (the CLI, holding the data folder and the master
key): everything. The operations live in one module per topic, this class is all of them:

============================================  ================================================================
:mod:`gateway.admin.base`                     who acts, the collaborators, the record, the delegation checks
:mod:`gateway.admin.centres`                  centres, their lifecycle, contacts, language and networks
:mod:`gateway.admin.delegation`               local administrators and the security consultant
:mod:`gateway.admin.accounts`                 accounts, their networks, enabling them; bans
:mod:`gateway.admin.credentials`              token cards, device passwords, API tokens
:mod:`gateway.admin.grants`                   access to centres' mailboxes, until when
:mod:`gateway.admin.documents`                archived documents and restoring them
:mod:`gateway.admin.record`                   reading and verifying the audit record
============================================  ================================================================

Built by the services factory with its :class:`~gateway.admin.base.Collaborators`
(``Services.administration``); built by hand around a Mailbox, it takes those of the mailbox's authenticator.
"""
from __future__ import annotations

from gateway.admin.accounts import AccountAdmin
from gateway.admin.centres import CentreAdmin
from gateway.admin.credentials import CredentialAdmin
from gateway.admin.delegation import DelegationAdmin
from gateway.admin.documents import DocumentAdmin
from gateway.admin.grants import GrantAdmin
from gateway.admin.record import RecordAdmin


class Administration(CentreAdmin, DelegationAdmin, AccountAdmin, CredentialAdmin, GrantAdmin, DocumentAdmin,
                     RecordAdmin):
    """Every administrative operation, for one acting person over one protocol (see the topic modules)."""
