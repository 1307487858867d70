"""Every setting of Membersync, read from the environment in one place.

Each field names its environment variable, a coercer and a default. The defaults make the embedded
mode work on a laptop (SQLite under ./var/, the sandbox emulators on their documented ports, the
sandbox credentials); production sets the real values. An invalid value stops start-up with a
`ConfigError` that names the variable and never echoes a secret.

Dev mode (MEMBERSYNC_ENV=development or test) relaxes the secrets: ops/ops, a public SECRET_KEY,
non-Secure cookies. So `test` is refused outside the test suite (whose conftest sets
MEMBERSYNC_TEST_SUITE=1), and `development` prints a warning on stderr in every process that runs
with it. Outside dev mode a process starts (`load_settings`) only with OPS_USERNAME/OPS_PASSWORD,
SECRET_KEY and MEMBER_CODE_KEY set and strong (`config.secret_strength`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from config.secret_strength import key_weakness, password_weakness
from config.systems import SYSTEMS, RetryPolicy

__all__ = ["PRODUCTION_DEFAULTS", "ConfigError", "RetryPolicy", "Secret", "Settings", "load_settings"]


# Dev mode's public signing key: never accepted outside dev mode.
DEV_SIGNING_KEY = "membersync-dev-only-secret"


class ConfigError(ValueError):
    """A setting in the environment is missing or invalid; the message names the variable."""


# Set (to 1) by the test suite's conftest, in its own process and so in every process it starts:
# the one proof that MEMBERSYNC_ENV=test is the test suite and not a copied environment.
TEST_SUITE_MARKER = "MEMBERSYNC_TEST_SUITE"
DEV_MODES = frozenset({"development", "test"})
# Dev mode's member-number key: public (it is here), refused as a value outside dev mode.
DEV_MEMBER_CODE_KEY = "membersync-dev-only-member-code-key"
DEVELOPMENT_WARNING = (
    "membersync: WARNING: MEMBERSYNC_ENV=development: ops/ops login, a public SECRET_KEY, non-Secure "
    "cookies and the sandbox on this machine. For `membersync dev` only; a production process must "
    "run without MEMBERSYNC_ENV (or with MEMBERSYNC_ENV=production)."
)
_development_warned = False


class Secret(str):
    """A string that never shows itself in repr(), logs or tracebacks."""

    def __repr__(self) -> str:
        return "Secret('***')" if self else "Secret('')"

    @property
    def value(self) -> str:
        """The plain secret, for the one place that sends it."""
        return str.__str__(self)


def _bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError("expected true/false")


def _port(raw: str) -> int:
    port = int(raw)
    if not 0 < port < 65536:
        raise ValueError("expected a port number 1-65535")
    return port


def _optional_port(raw: str) -> int | None:
    return _port(raw) if raw.strip() else None


def _positive_int(raw: str) -> int:
    number = int(raw)
    if number <= 0:
        raise ValueError("expected a positive integer")
    return number


def _non_negative_int(raw: str) -> int:
    number = int(raw)
    if number < 0:
        raise ValueError("expected zero or a positive integer")
    return number


def _positive_float(raw: str) -> float:
    number = float(raw)
    if not number > 0:
        raise ValueError("expected a positive number")
    return number


def _non_negative_float(raw: str) -> float:
    number = float(raw)
    if not number >= 0:
        raise ValueError("expected zero or a positive number")
    return number


def _url(raw: str) -> str:
    if not re.match(r"^[a-z][a-z0-9+.-]*://", raw.strip()):
        raise ValueError("expected a URL such as scheme://host")
    return raw.strip()


def _optional_url(raw: str) -> str | None:
    return _url(raw) if raw.strip() else None


def _base_url(raw: str) -> str:
    """An http(s) base URL that paths are appended to (no trailing slash)."""
    url = _url(raw)
    if not url.startswith(("http://", "https://")):
        raise ValueError("expected an http:// or https:// URL")
    return url.rstrip("/")


def _optional_base_url(raw: str) -> str | None:
    return _base_url(raw) if raw.strip() else None


def _optional_str(raw: str) -> str | None:
    return raw.strip() or None


def _hubspot_api_version(raw: str) -> str:
    """HubSpot's date version (`2026-09`: `/crm/objects/2026-09/contacts`) or the legacy `v3`."""
    text = raw.strip().lower()
    if text != "v3" and not re.fullmatch(r"20\d\d-(0[1-9]|1[0-2])", text):
        raise ValueError("expected a HubSpot date version such as 2026-09, or v3")
    return text


