"""The pages behind the links we mail: `/confirm/<token>` and `/unsubscribe/<token>`.

The signed token is the capability (registrations.confirmations): whoever holds the link may answer,
so the pages show no personal data (a link can be forwarded) and need no session or CSRF token (a
mail client's one-click unsubscribe carries no cookies). GET only shows the question, because mail
scanners fetch every link; the page's POST decides and commits, and the services' database publishes
the outbox row the decision queued after that commit (a broker that is down leaves it to the relay).
Every kind of bad link (damaged, forged, signed with another key, too old, for another action, naming
nothing) gets the same 404 page, and the public per-client rate limit makes guessing expensive.
"""

from __future__ import annotations

import email.utils
import logging
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Response, abort, render_template, request, url_for
from sqlalchemy.orm import Session
from werkzeug.exceptions import HTTPException

from app.form import SECURITY_HEADERS as FORM_SECURITY_HEADERS
from app.i18n import (
    CONFIRMATION_OUTCOMES,
    CONFIRMATION_QUESTIONS,
    CONFIRMATION_TEXT,
    LANGUAGE_NAMES,
    LANGUAGES,
    OTHER_LANGUAGE,
    choose_language,
)
from app.limits import public_intake
from app.services import services
from config.settings import Settings
from connectors.mailer.client import sender_domain
from registrations.confirmations import (
    CONFIRM,
    EXPIRED,
    MARKETING,
    PROFILE,
    REQUESTED,
    UNSUBSCRIBE,
    WITHDRAWN,
    InvalidLink,
    decide,
    read,
    requested,
    withdraw,
)
from registrations.models import Confirmation, Registration, utcnow

log = logging.getLogger(__name__)

blueprint = Blueprint("confirm", __name__)

SECURITY_HEADERS = {
    **FORM_SECURITY_HEADERS,
    # The token is in the URL: it must not leak to another site in a Referer, sit in a cache, or be
    # indexed.
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Robots-Tag": "noindex",
}
# What an itsdangerous token is made of; ours are about 100 characters. Anything else is refused
# before it is parsed.
TOKEN = re.compile(r"[A-Za-z0-9_.\-]{1,512}")
ANSWERS = {"yes": True, "no": False}
# RFC 8058: the body a mail client POSTs for a one-click unsubscribe.
ONE_CLICK_FIELD, ONE_CLICK_VALUE = "List-Unsubscribe", "One-Click"


@dataclass(frozen=True)
class Button:
    label: str
    name: str | None = None
    value: str | None = None
    secondary: bool = False


@dataclass
class Page:
    """What one page shows, gathered while the session is open and rendered after the commit."""

    language: str
    title: str
    message: str = ""
    question: str | None = None
    notes: list[str] = field(default_factory=list)
    buttons: list[Button] = field(default_factory=list)


