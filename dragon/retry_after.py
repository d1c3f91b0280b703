"""``Retry-After`` (RFC 9110, 10.2.3), read the same way by the client, which waits for
the service, and by the callback deliverer, which waits for receivers.

Standard library only: the client-only install imports this module too.
"""

from __future__ import annotations

import email.utils


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait (delta-seconds or an HTTP date), or
    None when there is none or it cannot be read."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now)
