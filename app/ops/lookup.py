"""Finding a registration (by id, by e-mail, by dead-letter number) and a registration's own page.

An e-mail search is a POST, so the address never lands in a URL, a browser history or an access
log. The registrant's personal data is shown on the registration's page only, and never logged.
"""

from __future__ import annotations

from flask import abort, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from app.ops.blueprint import blueprint
from app.ops.inputs import field_problem, record_number
from app.schemas import FIELD_LIMITS
from app.services import services
from config.email_address import canonical_email
from registrations.models import DeadLetter
from registrations.ops_queries import dead_letters_of, registration_with_steps, registrations_by_email
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
    """The registrations made with the posted address: straight to it when there is exactly one."""
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
        page = render_template("ops/find.html", matches=found, email_error=None if found else EMAIL_NOT_FOUND)
    return page, 200 if found else 404


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
            dead_letters=letters,
            open_letter_ids=[letter.id for letter in letters if letter.status == DeadLetterStatus.OPEN],
            flower_url=flower,
        )