@blueprint.after_request
def _security_headers(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    response.vary.add("Accept-Language")
    return response


@blueprint.get("/confirm/<token>", merge_slashes=False)
@public_intake
def confirm_page(token: str) -> tuple[str, int]:
    """The question with its buttons, or what was decided, or that it expired. Changes nothing."""
    confirmation_id = _read(token, CONFIRM)
    with services().database.session() as session:
        confirmation, registration = _load(session, confirmation_id)
        page = _confirmation_page(session, confirmation, registration)
    return _render(page, token), 200


@blueprint.post("/confirm/<token>", merge_slashes=False)
@public_intake
def confirm_answer(token: str) -> tuple[str, int]:
    """The owner's answer (`answer=yes|no`): decided, committed, published; a second one changes nothing."""
    confirmation_id = _read(token, CONFIRM)
    answer = request.form.get("answer", "")
    if answer not in ANSWERS:
        abort(400)
    with services().database.session() as session:
        try:
            decided = decide(session, confirmation_id, accept=ANSWERS[answer])
        except InvalidLink:
            abort(404)
        confirmation, registration = _load(session, confirmation_id)
        language = _language(registration)
        if decided.state == EXPIRED:
            title = "expired_title"
        else:
            title = "done_title" if decided.changed else "decided_title"
        page = _outcome_page(language, title, decided.kind, decided.state)
    log.info("confirmation %s (%s) answered: %s", confirmation.id, decided.kind, decided.state)
    return _render(page, token), 200


@blueprint.get("/unsubscribe/<token>", merge_slashes=False)
@public_intake
def unsubscribe_page(token: str) -> tuple[str, int]:
    """One button that stops news by e-mail. Changes nothing."""
    confirmation_id = _read(token, UNSUBSCRIBE)
    with services().database.session() as session:
        confirmation, registration = _load(session, confirmation_id)
        if confirmation.kind != MARKETING:
            abort(404)
        language = _language(registration)
    words = CONFIRMATION_TEXT[language]
    page = Page(
        language,
        title=words["unsubscribe_title"],
        question=words["unsubscribe_question"].format(shop=shop_name(services().settings)),
        buttons=[Button(words["unsubscribe_button"])],
    )
    return _render(page, token), 200


@blueprint.post("/unsubscribe/<token>", merge_slashes=False)
@public_intake
def unsubscribe(token: str) -> tuple[str, int] | Response:
    """Withdraw the address's consent everywhere; a mail client's one-click POST gets a short answer."""
    confirmation_id = _read(token, UNSUBSCRIBE)
    with services().database.session() as session:
        try:
            decided = withdraw(session, confirmation_id)
        except InvalidLink:
            abort(404)
        _confirmation, registration = _load(session, confirmation_id)
        language = _language(registration)
    log.info("confirmation %s: marketing consent withdrawn (changed=%s)", confirmation_id, decided.changed)
    if request.form.get(ONE_CLICK_FIELD) == ONE_CLICK_VALUE:
        return Response("Unsubscribed.\n", status=200, mimetype="text/plain")
    page = _outcome_page(language, "unsubscribed_title", MARKETING, WITHDRAWN)
    return _render(page, token), 200


# The errors a request can meet before or inside a view, each a page in the visitor's language.
PROBLEMS = {400: "bad_request_body", 413: "bad_request_body", 429: "rate_limited_body"}


@blueprint.errorhandler(404)
def _invalid_link(_error: HTTPException) -> tuple[str, int]:
    language = _visitor_language()
    words = CONFIRMATION_TEXT[language]
    return _render(Page(language, words["invalid_title"], words["invalid_body"])), 404


@blueprint.errorhandler(400)
@blueprint.errorhandler(413)
@blueprint.errorhandler(429)
def _problem(error: HTTPException) -> tuple[str, int]:
    status = error.code or 400
    language = _visitor_language()
    words = CONFIRMATION_TEXT[language]
    return _render(Page(language, words["problem_title"], words[PROBLEMS[status]])), status


def shop_name(settings: Settings) -> str:
    """The shop as its mails sign: MAIL_FROM's display name, else its domain."""
    display_name, _ = email.utils.parseaddr(settings.mail_from)
    if display_name:
        return display_name
    try:
        return sender_domain(settings.mail_from)
    except ValueError:
        return urlsplit(settings.public_url or "").hostname or ""


def _read(token: str, action: str) -> str:
    """The confirmation id of a genuine token for `action`; 404 for anything else."""
    if not TOKEN.fullmatch(token):
        abort(404)
    try:
        return read(services().settings, token, action)
    except InvalidLink:
        abort(404)


def _load(session: Session, confirmation_id: str) -> tuple[Confirmation, Registration]:
    confirmation = session.get(Confirmation, confirmation_id)
    if confirmation is None:
        abort(404)  # a genuine link whose registration was erased since
    registration = session.get(Registration, confirmation.registration_id)
    if registration is None:
        abort(404)
    return confirmation, registration


def _confirmation_page(session: Session, confirmation: Confirmation, registration: Registration) -> Page:
    language = _language(registration)
    if confirmation.state == REQUESTED and confirmation.expires_at <= utcnow():
        # Past its time but not yet swept by the expiry task: it is expired all the same.
        return _outcome_page(language, "expired_title", confirmation.kind, EXPIRED)
    if confirmation.state != REQUESTED:
        title = "expired_title" if confirmation.state == EXPIRED else "decided_title"
        return _outcome_page(language, title, confirmation.kind, confirmation.state)
    shop = shop_name(services().settings)
    words = CONFIRMATION_QUESTIONS[confirmation.text_version][language]
    notes = [words["hint"]] if "hint" in words else []
    if confirmation.kind == PROFILE and requested(session, registration.id, MARKETING) is not None:
        # decide() confirms that registration's news request with the profile: the page says so.
        notes.append(words["marketing_note"].format(shop=shop))
    buttons = [Button(words["yes"], "answer", "yes")]
    if "no" in words:
        buttons.append(Button(words["no"], "answer", "no", secondary=True))
    return Page(
        language,
        title=words["title"],
        question=words["question"].format(shop=shop),
        notes=notes,
        buttons=buttons,
    )


def _outcome_page(language: str, title: str, kind: str, state: str) -> Page:
    words = CONFIRMATION_TEXT[language]
    message = CONFIRMATION_OUTCOMES[language][(kind, state)]
    return Page(language, words[title], message.format(shop=shop_name(services().settings)))


def _render(page: Page, token: str | None = None) -> str:
    other = OTHER_LANGUAGE[page.language]
    context: dict[str, Any] = {
        "language": page.language,
        "t": CONFIRMATION_TEXT[page.language],
        "other_language": other,
        "other_language_name": LANGUAGE_NAMES[other],
        "switch_url": _page_url(other),
        "title": page.title,
        "message": page.message,
    }
    if page.question is None:
        return render_template("confirm/message.html", **context)
    action = url_for(request.endpoint or "", token=token, lang=page.language)
    return render_template(
        "confirm/question.html",
        question=page.question,
        notes=page.notes,
        buttons=page.buttons,
        action=action,
        **context,
    )


def _page_url(language: str) -> str:
    # The same link in the other language (a GET: it shows the page again and changes nothing).
    if request.url_rule is not None and request.endpoint and request.view_args is not None:
        return url_for(request.endpoint, lang=language, **request.view_args)
    return f"{request.path}?lang={language}"


def _language(registration: Registration) -> str:
    """The page language: an explicit `lang`, else the registration's."""
    requested_language = request.args.get("lang")
    if requested_language in LANGUAGES:
        return str(requested_language)
    return choose_language(registration.locale, request.accept_languages)


def _visitor_language() -> str:
    # No registration to go by: `lang`, else the browser's Accept-Language, else Japanese.
    return choose_language(request.args.get("lang"), request.accept_languages)