def _rate_limit(raw: str) -> str | None:
    """flask-limiter syntax ('60/minute', '10 per second'); 'off' disables the limit."""
    text = raw.strip()
    if text.lower() in {"off", "none", "0", ""}:
        return None
    if not re.fullmatch(r"\d+\s*(/|per)\s*(\d+\s*)?(second|minute|hour|day)s?", text):
        raise ValueError("expected e.g. '60/minute', or 'off'")
    return text


def _clock_time(raw: str) -> str:
    """A local time of day as HH:MM (24-hour)."""
    match = re.fullmatch(r"([01]?[0-9]|2[0-3]):([0-5][0-9])", raw.strip())
    if match is None:
        raise ValueError("must be a time of day as HH:MM, e.g. 03:00")
    return f"{int(match.group(1)):02d}:{match.group(2)}"


def _time_zone(raw: str) -> str:
    """An IANA time zone name (e.g. Asia/Tokyo)."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(raw.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("must be an IANA time zone name, e.g. Asia/Tokyo") from None
    return raw.strip()


def _optional_digits(raw: str) -> str | None:
    """An optional number written in ASCII digits (an account id), or None when empty."""
    value = raw.strip()
    if not value:
        return None
    if not re.fullmatch(r"[0-9]{1,20}", value):
        raise ValueError("must be a number (ASCII digits), e.g. 12345678")
    return value


def _email_or_none(raw: str) -> str | None:
    text = raw.strip()
    if not text:
        return None
    if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", text):
        raise ValueError("expected an email address")
    return text


def _secret(raw: str) -> Secret:
    return Secret(raw)


def _retry_policy(raw: str) -> RetryPolicy:
    """'attempts=12,base=2,cap=600,budget=10800' (seconds); every key is required."""
    keys = {
        "attempts": "max_attempts",
        "base": "base_seconds",
        "cap": "cap_seconds",
        "budget": "budget_seconds",
    }
    values: dict[str, float] = {}
    for part in raw.split(","):
        key, _, number = part.partition("=")
        if key.strip() not in keys:
            raise ValueError(f"unknown key {key.strip()!r}; expected attempts, base, cap, budget")
        values[keys[key.strip()]] = _positive_float(number)
    if set(values) != set(keys.values()):
        raise ValueError("expected attempts=N,base=S,cap=S,budget=S")
    if values["base_seconds"] > values["cap_seconds"]:
        raise ValueError("base must not exceed cap")
    return RetryPolicy(
        max_attempts=int(values["max_attempts"]),
        base_seconds=values["base_seconds"],
        cap_seconds=values["cap_seconds"],
        budget_seconds=values["budget_seconds"],
    )


def _retry_policies(env: Mapping[str, str]) -> Mapping[str, RetryPolicy]:
    """Each registered system's policy: its RETRY_POLICY_<NAME> variable, else the registry default."""
    policies: dict[str, RetryPolicy] = {}
    for system in SYSTEMS:
        raw = env.get(system.retry_variable)
        try:
            policies[system.name] = system.default_retry if raw is None else _retry_policy(raw)
        except ValueError as error:
            raise ConfigError(f"{system.retry_variable}={raw!r} is invalid: {error}") from None
    return MappingProxyType(policies)


def setting(env: str, coerce: Callable[[str], Any], default: Any, *, secret: bool = False) -> Any:
    """Declare a field read from `env`, coerced by `coerce`, with `default` when unset."""
    return field(default=default, metadata={"env": env, "coerce": coerce, "secret": secret})


def _default_database_url() -> str:
    return f"sqlite:///{Path('var').resolve() / 'membersync.db'}"


