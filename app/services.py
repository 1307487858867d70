"""What the request handlers use: settings, and a database that publishes its outbox rows after commit."""

from __future__ import annotations

from celery import Celery
from flask import current_app

from app.publisher import web_publisher
from config.settings import Settings
from registrations.database import Database
from registrations.outbox import publish_after_commit


class Services:
    """The web app's services, built once per app by `create_app`."""

    def __init__(self, settings: Settings, database: Database, celery: Celery) -> None:
        self.settings = settings
        # Every transaction a request commits publishes the outbox rows it wrote, on `celery`'s broker
        # (prebuilt chain messages: app.publisher).
        self.database = publish_after_commit(database, web_publisher(celery))
        self.celery = celery


def services() -> Services:
    """The services of the current Flask app."""
    found: Services = current_app.extensions["membersync"]
    return found
