"""The proxy's plain-HTTP mode (docs/deployment.md): chosen with PLAIN_HTTP=true and an http://
PUBLIC_URL together, never stumbled into; it is the one production setting that drops Secure from
the session cookie, which browsers would otherwise never send back over http://."""

from __future__ import annotations

import pytest

from app import create_app
from config.settings import ConfigError, Settings
from tasks.factory import create_celery_app

SECRETS = {
    "OPS_USERNAME": "ops-lead",
    "OPS_PASSWORD": "vX9#kLm2-qRt7wZp",
    "SECRET_KEY": "5f0c2b8e9a41d7c3b6e0f18a2d9c4b7e1a3f5d8c",
    "MEMBER_CODE_KEY": "c7d1e9a3b5f2c8d0e4a6b1f9d3c5e7a2b4d6f8a0",
}


def production(**env: str) -> Settings:
    return Settings.from_env(environ={**SECRETS, "DATABASE_URL": "sqlite://", **env})


def test_production_cookies_are_secure_over_https() -> None:
    settings = production(PUBLIC_URL="https://members.example.jp")
    assert settings.session_cookie_secure
    app = create_app(settings, celery=create_celery_app(settings))
    assert app.config["SESSION_COOKIE_SECURE"] is True


def test_an_http_public_url_without_plain_http_is_refused() -> None:
    with pytest.raises(ConfigError, match="PLAIN_HTTP=true"):
        production(PUBLIC_URL="http://192.168.1.20")


def test_plain_http_with_an_https_public_url_is_refused() -> None:
    with pytest.raises(ConfigError, match="unset PLAIN_HTTP"):
        production(PUBLIC_URL="https://members.example.jp", PLAIN_HTTP="true")


def test_the_plain_http_mode_sends_cookies_without_secure() -> None:
    settings = production(PUBLIC_URL="http://192.168.1.20", PLAIN_HTTP="true")
    assert not settings.session_cookie_secure
    app = create_app(settings, celery=create_celery_app(settings))
    assert app.config["SESSION_COOKIE_SECURE"] is False


def test_dev_mode_is_untouched() -> None:
    settings = Settings.from_env(environ={"MEMBERSYNC_ENV": "test", "DATABASE_URL": "sqlite://"})
    assert not settings.session_cookie_secure
