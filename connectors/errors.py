"""What can go wrong when we call a vendor, as the pipeline needs to know it.

    ConnectorError
    ├── TransientError        retry later: timeouts, connection errors, 5xx
    │   └── ThrottledError    retry after the vendor's own hint (Retry-After, Shopify throttle status)
    └── PermanentError        retrying cannot help: validation, auth, 4xx other than 409/429
        ├── ConflictError     the object already exists (409, "Email has already been taken");
        │                     connectors turn it into "adopt the existing one" where they can
        ├── NotFoundError     the object is not there (404)
        └── AmbiguousMatch    more than one record matches; a person must decide

Transport errors and HTTP status errors are kept apart in `describe()` output, but the pipeline only
branches on the three kinds above. Messages never carry personal data (ids and codes only).
"""

from __future__ import annotations


class ConnectorError(Exception):
    """A vendor call failed; `system` names the vendor."""

    def __init__(self, message: str, *, system: str = "", status: int | None = None) -> None:
        super().__init__(message)
        self.system = system
        self.status = status


class TransientError(ConnectorError):
    """Worth retrying with backoff."""


class ThrottledError(TransientError):
    """The vendor's rate limit; `retry_after` seconds is its own hint when it gave one."""

    def __init__(
        self, message: str, *, system: str = "", status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, system=system, status=status)
        self.retry_after = retry_after


class PermanentError(ConnectorError):
    """Retrying cannot succeed; dead-letter at once."""

    reason = "permanent"


class ConflictError(PermanentError):
    """The object already exists; `existing_id` names it when the vendor said which."""

    reason = "conflict"

    def __init__(
        self, message: str, *, system: str = "", status: int | None = None, existing_id: str | None = None
    ) -> None:
        super().__init__(message, system=system, status=status)
        self.existing_id = existing_id


class NotFoundError(PermanentError):
    """The vendor has no such object."""

    reason = "not_found"


class AmbiguousMatch(PermanentError):
    """Several records match one person; never guess, let a person resolve it."""

    reason = "ambiguous_match"


class RateLimited(ThrottledError):
    """Our own shared budget for the vendor is spent: nothing was sent, so no attempt was used."""
