"""The HTML registration form: `GET /`, `POST /register`, `GET /thanks/<id>`; works without JavaScript.

Every registration still goes through `app.intake.submit` (source "form"), so the form and the JSON
API accept exactly the same people. What the form adds: CSRF protection, a honeypot for bots, the
page language (Japanese by default) and validation messages placed next to the fields.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Response, redirect, render_template, request, url_for
from marshmallow import ValidationError
from sqlalchemy.exc import InterfaceError, OperationalError
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as BaseResponse

from app import csrf
from app.errors import DATABASE_RETRY_AFTER_SECONDS, database_unavailable
from app.i18n import (
    GENDER_CHOICES,
    HINTS,
    LABELS,
    LANGUAGE_NAMES,
    OTHER_LANGUAGE,
    TEXT,
    choose_language,
    localise_errors,
)
from app.intake import IdempotencyConflict, submit
from app.limits import public_intake
from app.schemas import FIELD_LIMITS, OLDEST_BIRTH_DATE, load_registration
from app.services import services
from app.text import text_problem

log = logging.getLogger(__name__)

blueprint = Blueprint("form", __name__)

# A field no person sees or hears; only a bot fills it in. The name means nothing to browser
# autofill, so a person's browser never fills it for them either.
HONEYPOT_FIELD = "comment"
# One id per rendered form, sent back as the Idempotency-Key: a double click registers once.
SUBMISSION_FIELD = "submission_id"

SECURITY_HEADERS = {
    # No scripts at all: the form needs none, so an injected one has nowhere to run.
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    # The pages carry a CSRF token and, after a failed post, what the person typed.
    "Cache-Control": "no-store",
}


@dataclass(frozen=True)
class FormField:
    """One input of the form, named as in RegistrationSchema."""

    name: str
    kind: str = "text"  # an <input type>, or "select" / "checkbox"
    autocomplete: str | None = None
    required: bool = False
    maxlength: int | None = None
    inputmode: str | None = None


@dataclass(frozen=True)
class Section:
    """Fields that belong together; a legend makes them a fieldset."""

    legend: str | None
    fields: tuple[FormField, ...]


def _limit(name: str) -> int:
    # A browser counts UTF-16 code units before our normalisation, so the schema still has the last
    # word; maxlength only stops a person typing far past the limit.
    return FIELD_LIMITS[name].max_length


SECTIONS: tuple[Section, ...] = (
    Section(None, (FormField("email", "email", "email", required=True, maxlength=_limit("email")),)),
    Section(
        "name_legend",
        (
            FormField("last_name", autocomplete="family-name", required=True, maxlength=_limit("last_name")),
            FormField("first_name", autocomplete="given-name", required=True, maxlength=_limit("first_name")),
        ),
    ),
    Section(
        # No autocomplete token exists for a name's reading; the browser must not offer the kanji.
        "kana_legend",
        (
            FormField("last_name_kana", maxlength=_limit("last_name_kana")),
            FormField("first_name_kana", maxlength=_limit("first_name_kana")),
        ),
    ),
    Section(
        None,
        (
            FormField("phone", "tel", "tel", maxlength=_limit("phone")),
            FormField("birth_date", "date", "bday"),
            FormField("gender", "select", "sex"),
        ),
    ),
    Section(
        "address_legend",
        (
            FormField(
                "postal_code",
                autocomplete="postal-code",
                maxlength=_limit("postal_code"),
                inputmode="numeric",
            ),
            FormField("address", autocomplete="street-address", maxlength=_limit("address")),
        ),
    ),
    Section("marketing_legend", (FormField("accepts_marketing", "checkbox"),)),
)
FIELDS: tuple[FormField, ...] = tuple(field for section in SECTIONS for field in section.fields)
FIELD_NAMES = tuple(field.name for field in FIELDS)


@blueprint.after_request
def _security_headers(response: Response) -> Response:
    for header, value in SECURITY_HEADERS.items():
        response.headers.setdefault(header, value)
    response.vary.add("Accept-Language")
    return response


@blueprint.get("/")
def registration_form() -> tuple[str, int]:
    """The empty form in the page language (`?lang=`, else Accept-Language, else Japanese)."""
    return render_form(page_language(request.args.get("lang"))), 200


@blueprint.post("/register")
@public_intake
def register() -> BaseResponse | tuple[str, int]:
    """Accept the posted form: 303 to the thank-you page, or the form again with its errors (422)."""
    posted = request.form
    language = page_language(posted.get("locale"))
    if not csrf.token_is_valid(posted.get(csrf.FIELD_NAME)):
        log.warning("form post refused: CSRF token missing or invalid")
        return render_problem(language, "csrf_problem"), 400
    payload = registration_payload(posted, language)
    try:
        if posted.get(HONEYPOT_FIELD, ""):
            # Validate like a person's post so the answer looks the same, then write nothing.
            load_registration(payload)
            log.info("form post with the honeypot filled: answered as accepted, nothing written")
            registration_id = str(uuid.uuid4())
        else:
            registration_id = accept(payload, submission_key(posted.get(SUBMISSION_FIELD)))
    except ValidationError as error:
        errors = localise_errors(error.messages, language)
        return render_form(language, values=posted, errors=errors), 422
    thanks = url_for("form.thanks", registration_id=registration_id, lang=language)
    return redirect(thanks, code=303)


@blueprint.get("/thanks/<registration_id>")
def thanks(registration_id: str) -> tuple[str, int]:
    """The thank-you page: the reference number only, no personal data.

    It never reads the database, so the page a bot gets for a honeypot post looks like the real one.
    """
    language = page_language(request.args.get("lang"))
    try:
        reference = str(uuid.UUID(registration_id))
    except ValueError:
        return render_problem(language, "not_found_problem"), 404
    # Promise the welcome email only when it is switched on (SYNC_WELCOME_EMAIL_ENABLED).
    welcome_email = services().settings.sync_welcome_email_enabled
    page = render_template(
        "form/thanks.html", reference=reference, welcome_email=welcome_email, **page_context(language)
    )
    return page, 200


# The errors a post can meet before the view decides, each explained in the page language.
PROBLEMS = {400: "bad_request_problem", 413: "too_large_problem", 429: "rate_limited_problem"}


@blueprint.errorhandler(400)
@blueprint.errorhandler(413)
@blueprint.errorhandler(429)
def _form_problem(error: HTTPException) -> tuple[str, int]:
    status = error.code or 400
    language = _language_of_refused_post(status)
    return render_problem(language, PROBLEMS.get(status, "bad_request_problem")), status


@blueprint.errorhandler(OperationalError)
@blueprint.errorhandler(InterfaceError)
def _form_database_unavailable(error: Exception) -> tuple[str, int, dict[str, str]]:
    """The database refused the post for now (SQLite's busy timeout): nothing was stored; the page
    says to send it again shortly (the same submission id keeps a second send to one registration)."""
    database_unavailable(error)
    language = _language_of_refused_post(503)
    page = render_problem(language, "busy_problem")
    return page, 503, {"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)}


def _language_of_refused_post(status: int) -> str:
    # A body that is too large must stay unread; one that is malformed may fail to parse again.
    requested = request.args.get("lang")
    if status != 413:
        with contextlib.suppress(HTTPException):
            requested = request.form.get("locale", requested)
    return page_language(requested)


def accept(payload: Mapping[str, Any], key: str | None) -> str:
    """Submit the registration; returns its id."""
    try:
        acceptance = submit(dict(payload), idempotency_key=key, source="form")
    except IdempotencyConflict:
        # The person went back, changed the form and sent it again: that is a new registration.
        acceptance = submit(dict(payload), source="form")
    log.info("form registration %s accepted (created=%s)", acceptance.registration.id, acceptance.created)
    return acceptance.registration.id


def submission_key(submission_id: str | None) -> str | None:
    """The Idempotency-Key for a form's submission id, or None when it is not one we issued."""
    try:
        return f"form:{uuid.UUID(submission_id or '')}"
    except ValueError:
        return None


def registration_payload(posted: MultiDict[str, str], language: str) -> dict[str, Any]:
    """The registration as RegistrationSchema expects it, from the posted form.

    Blank fields are left out (an optional one is then simply not given, a required one is
    "missing"); the checkbox becomes a boolean; the locale is the page's, never the raw post, so a
    hidden field can never produce an error the person cannot fix.
    """
    payload: dict[str, Any] = {}
    for name in FIELD_NAMES:
        if name == "accepts_marketing":
            continue
        value = posted.get(name, "")
        # Blank means only spaces; U+0085 or U+2028 are spaces to Python but refused in any field,
        # so a value holding one is passed on for the schema to name.
        if value.strip() or text_problem(value) is not None:
            payload[name] = value
    payload["accepts_marketing"] = name_is_checked(posted, "accepts_marketing")
    payload["locale"] = language
    return payload


def name_is_checked(posted: MultiDict[str, str], name: str) -> bool:
    # Browsers send a checked box as name=value and leave an unchecked one out entirely.
    return name in posted


def page_language(requested: str | None) -> str:
    return choose_language(requested, request.accept_languages)


def page_context(language: str) -> dict[str, Any]:
    """What every form page needs: the words, the language and the switch to the other one."""
    other = OTHER_LANGUAGE[language]
    return {
        "language": language,
        "t": TEXT[language],
        "other_language": other,
        "other_language_name": LANGUAGE_NAMES[other],
        "switch_url": _switch_url(other),
    }


def _switch_url(other: str) -> str:
    # The thank-you page switches to itself; everything else leads to a fresh form, never back to
    # the URL of a post.
    if request.endpoint == "form.thanks" and request.view_args:
        return url_for("form.thanks", lang=other, **request.view_args)
    return url_for("form.registration_form", lang=other)


def render_form(
    language: str,
    *,
    values: Mapping[str, str] | None = None,
    errors: Mapping[str, list[str]] | None = None,
) -> str:
    """The form with the person's values (escaped by Jinja) and the errors next to their fields."""
    values = values or {}
    errors = dict(errors or {})
    # The summary lists the errors in the order of the fields on the page.
    ordered = {name: errors.pop(name) for name in FIELD_NAMES if name in errors}
    ordered.update(errors)
    posted_submission = values.get(SUBMISSION_FIELD)
    return render_template(
        "form/form.html",
        sections=SECTIONS,
        labels=LABELS[language],
        hints=HINTS[language],
        genders=GENDER_CHOICES[language],
        values=values,
        marketing_checked="accepts_marketing" in values,
        errors=ordered,
        csrf_token=csrf.issue_token(),
        # A failed post keeps its id: nothing was written under it, and a double click stays one.
        submission_id=posted_submission if submission_key(posted_submission) else str(uuid.uuid4()),
        honeypot_field=HONEYPOT_FIELD,
        oldest_birth_date=OLDEST_BIRTH_DATE.isoformat(),
        **page_context(language),
    )


def render_problem(language: str, problem: str) -> str:
    """A page that says what went wrong and leads back to the form."""
    return render_template("form/problem.html", message=TEXT[language][problem], **page_context(language))
