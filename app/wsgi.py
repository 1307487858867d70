"""The gunicorn target `app.wsgi:application`: the web app built from the environment.

Building it at import makes a bad setting fail the worker at boot (gunicorn then exits) rather
than on the first request. The web process's own log lines go to stderr, JSON in production.
"""

from app import create_app
from config.logs import configure_logging

application = create_app()
configure_logging(application.extensions["membersync"].settings, "web")