@dataclass(frozen=True)
class Settings:
    """The typed configuration; build it with `Settings.from_env()`."""

    environment: str = setting("MEMBERSYNC_ENV", str, "production")
    database_url: str = setting("DATABASE_URL", _url, "")
    # Connections per process (ignored for SQLite). A step holds one only for its short claim and
    # record transactions, never during a vendor call, so the pool can be smaller than the threads.
    database_pool_size: int = setting("DATABASE_POOL_SIZE", _positive_int, 20)
    database_max_overflow: int = setting("DATABASE_MAX_OVERFLOW", _non_negative_int, 10)
    redis_url: str | None = setting("REDIS_URL", _optional_url, None)
    celery_broker_url: str | None = setting("CELERY_BROKER_URL", _optional_url, None)
    port: int = setting("PORT", _port, 8000)
    flower_port: int = setting("FLOWER_PORT", _port, 5555)
    # Where ops open Flower (the ops console links each step's task there); unset means
    # http://127.0.0.1:{FLOWER_PORT}, see `flower_base_url`.
    flower_url: str | None = setting("FLOWER_URL", _optional_base_url, None)

    shopify_shop: str = setting("SHOPIFY_SHOP", str, "sandbox.myshopify.com")
    shopify_access_token: Secret = setting(
        "SHOPIFY_ACCESS_TOKEN", _secret, Secret("shpat_sandbox"), secret=True
    )
    shopify_api_version: str = setting("SHOPIFY_API_VERSION", str, "2026-10")
    shopify_admin_url: str | None = setting("SHOPIFY_ADMIN_URL", _optional_base_url, "http://127.0.0.1:8011")

    smaregi_contract_id: str = setting("SMAREGI_CONTRACT_ID", str, "sandbox")
    smaregi_client_id: str = setting("SMAREGI_CLIENT_ID", str, "sandbox-client")
    smaregi_client_secret: Secret = setting(
        "SMAREGI_CLIENT_SECRET", _secret, Secret("sandbox-secret"), secret=True
    )
    smaregi_api_url: str = setting("SMAREGI_API_URL", _base_url, "http://127.0.0.1:8012")
    smaregi_id_url: str = setting("SMAREGI_ID_URL", _base_url, "http://127.0.0.1:8012")

    hubspot_access_token: Secret = setting(
        "HUBSPOT_ACCESS_TOKEN", _secret, Secret("pat-sandbox"), secret=True
    )
    hubspot_api_url: str = setting("HUBSPOT_API_URL", _base_url, "http://127.0.0.1:8013")
    # The date version of HubSpot's API the connector calls (`v3`: the legacy paths, unsupported
    # from September 2027). From 2026-09 HubSpot enforces the portal's validation rules on writes.
    hubspot_api_version: str = setting("HUBSPOT_API_VERSION", _hubspot_api_version, "2026-09")
    # The subscription type marketing consent is recorded under (Communication Preferences API);
    # unset: the portal's one active, non-internal subscription type, read from its definitions.
    hubspot_subscription_id: str | None = setting("HUBSPOT_SUBSCRIPTION_ID", _optional_str, None)

    smtp_host: str = setting("SMTP_HOST", str, "127.0.0.1")
    smtp_port: int = setting("SMTP_PORT", _port, 8025)
    smtp_username: str | None = setting("SMTP_USERNAME", _optional_str, None)
    smtp_password: Secret = setting("SMTP_PASSWORD", _secret, Secret(""), secret=True)
    smtp_starttls: bool = setting("SMTP_STARTTLS", _bool, False)
    mail_from: str = setting("MAIL_FROM", str, "Membersync <welcome@membersync.local>")

    sync_smaregi_enabled: bool = setting("SYNC_SMAREGI_ENABLED", _bool, True)
    sync_hubspot_enabled: bool = setting("SYNC_HUBSPOT_ENABLED", _bool, True)
    sync_welcome_email_enabled: bool = setting("SYNC_WELCOME_EMAIL_ENABLED", _bool, True)

    ops_username: str | None = setting("OPS_USERNAME", _optional_str, None)
    ops_password: Secret = setting("OPS_PASSWORD", _secret, Secret(""), secret=True)
    # Named console accounts, each with its own password (config/operators.py): "name:hash" pairs
    # separated by commas, and/or a file of such lines; `membersync ops-user hash NAME` makes a hash.
    ops_users: Secret = setting("OPS_USERS", _secret, Secret(""), secret=True)
    ops_users_file: str | None = setting("OPS_USERS_FILE", _optional_str, None)
    ops_alert_email: str | None = setting("OPS_ALERT_EMAIL", _email_or_none, None)
    # The web service as the registrant's browser reaches it: the base of the confirmation and
    # unsubscribe links in the mails the worker sends.
    public_url: str | None = setting("PUBLIC_URL", _optional_base_url, None)
    # How long a registrant has to confirm by the link we mailed (marketing consent, a claim on an
    # address that is already a member, a card found at the till); after that it expires.
    confirmation_days: int = setting("CONFIRMATION_DAYS", _positive_int, 7)

    intake_rate_limit: str | None = setting("INTAKE_RATE_LIMIT", _rate_limit, "60/minute")
    # How many reverse proxies sit in front of the web service and set X-Forwarded-For; the rate
    # limit keys on the client address they report. 0 trusts no header (direct exposure).
    trusted_proxy_count: int = setting("TRUSTED_PROXY_COUNT", _non_negative_int, 0)
    # The proxy's plain-HTTP mode, for a trusted local network only (docs/deployment.md): session
    # cookies then go without Secure, which a browser never sends back over http:// (every form
    # post and console sign-in would fail). Outside dev mode it must agree with PUBLIC_URL's scheme.
    plain_http: bool = setting("PLAIN_HTTP", _bool, False)
    max_request_bytes: int = setting("MAX_REQUEST_BYTES", _positive_int, 16 * 1024)
    # Signs the session cookie and CSRF tokens, and keys the hashes in Redis (`derive_key`).
    secret_key: Secret = setting("SECRET_KEY", _secret, Secret(""), secret=True)
    # The key of the member-number HMAC: required outside dev mode, and never SECRET_KEY (whoever
    # recovers the cookie key must not be able to compute member numbers); dev mode falls back to
    # SECRET_KEY, then to a fixed key. Changing it changes only the numbers of members created
    # afterwards: existing members keep theirs (they are looked up, not recomputed).
    member_code_key: Secret = setting("MEMBER_CODE_KEY", _secret, Secret(""), secret=True)
    sentry_dsn: Secret = setting("SENTRY_DSN", _secret, Secret(""), secret=True)
    # A bearer token for `/metrics` (a Prometheus scraper); the ops credentials work as well.
    metrics_token: Secret = setting("METRICS_TOKEN", _secret, Secret(""), secret=True)
    # Where each process writes its Prometheus values (prometheus_client reads it too, at start-up).
    metrics_dir: str | None = setting("PROMETHEUS_MULTIPROC_DIR", _optional_str, None)
    # When set, the worker serves its own series on this port too (for a worker on another host than
    # the web service; on one host PROMETHEUS_MULTIPROC_DIR lets `/metrics` show every process).
    worker_metrics_port: int | None = setting("WORKER_METRICS_PORT", _optional_port, None)
    shopify_webhook_secret: Secret = setting("SHOPIFY_WEBHOOK_SECRET", _secret, Secret(""), secret=True)
    # During a rotation of the app's client secret Shopify may still sign with the older one for a
    # while: deliveries signed with either are accepted until this is unset.
    shopify_webhook_secret_previous: Secret = setting(
        "SHOPIFY_WEBHOOK_SECRET_PREVIOUS", _secret, Secret(""), secret=True
    )
    smaregi_webhook_token: Secret = setting("SMAREGI_WEBHOOK_TOKEN", _secret, Secret(""), secret=True)

    # The outbox relay re-publishes rows older than this; younger ones are still being published by
    # the request that wrote them.
    outbox_relay_after_seconds: int = setting("OUTBOX_RELAY_AFTER_SECONDS", _positive_int, 30)
    outbox_relay_interval_seconds: int = setting("OUTBOX_RELAY_INTERVAL_SECONDS", _positive_int, 15)
    # A step held this long by one delivery may be taken over by another (its worker died). It must
    # exceed a step's hard time limit (derived from it: half the lease), so a live holder is never
    # overtaken.
    step_lease_seconds: int = setting("STEP_LEASE_SECONDS", _positive_int, 600)
    # A registration whose pending/running step was untouched this long has lost its chain (a killed
    # worker's messages, a Redis restart): the relay queues it again. Above the longest retry delay.
    stalled_after_seconds: int = setting("STALLED_AFTER_SECONDS", _positive_int, 900)
    # New dead letters are gathered into one digest per interval.
    dead_letter_alert_interval_seconds: int = setting(
        "DEAD_LETTER_ALERT_INTERVAL_SECONDS", _positive_int, 300
    )

    # Per-system retry policies, RETRY_POLICY_<SYSTEM>="attempts=N,base=S,cap=S,budget=S"; the
    # systems and their defaults come from the registry (config.systems), read in `from_env`.
    retry_policies: Mapping[str, RetryPolicy] = field(
        default_factory=lambda: MappingProxyType({system.name: system.default_retry for system in SYSTEMS}),
        hash=False,
    )

    # Every vendor call: seconds to connect and to wait for an answer.
    http_connect_timeout_seconds: float = setting("HTTP_CONNECT_TIMEOUT_SECONDS", _positive_float, 3.05)
    http_read_timeout_seconds: float = setting("HTTP_READ_TIMEOUT_SECONDS", _positive_float, 10.0)
    # Global rate limits, shared by every worker (Redis token buckets), sized to each vendor's plan.
    # Shopify: cost points per store (bucket size, restored per second; Standard plan 2000 / 100).
    shopify_bucket_size: float = setting("SHOPIFY_BUCKET_SIZE", _positive_float, 2000.0)
    shopify_restore_rate: float = setting("SHOPIFY_RESTORE_RATE", _positive_float, 100.0)
    # Smaregi counts reads and writes apart, per app per contract per second (official); the figures
    # are a third party's: sandbox 10 reads/s and 4 writes/s, production 50 and 20. The old single
    # budget SMAREGI_RATE_LIMIT_PER_SECOND still works: when set, it sizes both buckets unless the new
    # per-kind names are set too (see smaregi_read_budget / smaregi_write_budget).
    smaregi_read_rate_per_second: float | None = setting(
        "SMAREGI_READ_RATE_PER_SECOND", _positive_float, None
    )
    smaregi_write_rate_per_second: float | None = setting(
        "SMAREGI_WRITE_RATE_PER_SECOND", _positive_float, None
    )
    smaregi_rate_limit_per_second: float | None = setting(
        "SMAREGI_RATE_LIMIT_PER_SECOND", _positive_float, None
    )
    # The Smaregi member directory: pulled by update time on beat every this many seconds, and
    # refreshed before a create when older than SMAREGI_DIRECTORY_MAX_AGE_SECONDS (a walk-in whose
    # card was made at the till seconds ago must be found, not duplicated).
    smaregi_directory_pull_seconds: float = setting("SMAREGI_DIRECTORY_PULL_SECONDS", _positive_float, 60.0)
    smaregi_directory_max_age_seconds: float = setting(
        "SMAREGI_DIRECTORY_MAX_AGE_SECONDS", _non_negative_float, 1.0
    )
    smaregi_scopes: str = setting("SMAREGI_SCOPES", str, "pos.customers:read pos.customers:write")
    # Points a new member gets once, when the Smaregi step has made (or adopted) the member of the
    # registration that made the person (0 = no sign-up bonus). A lost answer is settled by reading
    # Smaregi's transactions, so SMAREGI_SCOPES must then include pos.transactions:read.
    signup_bonus_points: int = setting("SIGNUP_BONUS_POINTS", _non_negative_int, 0)
    # Nightly reconciliation (registrations/reconcile): beat starts it at this local time (HH:MM) in
    # this zone; a Smaregi-only member with no Shopify customer is only reported unless the switch
    # lets reconciliation create the customer.
    reconcile_at: str = setting("RECONCILE_AT", _clock_time, "03:00")
    reconcile_timezone: str = setting("RECONCILE_TIMEZONE", _time_zone, "Asia/Tokyo")
    reconcile_create_shopify_customers: bool = setting("RECONCILE_CREATE_SHOPIFY_CUSTOMERS", _bool, False)
    # The shop's own time zone: every time the ops console shows is in it, with its abbreviation.
    shop_timezone: str = setting("SHOP_TIMEZONE", _time_zone, "Asia/Tokyo")
    # The HubSpot account (portal) id, for the console's links to a contact's record in HubSpot's
    # app; unset, HubSpot ids are shown without a link (the id alone does not say the account).
    hubspot_portal_id: str | None = setting("HUBSPOT_PORTAL_ID", _optional_digits, None)
    # HubSpot: requests per rolling ten seconds for a private app (100 Free/Starter, 190 Pro/Enterprise).
    hubspot_rate_limit_per_10s: float = setting("HUBSPOT_RATE_LIMIT_PER_10S", _positive_float, 100.0)
    smtp_timeout_seconds: float = setting("SMTP_TIMEOUT_SECONDS", _positive_float, 10.0)
    # The per-email lock around find-or-create: held at most this long (above a step's vendor calls),
    # waited for at most LOCK_WAIT_SECONDS before the step is re-scheduled.
    lock_timeout_seconds: float = setting("LOCK_TIMEOUT_SECONDS", _positive_float, 60.0)
    lock_wait_seconds: float = setting("LOCK_WAIT_SECONDS", _positive_float, 5.0)

    @property
    def dev_mode(self) -> bool:
        """True under `membersync dev` and in tests: sandbox defaults and ops/ops are allowed."""
        return self.environment in DEV_MODES

    @property
    def smaregi_read_budget(self) -> float:
        """Smaregi reads per second: SMAREGI_READ_RATE_PER_SECOND, else the old single budget, else 10."""
        return self.smaregi_read_rate_per_second or self.smaregi_rate_limit_per_second or 10.0

    @property
    def smaregi_write_budget(self) -> float:
        """Smaregi writes per second: SMAREGI_WRITE_RATE_PER_SECOND, else the old single budget, else 4."""
        return self.smaregi_write_rate_per_second or self.smaregi_rate_limit_per_second or 4.0

    @property
    def effective_redis_url(self) -> str:
        """Redis for locks and rate limits (the local default when REDIS_URL is unset)."""
        return self.redis_url or "redis://127.0.0.1:6379/0"

    @property
    def flower_base_url(self) -> str:
        """Flower's address for links: FLOWER_URL, else Flower on this machine's FLOWER_PORT."""
        return self.flower_url or f"http://127.0.0.1:{self.flower_port}"

    @property
    def broker_url(self) -> str:
        """The Celery broker: CELERY_BROKER_URL, else the Redis."""
        return self.celery_broker_url or self.effective_redis_url

    @property
    def shopify_graphql_url(self) -> str:
        """The Admin GraphQL endpoint for the configured shop and API version."""
        base = self.shopify_admin_url or f"https://{self.shopify_shop}"
        return f"{base}/admin/api/{self.shopify_api_version}/graphql.json"

    def enabled_systems(self) -> dict[str, bool]:
        """Which pipeline steps run; a disabled one is recorded as skipped."""
        return {
            system.name: system.switch is None or bool(getattr(self, system.switch)) for system in SYSTEMS
        }

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read every setting from `environ` (default os.environ); overrides win (tests)."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for spec in dataclasses.fields(cls):
            name = spec.metadata.get("env")
            if name is None or name not in env:
                continue
            try:
                values[spec.name] = spec.metadata["coerce"](env[name])
            except (ValueError, TypeError) as error:
                shown = "(hidden)" if spec.metadata["secret"] else repr(env[name])
                raise ConfigError(f"{name}={shown} is invalid: {error}") from None
        values["retry_policies"] = _retry_policies(env)
        values.update(overrides)
        if values.get("environment", "production") not in DEV_MODES:
            values = {**PRODUCTION_DEFAULTS, **values}
        settings = cls(**values)
        if not settings.database_url:
            settings = dataclasses.replace(settings, database_url=_default_database_url())
        settings.check()
        return settings

    def check(self) -> None:
        """Refuse values that are wrong together, and weak secrets outside dev mode."""
        if self.environment not in {"production", *DEV_MODES}:
            raise ConfigError("MEMBERSYNC_ENV must be production, development or test")
        if self.environment == "test" and os.environ.get(TEST_SUITE_MARKER) != "1":
            raise ConfigError(
                "MEMBERSYNC_ENV=test is only for the test suite (it means ops/ops, a public SECRET_KEY "
                "and the sandbox): unset MEMBERSYNC_ENV for production, or run `membersync dev` locally"
            )
        if self.signup_bonus_points and "pos.transactions:read" not in self.smaregi_scopes.split():
            raise ConfigError(
                "SIGNUP_BONUS_POINTS needs SMAREGI_SCOPES to include pos.transactions:read: a bonus "
                "whose answer is lost is settled by reading the member's point transactions"
            )
        if self.environment == "development":
            _warn_development()
        if not self.dev_mode:
            self._check_secret_strength()
            self._check_scheme()

    def _check_scheme(self) -> None:
        """PUBLIC_URL's scheme and PLAIN_HTTP say the same: plain HTTP is chosen, never stumbled into."""
        if not self.public_url:
            return
        plain = self.public_url.startswith("http://")
        if plain and not self.plain_http:
            raise ConfigError(
                "PUBLIC_URL is http://, but production cookies are Secure, so browsers would refuse "
                "every form post and console sign-in: serve https:// (docs/deployment.md) or, on a "
                "trusted local network only, set PLAIN_HTTP=true"
            )
        if self.plain_http and not plain:
            raise ConfigError(
                "PLAIN_HTTP=true drops Secure from the cookies, but PUBLIC_URL is https://: "
                "unset PLAIN_HTTP (it is for an http:// PUBLIC_URL on a trusted local network)"
            )

    @property
    def session_cookie_secure(self) -> bool:
        """Whether cookies carry Secure: always, except in dev mode and the plain-HTTP mode."""
        return not (self.dev_mode or self.plain_http)

    def _check_secret_strength(self) -> None:
        """Each secret that is set must be strong; `require_secrets` refuses the missing ones."""
        password = self.ops_password.value
        if password and (reason := password_weakness(password, self.ops_username)):
            raise ConfigError(
                f"OPS_PASSWORD {reason}: set OPS_PASSWORD to a long random password (at least 12 "
                "characters, e.g. `openssl rand -base64 18`)"
            )
        keys = (("SECRET_KEY", self.secret_key.value), ("MEMBER_CODE_KEY", self.member_code_key.value))
        for name, value in keys:
            if value and (reason := key_weakness(value)):
                raise ConfigError(
                    f"{name} {reason}: set {name} to a random key of at least 32 characters "
                    "(e.g. `openssl rand -hex 32`)"
                )
        if self.member_code_key.value and self.member_code_key.value == self.secret_key.value:
            raise ConfigError(
                "MEMBER_CODE_KEY must differ from SECRET_KEY (whoever recovers the cookie key must not "
                "be able to compute member numbers): set MEMBER_CODE_KEY to its own random key"
            )

    def require_secrets(self) -> None:
        """Outside dev mode, refuse to start without the ops login, SECRET_KEY and MEMBER_CODE_KEY."""
        if self.dev_mode:
            return
        login = "the ops console, /metrics and Flower login"
        missing = [
            (name, why)
            for name, value, why in (
                ("OPS_USERNAME", self.ops_username, login),
                ("OPS_PASSWORD", self.ops_password.value, login),
                ("SECRET_KEY", self.secret_key.value, "signs sessions and CSRF tokens, keys Redis hashes"),
                ("MEMBER_CODE_KEY", self.member_code_key.value, "keys the member numbers"),
            )
            if not value
        ]
        if missing:
            name, why = missing[0]
            raise ConfigError(
                f"{name} must be set outside dev mode ({why}); unset: "
                f"{', '.join(n for n, _ in missing)}. Set each: OPS_PASSWORD at least 12 characters, "
                "the keys at least 32 random characters (e.g. `openssl rand -hex 32`)"
            )

    def derive_key(self, purpose: str) -> bytes:
        """A key for one purpose (the hashes in Redis keys, say), derived from SECRET_KEY: one secret
        to set, and a hash made for one purpose says nothing about another's."""
        return hmac.new(self.signing_key.encode(), f"membersync:{purpose}".encode(), hashlib.sha256).digest()

    @property
    def shared_store_url(self) -> str | None:
        """Redis for what every web process and Flower must share (sign-in throttles, ops sessions):
        REDIS_URL; outside dev mode the default Redis too; None (process memory) in dev mode."""
        if self.redis_url:
            return self.redis_url
        return None if self.dev_mode else self.effective_redis_url

    @property
    def public_base_url(self) -> str:
        """The base of the links we mail: PUBLIC_URL; this machine's web port in dev mode only.

        Outside dev mode a link to 127.0.0.1 would reach nobody, so a missing PUBLIC_URL is an
        error (the mail step dead-letters naming it) rather than a mail whose links do not work.
        """
        if self.public_url:
            return self.public_url
        if self.dev_mode:
            return f"http://127.0.0.1:{self.port}"
        raise ConfigError(
            "PUBLIC_URL must be set outside dev mode: it is the base of the confirmation and "
            "unsubscribe links in the mails (e.g. https://members.example.jp)"
        )

    @property
    def signing_key(self) -> str:
        """What signs sessions, CSRF tokens and the links we mail: SECRET_KEY; a fixed one in dev mode.

        The worker signs the links and the web service checks them, so both must share it.
        """
        if self.secret_key.value:
            return self.secret_key.value
        if self.dev_mode:
            return DEV_SIGNING_KEY
        raise ConfigError(
            "SECRET_KEY must be set outside dev mode (it signs sessions, forms and mailed links)"
        )

    @property
    def member_code_secret(self) -> bytes:
        """The member-number HMAC key: MEMBER_CODE_KEY; in dev mode only, SECRET_KEY or a fixed key."""
        if self.member_code_key.value:
            return self.member_code_key.value.encode()
        if self.dev_mode:
            return (self.secret_key.value or DEV_MEMBER_CODE_KEY).encode()
        raise ConfigError("MEMBER_CODE_KEY must be set outside dev mode: it keys the member numbers")

    def ops_credentials(self) -> tuple[str, str]:
        """The ops console / Flower login; dev mode falls back to ops/ops, production refuses."""
        if self.ops_username and self.ops_password:
            return self.ops_username, self.ops_password.value
        if self.dev_mode:
            return "ops", "ops"
        raise ConfigError(
            "OPS_USERNAME and OPS_PASSWORD must be set outside dev mode: the ops console and "
            "Flower are never served without authentication"
        )

    def describe(self) -> dict[str, Any]:
        """Every setting by variable name, secrets masked (for `membersync config` and logs)."""
        shown: dict[str, Any] = {}
        for spec in dataclasses.fields(self):
            name = spec.metadata.get("env")
            if name is None:
                continue
            value = getattr(self, spec.name)
            shown[name] = ("***" if value else "") if spec.metadata["secret"] else value
        for system in SYSTEMS:
            shown[system.retry_variable] = self.retry_policies[system.name]
        return shown


