"""``notify ...``: mail notifications to the centres -- a test mail, a run of the due digests and the outbox, and
the list of queued and sent mails."""
from __future__ import annotations

from gateway.admin.service import Administration
from gateway.commands.base import command, group, lists, reports
from storage.errors import GatewayError


def add_notify(sub, common) -> None:
    no = group(sub, common, "notify", "mail notifications")
    command(no, common, "test", test, help="send a test mail to a centre's contacts now").add_argument("id")
    command(no, common, "run", run, help="queue due digests and send the outbox once (the server does this by "
                                         "itself)")
    a = command(no, common, "outbox", outbox, help="queued and sent mails")
    a.add_argument("--institution")
    a.add_argument("--limit", type=int, default=50)


@reports
def test(args, admin: Administration) -> str:
    outbox_id = admin.notify_test(args.id)
    admin.mailbox.notifier.deliver_due()
    with admin.repo.read() as c:
        row = [r for r in admin.repo.outbox(c, None, 1000) if r.id == outbox_id][0]
    if row.sent_at is None:
        raise GatewayError(f"test mail {outbox_id} queued but not sent yet: {row.last_error or 'pending'} "
                           "(the server retries it)")
    return f"test mail {outbox_id} sent to {row.recipients.replace(',', ', ')}"


@reports
def run(args, admin: Administration) -> str:
    notifier = admin.mailbox.notifier
    if not notifier.enabled:
        raise GatewayError("mail is not configured (smtp.host)")
    n = notifier.queue_digests()
    report = notifier.deliver_due(limit=1000)
    return f"digests queued: {n}; mails sent: {report.sent}; failed (will be retried): {report.failed}"


@lists("ID", "KIND", "CENTRE", "QUEUED (UTC)", "SENT (UTC)", "ATTEMPTS", "LAST ERROR")
def outbox(args, admin: Administration) -> list[list[str]]:
    if args.limit <= 0:
        raise GatewayError("--limit must be positive")
    inst_id = admin.centre(args.institution).id if args.institution else None
    with admin.repo.read() as c:
        rows = admin.repo.outbox(c, inst_id, args.limit)
    return [[str(r.id), r.kind, r.institution_id or "-", f"{r.created_at:%Y-%m-%d %H:%M}",
             f"{r.sent_at:%Y-%m-%d %H:%M}" if r.sent_at else "pending", str(r.attempts), r.last_error[:60]]
            for r in rows]
