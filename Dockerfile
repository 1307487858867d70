# syntax=docker/dockerfile:1
# One image for every process type (web, worker, beat, flower, migrate); docker-compose.yml picks the
# command. The build stage installs the package into a venv, so the runtime stage holds no compiler,
# no source tree and no dev/test extras: what runs is exactly the installed wheel.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /src
COPY . .
RUN /opt/venv/bin/pip install .

FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MEMBERSYNC_ENV=production \
    PORT=8000
# A fixed uid so volume ownership is the same on every host.
RUN groupadd --system --gid 10001 membersync \
    && useradd --system --uid 10001 --gid membersync --home-dir /app --shell /usr/sbin/nologin membersync
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
# ./var holds Flower's state and anything else a process writes; the non-root user must own it.
RUN mkdir -p /app/var /app/metrics && chown membersync:membersync /app/var /app/metrics
USER membersync
EXPOSE 8000
# The slim image has no curl; the standard library is enough. Services other than web override this
# check in docker-compose.yml.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8000'), timeout=4)"]
CMD ["sh", "-c", "exec gunicorn app.wsgi:application --bind 0.0.0.0:${PORT} --workers ${WEB_CONCURRENCY:-2} --threads ${GUNICORN_THREADS:-4} --no-control-socket --access-logfile - --access-logformat '%(h)s %(t)s \"%(m)s %(U)s %(H)s\" %(s)s %(B)s %(M)sms'"]
