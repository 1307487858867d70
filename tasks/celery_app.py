"""The `celery -A tasks.celery_app` target: the Celery app built from the environment.

Importing it is what makes a process a worker or beat, so this is where their logging is set up:
Celery's `setup_logging` signal, when connected, replaces Celery's own set-up with ours.
"""

from typing import Any

from celery.signals import setup_logging

from config.logs import configure_logging
from tasks.factory import create_celery_app

app = create_celery_app()


@setup_logging.connect
def _logging(loglevel: Any = None, **_kwargs: Any) -> None:
    level = loglevel if isinstance(loglevel, str) else "INFO"
    configure_logging(app.membersync.settings, "worker", level=level.upper())
