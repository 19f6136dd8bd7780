"""What a VIP says of its certificates (pure): ``status.tls`` and the ``CertificatesValid``
condition.

``CertificatesValid`` is a condition of its own, not a reason on ``Ready``: a certificate that
expires in nine days is still served (the VIP is Ready), and the condition says the other half
of the truth, the one an alert or a person must act on before the clients do:

- True ``Valid``: every certificate is valid for longer than the warning threshold;
- False ``CertificateExpiringSoon``: one expires within it (the VIP keeps serving it);
- False ``CertificateInvalid``: one cannot be served (the VIP is Error with the same message).

The messages name a date, not a count of days, so they stay the same until the Secret changes:
the status is not rewritten daily, and the Warning Event is posted once per certificate.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from lbaas.api.tls import MAX_DNS_NAMES
from lbaas.status import Cond
from lbaas.tls.certs import rfc3339
from lbaas.tls.resolve import SECRETS_UNREADABLE, Resolution

CERTIFICATES_VALID = "CertificatesValid"
VALID = "Valid"
EXPIRING_SOON = "CertificateExpiringSoon"


def tls_status(resolution: Resolution) -> dict[str, Any]:
    """``status.tls``: each certificate that could be read (never a key)."""
    return {
        "certificates": [
            {
                "name": seen.name,
                "dnsNames": list(seen.dns_names[:MAX_DNS_NAMES]),
                "notAfter": rfc3339(seen.not_after),
                "fingerprint": seen.fingerprint,
            }
            for seen in resolution.seen
        ]
    }


def condition(resolution: Resolution, *, now: datetime, warning: timedelta) -> Cond:
    """The ``CertificatesValid`` condition of a VIP that terminates TLS."""
    if resolution.problem is not None:
        known = resolution.reason != SECRETS_UNREADABLE  # unread: neither valid nor invalid
        return Cond(CERTIFICATES_VALID, False if known else None, resolution.reason,
                    resolution.problem)  # fmt: skip
    if not resolution.seen:
        return Cond(CERTIFICATES_VALID, None, "Unknown", "no certificate read yet")
    soonest = min(resolution.seen, key=lambda s: (s.not_after, s.name))
    until = rfc3339(soonest.not_after)
    if soonest.not_after - now <= warning:
        days = warning.total_seconds() / 86400
        return Cond(
            CERTIFICATES_VALID,
            False,
            EXPIRING_SOON,
            f"the certificate of Secret {soonest.name} expires at {until}, within the"
            f" {days:g}-day warning threshold: renew it (the agent applies the renewed Secret by"
            " itself)",
        )
    return Cond(
        CERTIFICATES_VALID, True, VALID, f"every certificate is valid until {until} at least"
    )
