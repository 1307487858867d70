"""The ops console at `/ops`: sign-in, overview, finding a registration, dead letters (replay and
discard, one or many) and the audit trail. Server-rendered; works without JavaScript."""

from __future__ import annotations

from flask import Flask

# The view modules attach their routes to the blueprint when imported.
from app.ops import actions, audit, auth, dead_letters, language, lookup, overview, signin  # noqa: F401
from app.ops.blueprint import blueprint
from config.settings import Settings

__all__ = ["blueprint", "init_app"]


def init_app(flask_app: Flask, settings: Settings) -> None:
    """Mount the console; outside dev mode without OPS_USERNAME / OPS_PASSWORD, refuse to start."""
    settings.ops_credentials()  # raises ConfigError: the console is never served without a login
    auth.init_app(flask_app, settings)
    flask_app.register_blueprint(blueprint)
