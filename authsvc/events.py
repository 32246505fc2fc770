"""Security events: one log record per security-relevant action, with a stable name.

Operators alert on these, so the names never change once released and every
record carries ``event`` as a field (``extra``), not only in its text. Fields
name who and what (client, sub, family, kid, address); never a secret, a
password or a whole token: callers pass identifiers only.

The names in use are listed in ``EVENTS``; a test keeps code and list in step.
"""

import logging

log = logging.getLogger("authsvc.security")

EVENTS = frozenset(
    {
        "login.succeeded",
        "login.failed",
        "login.locked",
        "login.throttled",
        "consent.granted",
        "consent.withdrawn",
        "device.approved",
        "device.denied",
        "device.throttled",
        "logout",
        "logout.delivered",
        "logout.delivery_failed",
        "session.revoked",
        "token.revoked",
        "token.revoked_by_admin",
        "refresh.grace_replay",
        "refresh.reuse_detected",
        "refresh.family_revoked",
        "refresh.client_mismatch",
        "refresh.dpop_key_mismatch",
        "dpop.proof_rejected",
        "dpop.proof_replayed",
        "code.reuse_detected",
        "code.dpop_key_mismatch",
        "client.created",
        "client.deleted",
        "client.secret_rotated",
        "user.created",
        "user.disabled",
        "user.password_changed",
        "key.added",
        "key.rotated",
        "key.pruned",
        "key.migrated",
        "metrics.unauthorized",
    }
)


# LogRecord's own attributes, which ``extra`` may not overwrite.
_RESERVED = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


def security_event(event: str, level: int = logging.INFO, **fields: object) -> None:
    """Log ``event`` with ``fields`` (identifiers only: no secrets, no whole tokens).

    Each field becomes an attribute of the record (for a JSON formatter) and
    part of the message text (for plain logs).
    """
    if event not in EVENTS:
        raise ValueError(f"unknown security event {event!r}: add it to authsvc.events.EVENTS")
    clash = _RESERVED.intersection(fields)
    if clash:
        raise ValueError(f"security event field(s) {sorted(clash)} clash with LogRecord attributes")
    shown = " ".join(f"{name}={value}" for name, value in fields.items() if value is not None)
    log.log(level, "%s %s", event, shown, extra={"event": event, **fields})
