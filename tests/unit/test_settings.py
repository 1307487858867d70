"""Settings come from the environment, are typed, and fail loudly (never echoing a secret)."""

from __future__ import annotations

import secrets

import pytest
from hypothesis import given
from hypothesis import strategies as st

from config import settings as settings_module
from config.settings import (
    DEV_MEMBER_CODE_KEY,
    DEV_SIGNING_KEY,
    TEST_SUITE_MARKER,
    ConfigError,
    Settings,
    load_settings,
)


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
    assert settings.enabled_systems() == {
        "shopify": True,
        "smaregi": True,
        "hubspot": False,
        "email": False,
        "consent": True,
    }
    assert settings.intake_rate_limit is None


def test_production_refuses_an_unauthenticated_ops_console() -> None:
    settings = Settings.from_env(environ={"MEMBERSYNC_ENV": "production"})
    with pytest.raises(ConfigError, match="OPS_USERNAME"):
        settings.ops_credentials()
    settings = Settings.from_env(
        environ={"MEMBERSYNC_ENV": "production", "OPS_USERNAME": "admin", "OPS_PASSWORD": "vX9#kLm2-qRt7wZp"}
    )
    assert settings.ops_credentials() == ("admin", "vX9#kLm2-qRt7wZp")


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


# --- secrets outside dev mode ---------------------------------------------------------------------

STRONG = {
    "MEMBERSYNC_ENV": "production",
    "DATABASE_URL": "sqlite://",
    "OPS_USERNAME": "ops-lead",
    "OPS_PASSWORD": "vX9#kLm2-qRt7wZp",
    "SECRET_KEY": "5f0c2b8e9a41d7c3b6e0f18a2d9c4b7e1a3f5d8c0b2e4a6f",
    "MEMBER_CODE_KEY": "c7d1e9a3b5f2c8d0e4a6b1f9d3c5e7a2b4d6f8a0c2e1b3d5",
}


def test_production_starts_with_strong_secrets() -> None:
    settings = load_settings(STRONG)
    assert settings.ops_credentials() == ("ops-lead", STRONG["OPS_PASSWORD"])
    assert settings.member_code_secret == STRONG["MEMBER_CODE_KEY"].encode()
    assert settings.signing_key == STRONG["SECRET_KEY"]


@pytest.mark.parametrize("variable", ["OPS_USERNAME", "OPS_PASSWORD", "SECRET_KEY", "MEMBER_CODE_KEY"])
def test_production_refuses_to_start_without_each_secret(variable: str) -> None:
    environ = {name: value for name, value in STRONG.items() if name != variable}
    with pytest.raises(ConfigError, match=rf"^{variable} must be set outside dev mode") as raised:
        load_settings(environ)
    assert "Set each" in str(raised.value)


@pytest.mark.parametrize(
    "password",
    [
        "x",
        " ",
        "ops",
        " " * 16,
        "short-pass1",
        "password1234",
        "P@ssw0rd2024!",
        "Administrator1",
        "ops-ops-ops-ops",
        "opsopsopsops",
        "ops-lead-ops-lead",  # the username itself, repeated
        "Ops-Lead2026!!",  # the username with digits and symbols around it
        "aaaaaaaaaaaaaaaa",
        "123456789012",
        "qwertyuiop123",
        "correct horse battery staple",
    ],
)
def test_production_refuses_a_weak_ops_password(password: str) -> None:
    with pytest.raises(ConfigError, match=r"^OPS_PASSWORD ") as raised:
        Settings.from_env(environ={**STRONG, "OPS_PASSWORD": password})
    message = str(raised.value)
    assert "set OPS_PASSWORD to" in message
    if password.strip():
        assert password not in message, "the message never shows the password"


