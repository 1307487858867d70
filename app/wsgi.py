"""The gunicorn target `app.wsgi:application`: the web app built from the environment.

Building it at import makes a bad setting fail the worker at boot (gunicorn then exits) rather
than on the first request. The web process's own log lines go to stderr, JSON in production.
"""

import gc

from app import create_app
from config.logs import configure_logging

application = create_app()
configure_logging(application.extensions["membersync"].settings, "web")

# Everything built so far (modules, the app, SQLAlchemy's mappers and Celery's app) lives as long as
# the process: frozen, the collector stops walking it on every full collection. A profile of the
# intake had these collections as a fifth of its CPU, charged to whatever allocated at that moment.
gc.freeze()
