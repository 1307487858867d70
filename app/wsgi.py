"""The gunicorn target `app.wsgi:application`: the web app built from the environment.

Building it at import makes a bad setting fail the worker at boot (gunicorn then exits) rather
than on the first request.
"""

from app import create_app

application = create_app()
