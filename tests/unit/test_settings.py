"""Settings come from the environment, are typed, and fail loudly (never echoing a secret)."""

from __future__ import annotations

import pytest

from config.settings import ConfigError, Settings


def test_defaults_make_the_embedded_mode_work() -> None:
    settings = Settings.from_env(environ={"MEMBERSYNC_ENV": "development"})
    assert settings.database_url.startswith("sqlite:///") and settings.database_url.endswith(
        "var/membersync.db"
    )
    assert settings.shopify_graphql_url == "http://127.0.0.1:8011/admin/api/2026-10/graphql.json"
    assert settings.smaregi_api_url == "http://127.0.0.1:8012"
    assert settings.hubspot_api_url == "http://127.0.0.1:8013"
    assert (settings.smtp_host, settings.smtp_port) == ("127.0.0.1", 8025)
    assert settings.broker_url == "redis://127.0.0.1:6379/0"
    assert settings.ops_credentials() == ("ops", "ops")


def test_broker_url_overrides_redis() -> None:
    settings = Settings.from_env(
        environ={"REDIS_URL": "redis://r:6379/1", "CELERY_BROKER_URL": "amqp://guest:guest@127.0.0.1:5672//"}
    )
    assert settings.effective_redis_url == "redis://r:6379/1"
    assert settings.broker_url == "amqp://guest:guest@127.0.0.1:5672//"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("PORT", "eighty"),
        ("PORT", "70000"),
        ("SMTP_PORT", "-1"),
        ("SYNC_SMAREGI_ENABLED", "maybe"),
        ("DATABASE_URL", "not a url"),
        ("INTAKE_RATE_LIMIT", "lots"),
        ("OPS_ALERT_EMAIL", "nobody"),
        ("MAX_REQUEST_BYTES", "0"),
    ],
)
def test_an_invalid_value_names_its_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        Settings.from_env(environ={variable: value})


def test_a_secret_is_never_shown() -> None:
    settings = Settings.from_env(environ={"HUBSPOT_ACCESS_TOKEN": "pat-real-token-123"})
    assert "pat-real-token-123" not in repr(settings)
    assert "pat-real-token-123" not in str(settings.describe())
    assert settings.hubspot_access_token.value == "pat-real-token-123"


def test_switches_and_rate_limit() -> None:
    settings = Settings.from_env(
        environ={
            "SYNC_HUBSPOT_ENABLED": "false",
            "SYNC_WELCOME_EMAIL_ENABLED": "0",
            "INTAKE_RATE_LIMIT": "off",
        }
    )
    assert settings.enabled_systems() == {"shopify": True, "smaregi": True, "hubspot": False, "email": False}
    assert settings.intake_rate_limit is None


def test_production_refuses_an_unauthenticated_ops_console() -> None:
    settings = Settings.from_env(environ={"MEMBERSYNC_ENV": "production"})
    with pytest.raises(ConfigError, match="OPS_USERNAME"):
        settings.ops_credentials()
    settings = Settings.from_env(
        environ={"MEMBERSYNC_ENV": "production", "OPS_USERNAME": "admin", "OPS_PASSWORD": "s3cret"}
    )
    assert settings.ops_credentials() == ("admin", "s3cret")


def test_production_never_falls_back_to_the_sandbox() -> None:
    settings = Settings.from_env(
        environ={"MEMBERSYNC_ENV": "production", "SHOPIFY_SHOP": "real.myshopify.com"}
    )
    assert settings.shopify_graphql_url == "https://real.myshopify.com/admin/api/2026-10/graphql.json"
    assert settings.smaregi_api_url == "https://api.smaregi.jp"
    assert settings.hubspot_api_url == "https://api.hubapi.com"
    assert not settings.shopify_access_token and not settings.smaregi_client_secret
    assert not settings.hubspot_access_token
    explicit = Settings.from_env(
        environ={"MEMBERSYNC_ENV": "production", "HUBSPOT_API_URL": "http://127.0.0.1:8013"}
    )
    assert explicit.hubspot_api_url == "http://127.0.0.1:8013"  # set on purpose: honoured
