"""The baseline of `membersync bench intake`: a bare Flask app answering 202, served by gunicorn with the
Procfile's web settings (`benchmarks.bare_intake:application` in place of `app.wsgi:application`).

It reads the body and answers a small JSON document, as the intake does, and nothing else: no
validation, no database, no broker. What the real intake achieves against it is the intake's own cost.
"""

from __future__ import annotations

import uuid

from flask import Flask, jsonify, request
from flask.typing import ResponseReturnValue

application = Flask(__name__)


@application.get("/healthz")
def healthz() -> ResponseReturnValue:
    return jsonify({"status": "ok"}), 200


@application.post("/api/registrations")
def accept() -> ResponseReturnValue:
    request.get_data(cache=False)
    return jsonify({"id": uuid.uuid4().hex, "status": "received"}), 202
