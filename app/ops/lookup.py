"""Finding a person (one search box: name, kana, e-mail, phone, member number, vendor ids, an id or
its prefix, a dead letter's number) and a registration's own page.

The search is a POST, so what was typed never lands in a URL, a browser history or an access log.
The registrant's personal data is shown on the registration's page (and a search's list shows the
names it found); it is never logged.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from flask import abort, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from app.ops.blueprint import blueprint
from app.ops.inputs import field_problem, record_number
from app.ops.language import console_language, translate
from app.ops.vendor_links import vendor_admin_url
from app.schemas import FIELD_LIMITS
from app.services import services
from config.email_address import canonical_email
from registrations.models import DeadLetter
from registrations.ops_queries import dead_letters_of, registration_with_steps, registrations_by_email
from registrations.people_search import (
    BY_EMAIL,
    MAX_QUERY_LENGTH,
    Match,
    SearchResult,
    member_numbers,
    search,
)
from registrations.states import DeadLetterStatus

ID_NOT_FOUND = "No registration or dead letter has that id."
EMAIL_MISSING = "Enter an e-mail address."
EMAIL_NOT_FOUND = "No registration was made with that address."


@blueprint.get("/find")
def find() -> BaseResponse | tuple[str, int]:
    """The search form; `?id=` goes to that registration (or dead letter, for a number)."""
    typed = request.args.get("id", "")
    problem = field_problem("Id", typed)
    if problem is not None:
        return render_template("ops/find.html", id_error=problem), 422
    wanted = typed.strip().lstrip("#")
    if not wanted:
        return render_template("ops/find.html"), 200
    number = record_number(wanted)
    with services().database.session() as session:
        if number is not None and session.get(DeadLetter, number) is not None:
            return redirect(url_for("ops.dead_letter", dead_letter_id=number))
        registration = registration_with_steps(session, wanted)
        if registration is not None:
            return redirect(url_for("ops.registration", registration_id=registration.id))
    return render_template("ops/find.html", id_error=ID_NOT_FOUND), 404


@blueprint.post("/find")
def find_by_email() -> BaseResponse | tuple[str, int]:
    """The one search box (`q`: see registrations.people_search), or the older form's `email`."""
    if "q" in request.form:
        return _search(request.form["q"])
    address = request.form.get("email", "")
    problem = field_problem("E-mail address", address)
    if problem is None and not address.strip():
        problem = EMAIL_MISSING
    limit = FIELD_LIMITS["email"]
    if problem is None and limit.size(canonical_email(address)) > limit.max_length:
        # Measured as stored: no registration holds a longer address.
        problem = f"E-mail address: must be at most {limit.max_length} {limit.unit}."
    if problem is not None:
        return render_template("ops/find.html", email_error=problem), 422
    with services().database.session() as session:
        found = registrations_by_email(session, address)
        if len(found) == 1:
            return redirect(url_for("ops.registration", registration_id=found[0].id), code=303)
        page = render_template(
            "ops/find.html",
            result=SearchResult(matches=[Match(registration, [BY_EMAIL]) for registration in found]),
            numbers=member_numbers(session, [registration.id for registration in found]),
            search_error=None if found else EMAIL_NOT_FOUND,
        )
    return page, 200 if found else 404


def _search(typed: str) -> BaseResponse | tuple[str, int]:
    """Straight to the one registration (or dead letter) found; a list of several; 404 for none.

    A POST, and answered with a redirect or a page: what was typed (a name, a phone, a member
    number) never lands in a URL, a browser history or an access log, and is never logged.
    """
    problem = field_problem("Search", typed)
    if problem is None and not typed.strip():
        problem = _("Enter something to search for.")
    if problem is None and len(typed.strip()) > MAX_QUERY_LENGTH:
        problem = _("Search: must be at most {limit} characters.", limit=MAX_QUERY_LENGTH)
    if problem is not None:
        return render_template("ops/find.html", search_error=problem, typed=typed), 422
    with services().database.session() as session:
        result = search(session, typed)
        if result.dead_letter_id is not None and not result.matches:
            return redirect(url_for("ops.dead_letter", dead_letter_id=result.dead_letter_id), code=303)
        if result.dead_letter_id is None and len(result.matches) == 1:
            only = result.matches[0].registration.id
            return redirect(url_for("ops.registration", registration_id=only), code=303)
        found = bool(result.matches) or result.dead_letter_id is not None
        page = render_template(
            "ops/find.html",
            result=result,
            numbers=member_numbers(session, [match.registration.id for match in result.matches]),
            search_error=None if found else _("Nobody matches that search."),
            typed=typed,
        )
    return page, 200 if found else 404


def _(text: str, **values: Any) -> str:
    return translate(text, console_language(), **values)


@blueprint.app_template_global()
def member_numbers_of(registration_ids: Iterable[str | None]) -> dict[str, str]:
    """{registration id: member number} for a page's registrations, in one read (for any template)."""
    with services().database.session() as session:
        return member_numbers(session, list(registration_ids))


@blueprint.app_template_global()
def vendor_url(system: str, external_id: str | None) -> str | None:
    """The vendor's admin page of an external id (app.ops.vendor_links), or None."""
    return vendor_admin_url(system, external_id, services().settings)


@blueprint.get("/registrations/<registration_id>")
def registration(registration_id: str) -> str:
    """One registration: the registrant, each step (state, ids, attempts, error, note, Flower link)."""
    flower = services().settings.flower_base_url
    with services().database.session() as session:
        found = registration_with_steps(session, registration_id)
        if found is None:
            abort(404)
        letters = dead_letters_of(session, found.id)
        return render_template(
            "ops/registration.html",
            registration=found,
            member_number=member_numbers(session, [found.id]).get(found.id),
            dead_letters=letters,
            open_letter_ids=[letter.id for letter in letters if letter.status == DeadLetterStatus.OPEN],
            flower_url=flower,
        )