@pytest.mark.parametrize("variable", ["SECRET_KEY", "MEMBER_CODE_KEY"])
@pytest.mark.parametrize(
    "key",
    [
        "changeme",
        "secret",
        "x" * 31,
        "k" * 32,
        DEV_SIGNING_KEY,
        DEV_MEMBER_CODE_KEY,
        "changeme" * 4,
        "secret-key-secret-key-secret-key",
        "abcdefghijklmnopqrstuvwxyzabcdefgh",
        "12345678901234567890123456789012",
        "my-changeme-key-please-0123456789abcdef",
        "0f3a9c7e" * 4,  # eight different characters, but one short piece said four times
    ],
)
def test_production_refuses_a_weak_key(variable: str, key: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{variable} ") as raised:
        Settings.from_env(environ={**STRONG, variable: key})
    assert f"set {variable} to a random key of at least 32 characters" in str(raised.value)
    assert key not in str(raised.value)


def test_production_refuses_the_member_code_key_equal_to_the_secret_key() -> None:
    with pytest.raises(ConfigError, match=r"^MEMBER_CODE_KEY must differ from SECRET_KEY"):
        Settings.from_env(environ={**STRONG, "MEMBER_CODE_KEY": STRONG["SECRET_KEY"]})


def test_the_member_code_key_never_falls_back_to_the_secret_key_outside_dev_mode() -> None:
    without = {name: value for name, value in STRONG.items() if name != "MEMBER_CODE_KEY"}
    settings = Settings.from_env(environ=without)  # built, as a tool may, but never started
    with pytest.raises(ConfigError, match="MEMBER_CODE_KEY must be set"):
        _ = settings.member_code_secret
    development = Settings.from_env(environ={"MEMBERSYNC_ENV": "test", "SECRET_KEY": STRONG["SECRET_KEY"]})
    assert development.member_code_secret == STRONG["SECRET_KEY"].encode(), "dev mode keeps the fallback"
    fixed = Settings.from_env(environ={"MEMBERSYNC_ENV": "test"}).member_code_secret
    assert fixed == DEV_MEMBER_CODE_KEY.encode()


def test_dev_mode_keeps_its_defaults() -> None:
    for mode in ("development", "test"):
        settings = load_settings({"MEMBERSYNC_ENV": mode})
        assert settings.ops_credentials() == ("ops", "ops")
        assert settings.signing_key == DEV_SIGNING_KEY


def test_test_mode_is_refused_outside_the_test_suite(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings.from_env(environ={"MEMBERSYNC_ENV": "test"}).dev_mode  # the suite: allowed
    monkeypatch.delenv(TEST_SUITE_MARKER)
    with pytest.raises(ConfigError, match=r"^MEMBERSYNC_ENV=test is only for the test suite") as raised:
        Settings.from_env(environ={"MEMBERSYNC_ENV": "test"})
    assert "unset MEMBERSYNC_ENV" in str(raised.value)
    monkeypatch.setenv(TEST_SUITE_MARKER, "yes")  # only the exact marker counts
    with pytest.raises(ConfigError, match="MEMBERSYNC_ENV=test"):
        Settings.from_env(environ={"MEMBERSYNC_ENV": "test"})


def test_development_outside_the_suite_says_so_once_per_process(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(TEST_SUITE_MARKER)
    monkeypatch.setattr(settings_module, "_development_warned", False)
    Settings.from_env(environ={"MEMBERSYNC_ENV": "development"})
    Settings.from_env(environ={"MEMBERSYNC_ENV": "development"})
    Settings.from_env(environ={"MEMBERSYNC_ENV": "production"})
    err = capsys.readouterr().err
    assert err.count("WARNING: MEMBERSYNC_ENV=development") == 1
    assert "ops/ops" in err and "public SECRET_KEY" in err


@given(
    word=st.sampled_from(["password", "admin", "ops", "letmein", "welcome", "ops-lead", "membersync"]),
    before=st.text(alphabet="0123456789!@#$%&*-_. ", max_size=6),
    after=st.text(alphabet="0123456789!@#$%&*-_. ", min_size=1, max_size=12),
    repeats=st.integers(min_value=1, max_value=4),
    upper=st.booleans(),
)
def test_a_guessable_word_with_digits_or_symbols_around_it_never_passes(
    word: str, before: str, after: str, repeats: int, upper: bool
) -> None:
    password = before + (word.upper() if upper else word) * repeats + after
    with pytest.raises(ConfigError, match=r"^OPS_PASSWORD "):
        Settings.from_env(environ={**STRONG, "OPS_PASSWORD": password})


def test_keys_made_as_the_message_says_are_accepted() -> None:
    # `openssl rand -hex 32`, `-hex 16` (the shortest accepted) and a URL-safe token.
    keys = [secrets.token_hex(32) for _ in range(100)] + [secrets.token_hex(16) for _ in range(100)]
    keys += [secrets.token_urlsafe(32) for _ in range(100)]
    for key in keys:
        assert Settings.from_env(environ={**STRONG, "SECRET_KEY": key}).signing_key == key
