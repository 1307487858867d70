"""The ops console's blueprint and what every one of its pages shares: the sign-in guard, CSRF on
every POST, security headers, the problem pages and the template helpers."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from flask import Blueprint, Response, redirect, render_template, request, url_for
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as BaseResponse

from app import csrf
from app.form import SECURITY_HEADERS
from app.ops.auth import current_operator
from app.ops.timefmt import shop_time
from app.services import services
from app.text import text_problem
from registrations.states import DeadLetterStatus

log = logging.getLogger(__name__)

blueprint = Blueprint("ops", __name__, url_prefix="/ops")

# Pages that anyone may see: the sign-in itself.
PUBLIC_ENDPOINTS = frozenset({"ops.login_form", "ops.login"})

PROBLEMS = {
    400: ("Request refused", "The form was stale or incomplete. Go back, reload the page and try again."),
    401: ("Sign-in required", "Sign in to use the ops console."),
    404: ("Not found", "There is nothing at this address."),
    405: ("Not allowed", "This address does not take that kind of request."),
    429: ("Too many attempts", "Too many failed sign-in attempts. Wait a minute and try again."),
}


@blueprint.before_request
def _guard() -> BaseResponse | tuple[str, int] | None:
    """Signed-in operators only (except the sign-in page); every POST carries the session's CSRF token."""
    if request.endpoint not in PUBLIC_ENDPOINTS and current_operator() is None:
        if request.method in {"GET", "HEAD"}:
            return redirect(url_for("ops.login_form", next=request.full_path.rstrip("?")))
        return render_problem(401), 401
    if request.method == "POST" and not csrf.token_is_valid(request.form.get(csrf.FIELD_NAME)):
        log.warning("ops post to %s refused: CSRF token missing or invalid", request.endpoint)
        return render_problem(400), 400
    return None


@blueprint.after_request
def _security_headers(response: Response) -> Response:
    # Registrants' personal data is shown here: never cached, never framed, no scripts at all.
    for header, value in SECURITY_HEADERS.items():
        response.headers.setdefault(header, value)
    return response


@blueprint.errorhandler(400)
@blueprint.errorhandler(401)
@blueprint.errorhandler(404)
@blueprint.errorhandler(405)
@blueprint.errorhandler(429)
def _problem(error: HTTPException) -> tuple[str, int]:
    status = error.code or 400
    return render_problem(status), status


def console_path(target: str | None) -> str | None:
    """`target` when it is a path inside the console (a safe place to send someone back to), else None.

    Never a target with a backslash (browsers read it as a slash), white space, or a character no text
    field accepts: CR/LF in a `next` would otherwise reach the Location header (a 500, or a header
    injected on a server that lets it through).
    """
    if not target or not (target == "/ops" or target.startswith("/ops/")):
        return None
    if "\\" in target or any(character.isspace() for character in target) or text_problem(target):
        return None
    return target


def render_problem(status: int) -> str:
    """A page that says what went wrong, in the console's layout, revealing nothing more."""
    title, message = PROBLEMS.get(status, PROBLEMS[400])
    return render_template("ops/problem.html", title=title, message=message)


@blueprint.app_template_filter("ops_time")
def _ops_time(moment: datetime | None) -> str:
    # In the shop's time zone, with its abbreviation and offset (app.ops.timefmt).
    return shop_time(moment, services().settings.shop_timezone)


@blueprint.app_template_filter("ops_duration")
def _ops_duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


@blueprint.context_processor
def _page_context() -> dict[str, Any]:
    # The pages compare with the vocabulary's members, never with bare state strings.
    return {
        "operator": current_operator(),
        "csrf_token": csrf.issue_token(),
        "DeadLetterStatus": DeadLetterStatus,
    }
