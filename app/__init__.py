"""The Flask web app: registration API and form, health, OpenAPI; built by `create_app`."""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery
from flask import Flask

from app import api, confirm, errors, form, health, limits, metrics, openapi, webhooks
from app import ops as ops_console
from app import shopify_webhooks as shopify_webhooks  # its route joins the webhooks blueprint
from app.request_body import CappedRequest
from app.services import Services
from config.observability import init_sentry, install_log_redaction
from config.settings import Settings, load_settings
from registrations.database import Database
from tasks.factory import create_celery_app

log = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None,
    *,
    database: Database | None = None,
    celery: Celery | None = None,
    test_config: dict[str, Any] | None = None,
) -> Flask:
    """Build the web application; tests pass their own settings, database and Celery app."""
    settings = settings or load_settings()
    init_sentry(settings)
    install_log_redaction()
    database = database or Database.from_settings(settings)
    celery = celery or create_celery_app(settings, database, fail_fast=True)

    flask_app = Flask(__name__)
    # MAX_CONTENT_LENGTH below holds for chunked bodies too (a 413, never a body cut short).
    flask_app.request_class = CappedRequest
    flask_app.config.update(
        MAX_CONTENT_LENGTH=settings.max_request_bytes,
        SECRET_KEY=settings.signing_key,
        JSON_SORT_KEYS=False,
        # A second layer behind the form's CSRF token; HTTPS-only cookies outside dev mode (and
        # the plain-HTTP mode for a trusted local network, PLAIN_HTTP).
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SECURE=settings.session_cookie_secure,
    )
    if test_config:
        flask_app.config.update(test_config)
    flask_app.extensions["membersync"] = Services(settings, database, celery)

    if settings.trusted_proxy_count:
        from werkzeug.middleware.proxy_fix import ProxyFix

        flask_app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            flask_app.wsgi_app, x_for=settings.trusted_proxy_count, x_proto=settings.trusted_proxy_count
        )
    metrics.init_app(flask_app)  # before the limiter, so refused posts are counted too
    limits.init_app(flask_app, settings)
    errors.init_app(flask_app)
    flask_app.register_blueprint(api.blueprint)
    flask_app.register_blueprint(health.blueprint)
    flask_app.register_blueprint(metrics.blueprint)
    flask_app.register_blueprint(openapi.blueprint)
    flask_app.register_blueprint(form.blueprint)
    flask_app.register_blueprint(confirm.blueprint)
    ops_console.init_app(flask_app, settings)
    flask_app.register_blueprint(webhooks.blueprint)
    return flask_app
