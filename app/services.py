"""What the request handlers use: settings, database, and a publisher for the outbox."""

from __future__ import annotations

from celery import Celery
from flask import current_app

from config.settings import Settings
from registrations.database import Database
from registrations.outbox import Publisher
from tasks.chains import chain_publisher


class Services:
    """The web app's services, built once per app by `create_app`."""

    def __init__(self, settings: Settings, database: Database, celery: Celery) -> None:
        self.settings = settings
        self.database = database
        self.celery = celery
        self.publisher: Publisher = chain_publisher(celery)


def services() -> Services:
    """The services of the current Flask app."""
    found: Services = current_app.extensions["membersync"]
    return found
