"""`GET/POST /ops/login` and `POST /ops/logout`."""

from __future__ import annotations

import logging

from flask import flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from app.ops import audit
from app.ops.auth import check_credentials, current_operator, sign_in, sign_out
from app.ops.blueprint import blueprint, console_path, render_problem

log = logging.getLogger(__name__)


@blueprint.get("/login")
def login_form() -> BaseResponse | str:
    """The sign-in form (an operator already signed in goes straight on)."""
    target = safe_next(request.args.get("next"))
    if current_operator() is not None:
        return redirect(target)
    return render_template("ops/login.html", next=target)


@blueprint.post("/login")
def login() -> BaseResponse | tuple[str, int] | tuple[str, int, dict[str, str]]:
    """Check the posted credentials: 303 on to the console, 401 and the form again, or 429 once
    this address or this username has failed too often."""
    username = request.form.get("username", "")
    password = request.form.get("password", "")
    target = safe_next(request.form.get("next"))
    verdict = check_credentials(username, password)
    if verdict.retry_after is not None:
        log.warning("ops sign-in throttled")
        return render_problem(429), 429, {"Retry-After": str(verdict.retry_after)}
    if not verdict.allowed:
        audit.record("login_refused", operator=username)
        log.warning("ops sign-in refused")
        # The same words whatever was wrong: nothing tells which half of the pair was right.
        page = render_template("ops/login.html", next=target, refused=True)
        return page, 401
    sign_in(username)
    audit.record("login", operator=username)
    return redirect(target, code=303)


@blueprint.post("/logout")
def logout() -> BaseResponse:
    """Sign out and return to the sign-in form."""
    operator = current_operator()
    if operator is not None:
        audit.record("logout", operator=operator)
    sign_out()
    flash("Signed out.", "info")
    return redirect(url_for("ops.login_form"), code=303)


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path inside the console, never another site."""
    return console_path(target) or url_for("ops.overview")
