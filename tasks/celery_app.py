"""The `celery -A tasks.celery_app` target: the Celery app built from the environment."""

from tasks.factory import create_celery_app

app = create_celery_app()
