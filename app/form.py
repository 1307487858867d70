"""The HTML registration form at `/` (placeholder until the form lands)."""

from __future__ import annotations

from flask import Blueprint

blueprint = Blueprint("form", __name__)