# Outside dev mode an unset vendor setting must never mean "the sandbox on this machine": these
# replace the embedded defaults, so production talks to the real vendors or, with no credentials,
# to nobody (the connectors refuse to call without them).
PRODUCTION_DEFAULTS: dict[str, Any] = {
    "shopify_shop": "",
    "shopify_access_token": Secret(""),
    "shopify_admin_url": None,
    "smaregi_contract_id": "",
    "smaregi_client_id": "",
    "smaregi_client_secret": Secret(""),
    "smaregi_api_url": "https://api.smaregi.jp",
    "smaregi_id_url": "https://id.smaregi.jp",
    "hubspot_access_token": Secret(""),
    "hubspot_api_url": "https://api.hubapi.com",
    "smtp_host": "localhost",
    "smtp_port": 25,
}


def _warn_development() -> None:
    """Say once per process, on stderr, that this process runs with dev mode's public secrets."""
    global _development_warned
    if _development_warned or os.environ.get(TEST_SUITE_MARKER) == "1":
        return
    _development_warned = True
    print(DEVELOPMENT_WARNING, file=sys.stderr, flush=True)


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """A process's settings from its environment: what every process calls as it starts, so
    outside dev mode none starts without its secrets (`Settings.require_secrets`)."""
    settings = Settings.from_env(environ, **overrides)
    settings.require_secrets()
    return settings
