"""The links we mail: signed, for one action, based on PUBLIC_URL (required outside dev mode)."""

from __future__ import annotations

import secrets

import pytest

from config.settings import ConfigError, Settings
from registrations import confirmations


def production(**env: str) -> Settings:
    return Settings.from_env(
        environ={"MEMBERSYNC_ENV": "production", "SECRET_KEY": secrets.token_hex(32), **env}
    )


def test_a_link_starts_with_public_url_and_names_only_its_confirmation_and_action() -> None:
    settings = production(PUBLIC_URL="https://members.example.jp/")
    url = confirmations.link(settings, "3f0c5d9e-0000-4000-8000-000000000001", confirmations.CONFIRM)

    assert url.startswith("https://members.example.jp/confirm/")
    token = url.rsplit("/", 1)[1]
    assert (
        confirmations.read(settings, token, confirmations.CONFIRM) == "3f0c5d9e-0000-4000-8000-000000000001"
    )
    with pytest.raises(confirmations.InvalidLink):
        confirmations.read(settings, token, confirmations.UNSUBSCRIBE)  # a confirm link unsubscribes nobody
    other_key = production(PUBLIC_URL="https://members.example.jp/")
    with pytest.raises(confirmations.InvalidLink):
        confirmations.read(other_key, token, confirmations.CONFIRM)


def test_outside_dev_mode_a_missing_public_url_is_an_error_naming_it() -> None:
    with pytest.raises(ConfigError, match="PUBLIC_URL"):
        production().public_base_url  # noqa: B018
    dev = Settings.from_env(environ={"MEMBERSYNC_ENV": "development", "PORT": "8123"})
    assert dev.public_base_url == "http://127.0.0.1:8123"
