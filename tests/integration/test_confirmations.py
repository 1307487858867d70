"""The pages behind the mailed links (`/confirm/<token>`, `/unsubscribe/<token>`) and the expiry task:
GET changes nothing, the POST decides once and queues the follow-up, every bad link is the same 404,
and no page shows who the registrant is."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from itsdangerous.timed import TimestampSigner
from sqlalchemy import select

from app import create_app
from app.i18n import CONFIRMATION_OUTCOMES, CONFIRMATION_QUESTIONS, LANGUAGES
from config.celery import MAINTENANCE_QUEUE, celery_config
from config.settings import Settings
from registrations import confirmations
from registrations.confirmations import (
    CARD,
    CONFIRM,
    MARKETING,
    PROFILE,
    TEXT_VERSIONS,
    UNSUBSCRIBE,
    expire_due,
    latest,
    link,
)
from registrations.database import Database
from registrations.models import Confirmation, OutboxMessage, Registration, utcnow
from tasks.factory import create_celery_app

# Distinctive personal data, so its absence from a page means something.
PERSON = {
    "email": "Kumiko.Tanabe@Example.com",
    "first_name": "Kumiko",
    "last_name": "Tanabe",
    "last_name_kana": "タナベ",
    "first_name_kana": "クミコ",
    "phone": "090-8765-4321",
    "postal_code": "1500001",
    "address": "東京都渋谷区神宮前9-8-7 タナベハイツ",
    "accepts_marketing": True,
    "locale": "en",
}
PERSONAL_TEXTS = (
    "kumiko",
    "tanabe",
    "example.com",
    "タナベ",
    "クミコ",
    "8765",
    "神宮前",
    "150-0001",
    "SMAREGI-CUSTOMER-4711",
)
EXPIRE_TASK = "membersync.confirmations.expire"


def register(client: Any, **overrides: Any) -> str:
    response = client.post("/api/registrations", json={**PERSON, **overrides})
    assert response.status_code == 202, response.get_json()
    registration_id: str = response.get_json()["id"]
    return registration_id


def ask(
    database: Database, settings: Settings, registration_id: str, kind: str, subject: str | None = None
) -> str:
    """The registration's confirmation of `kind`: the intake's, else one asked for now."""
    with database.session() as session:
        existing = latest(session, registration_id, kind)
        if existing is not None:
            return existing.id
        registration = session.get(Registration, registration_id)
        assert registration is not None
        return confirmations.request(session, registration, kind, settings=settings, subject=subject).id


def path(settings: Settings, confirmation_id: str, action: str = CONFIRM) -> str:
    """The path of the mailed link (what the browser asks this app for)."""
    return urlsplit(link(settings, confirmation_id, action)).path


def row(database: Database, confirmation_id: str) -> Confirmation:
    with database.session() as session:
        confirmation = session.get(Confirmation, confirmation_id)
        assert confirmation is not None
        return confirmation


def outbox_ids(database: Database, registration_id: str) -> list[int]:
    with database.session() as session:
        return list(
            session.scalars(
                select(OutboxMessage.id)
                .where(OutboxMessage.registration_id == registration_id)
                .order_by(OutboxMessage.id)
            )
        )


def set_expiry(database: Database, confirmation_id: str, when: datetime) -> None:
    with database.session() as session:
        confirmation = session.get(Confirmation, confirmation_id)
        assert confirmation is not None
        confirmation.expires_at = when


@contextmanager
def signed_ago(seconds: float) -> Iterator[None]:
    """Tokens signed inside the block carry a timestamp `seconds` in the past."""
    original = TimestampSigner.get_timestamp
    TimestampSigner.get_timestamp = lambda self: int(time.time() - seconds)  # type: ignore[method-assign]
    try:
        yield
    finally:
        TimestampSigner.get_timestamp = original  # type: ignore[method-assign]


def text(response: Any) -> str:
    body: str = response.get_data(as_text=True)
    return body


def test_get_shows_the_question_and_changes_nothing(
    client: Any, settings: Settings, database: Database
) -> None:
    registration_id = register(client)
    confirmation_id = ask(database, settings, registration_id, MARKETING)
    before = row(database, confirmation_id)
    queued = outbox_ids(database, registration_id)

    response = client.get(path(settings, confirmation_id))

    assert response.status_code == 200
    page = text(response)
    assert '<html lang="en">' in page  # the registration's locale
    assert "Receive news by e-mail from Membersync?" in page
    assert '<form method="post"' in page
    assert 'name="answer" value="yes"' in page and "Yes, send me news" in page
    assert 'value="no"' not in page  # one button: not answering is the "no"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["Cache-Control"] == "no-store"
    assert "Set-Cookie" not in response.headers  # no session: the token is the capability
    after = row(database, confirmation_id)
    assert (after.state, after.decided_at) == (before.state, before.decided_at) == ("requested", None)
    assert outbox_ids(database, registration_id) == queued
    # The other language is a GET of the same link, and changes nothing either.
    japanese = client.get(path(settings, confirmation_id) + "?lang=ja")
    assert '<html lang="ja">' in text(japanese) and "お知らせをメールで受け取りますか" in text(japanese)
    assert row(database, confirmation_id).state == "requested"


def test_yes_confirms_once_and_queues_the_consent(
    client: Any, settings: Settings, database: Database
) -> None:
    registration_id = register(client)
    confirmation_id = ask(database, settings, registration_id, MARKETING)
    queued = outbox_ids(database, registration_id)

    response = client.post(path(settings, confirmation_id), data={"answer": "yes"})

    assert response.status_code == 200
    assert "Thank you" in text(response)
    assert "You will receive news by e-mail from Membersync" in text(response)
    assert response.headers["Referrer-Policy"] == "no-referrer"
    confirmed = row(database, confirmation_id)
    assert confirmed.state == "confirmed" and confirmed.decided_at is not None
    new_rows = outbox_ids(database, registration_id)
    assert len(new_rows) == len(queued) + 1  # the consent update, queued in the same transaction

    again = client.post(path(settings, confirmation_id), data={"answer": "no"})
    assert again.status_code == 200
    assert "Already answered" in text(again) and "You will receive news" in text(again)
    assert row(database, confirmation_id).decided_at == confirmed.decided_at
    assert row(database, confirmation_id).state == "confirmed"
    assert outbox_ids(database, registration_id) == new_rows

    reopened = client.get(path(settings, confirmation_id))
    assert "Already answered" in text(reopened) and "<form" not in text(reopened)


@pytest.mark.parametrize("form", [{}, {"answer": "maybe"}, {"answer": "YES"}, {"answer": ""}])
def test_an_answer_other_than_yes_or_no_is_400(
    client: Any, settings: Settings, database: Database, form: dict[str, str]
) -> None:
    registration_id = register(client)
    confirmation_id = ask(database, settings, registration_id, MARKETING)
    # The page's form posts to its own link with the page language, as here.
    response = client.post(path(settings, confirmation_id) + "?lang=en", data=form)
    assert response.status_code == 400
    assert "could not be read" in text(response)
    assert row(database, confirmation_id).state == "requested"


def test_every_bad_link_is_the_same_404(
    client: Any, settings: Settings, database: Database, make_settings: Callable[..., Settings]
) -> None:
    registration_id = register(client)
    confirmation_id = ask(database, settings, registration_id, MARKETING)
    genuine = path(settings, confirmation_id)
    token = genuine.rsplit("/", 1)[1]
    other_key = make_settings(SECRET_KEY="another-key-entirely-0123456789-abcdef")
    with signed_ago(settings.confirmation_days * 86400 + 60):
        too_old = path(settings, confirmation_id)
    bad = {
        "forged": f"/confirm/{token[:-2]}{'AA' if not token.endswith('AA') else 'BB'}",
        "another key": path(other_key, confirmation_id),
        "unsubscribe link on confirm": path(settings, confirmation_id, UNSUBSCRIBE).replace(
            "/unsubscribe/", "/confirm/"
        ),
        "confirm link on unsubscribe": "/unsubscribe/" + token,
        "names nothing": path(settings, "00000000-0000-0000-0000-000000000000"),
        "too old": too_old,
        "garbage": "/confirm/not-a-token",
        "too long": "/confirm/" + "a" * 600,
    }
    bodies = set()
    for what, url in bad.items():
        for response in (client.get(url), client.post(url, data={"answer": "yes"})):
            assert response.status_code == 404, (what, response.request.method)
            assert response.headers["Referrer-Policy"] == "no-referrer", what
            # The page below its header (whose language switch names the path it is on).
            bodies.add(text(response).split("<main", 1)[1])
    assert len(bodies) == 1
    assert "このリンクは使えません" in bodies.pop()  # no registration to go by: Japanese, the default
    assert row(database, confirmation_id).state == "requested"
    assert client.get(genuine).status_code == 200  # the genuine link still works


@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(token=st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=300))
@example(token="/0")  # once a 308 redirect (Werkzeug merged the slashes of /confirm//0)
def test_no_token_whatever_it_holds_reaches_a_5xx(client: Any, token: str) -> None:
    # A token never holds "/": such a path is not a link of ours and may meet routing's own 4xx
    # (405: another method's rule matched), never a redirect (merge_slashes is off) or a 5xx.
    expected = {404} if "/" not in token else set(range(400, 500))
    for prefix in ("/confirm/", "/unsubscribe/"):
        url = prefix + quote(token, safe="")
        assert client.get(url).status_code in expected
        answer = client.post(url, data={"answer": "yes", "List-Unsubscribe": "One-Click"})
        assert answer.status_code in expected


def test_an_expired_request_says_so_and_stays_unsubscribed(
    client: Any, settings: Settings, database: Database
) -> None:
    registration_id = register(client)
    confirmation_id = ask(database, settings, registration_id, MARKETING)
    set_expiry(database, confirmation_id, utcnow() - timedelta(minutes=1))
    queued = outbox_ids(database, registration_id)

    page = client.get(path(settings, confirmation_id))
    assert page.status_code == 200
    assert "This request has expired" in text(page) and "<form" not in text(page)
    assert row(database, confirmation_id).state == "requested"  # GET changes nothing, even here

    answered = client.post(path(settings, confirmation_id), data={"answer": "yes"})
    assert answered.status_code == 200
    assert "This request has expired" in text(answered)
    assert row(database, confirmation_id).state == "expired"
    assert outbox_ids(database, registration_id) == queued  # nothing subscribed, nothing to tell


def test_unsubscribe_withdraws_and_one_click_works(
    client: Any, settings: Settings, database: Database
) -> None:
    registration_id = register(client)
    confirmation_id = ask(database, settings, registration_id, MARKETING)
    assert client.post(path(settings, confirmation_id), data={"answer": "yes"}).status_code == 200
    # An unsubscribe link works from any old mail: it never expires.
    with signed_ago(365 * 86400):
        unsubscribe = path(settings, confirmation_id, UNSUBSCRIBE)
    queued = outbox_ids(database, registration_id)

    page = client.get(unsubscribe)
    assert page.status_code == 200
    assert "Stop news by e-mail" in text(page) and '<form method="post"' in text(page)
    assert page.headers["Cache-Control"] == "no-store"
    assert row(database, confirmation_id).state == "confirmed"  # GET changes nothing

    done = client.post(unsubscribe)
    assert done.status_code == 200
    assert "You no longer receive news by e-mail from Membersync" in text(done)
    withdrawn = row(database, confirmation_id)
    assert withdrawn.state == "withdrawn" and withdrawn.withdrawn_at is not None
    assert len(outbox_ids(database, registration_id)) == len(queued) + 1  # UNSUBSCRIBED everywhere

    # A mail client's RFC 8058 one-click POST: no cookies, a short answer, the same effect.
    other_id = register(client, email="someone.else@example.org")
    other = ask(database, settings, other_id, MARKETING)
    assert client.post(path(settings, other), data={"answer": "yes"}).status_code == 200
    one_click = client.post(path(settings, other, UNSUBSCRIBE), data={"List-Unsubscribe": "One-Click"})
    assert one_click.status_code == 200
    assert one_click.mimetype == "text/plain" and len(one_click.get_data()) < 100
    assert row(database, other).state == "withdrawn"
    # Again (a client that retries): still 200, nothing new queued.
    queued_other = outbox_ids(database, other_id)
    again = client.post(path(settings, other, UNSUBSCRIBE), data={"List-Unsubscribe": "One-Click"})
    assert again.status_code == 200
    assert outbox_ids(database, other_id) == queued_other


def test_unsubscribe_links_exist_only_for_news(client: Any, settings: Settings, database: Database) -> None:
    registration_id = register(client)
    card = ask(database, settings, registration_id, CARD)
    assert client.get(path(settings, card, UNSUBSCRIBE)).status_code == 404
    assert client.post(path(settings, card, UNSUBSCRIBE)).status_code == 404
    assert row(database, card).state == "requested"


def test_profile_claim_asks_yes_or_no_and_yes_also_confirms_news(
    client: Any, settings: Settings, database: Database
) -> None:
    registration_id = register(client, locale="ja")
    marketing = ask(database, settings, registration_id, MARKETING)
    profile = ask(database, settings, registration_id, PROFILE)

    page = text(client.get(path(settings, profile) + "?lang=en"))
    assert "Someone registered with your e-mail address" in page
    assert "Yes also subscribes you to news by e-mail from Membersync" in page
    assert 'value="yes"' in page and 'value="no"' in page
    assert '<html lang="ja">' in text(client.get(path(settings, profile)))  # the registration's locale

    answered = client.post(path(settings, profile), data={"answer": "yes"})
    assert answered.status_code == 200
    assert row(database, profile).state == "confirmed"
    assert row(database, marketing).state == "confirmed"


def test_profile_without_news_says_nothing_of_news_and_no_changes_nothing(
    client: Any, settings: Settings, database: Database
) -> None:
    registration_id = register(client, accepts_marketing=False)
    profile = ask(database, settings, registration_id, PROFILE)
    queued = outbox_ids(database, registration_id)
    page = text(client.get(path(settings, profile)))
    assert "news" not in page.lower()
    answered = client.post(path(settings, profile), data={"answer": "no"})
    assert "Nothing in your membership changes" in text(answered)
    assert row(database, profile).state == "declined"
    assert outbox_ids(database, registration_id) == queued


def test_card_question_and_a_card_of_ones_own(client: Any, settings: Settings, database: Database) -> None:
    registration_id = register(client)
    card = ask(database, settings, registration_id, CARD, subject="SMAREGI-CUSTOMER-4711")
    queued = outbox_ids(database, registration_id)
    page = text(client.get(path(settings, card)))
    assert "We found a member card made in our shop with this e-mail address. Is it yours?" in page
    assert "Yes, keep that card and its number" in page and "No, give me a card of my own" in page

    answered = client.post(path(settings, card), data={"answer": "no"})
    assert "We will make you a card of your own" in text(answered)
    assert row(database, card).state == "declined"
    assert len(outbox_ids(database, registration_id)) == len(queued) + 1  # the Smaregi step runs again


def test_no_page_shows_who_registered(client: Any, settings: Settings, database: Database) -> None:
    registration_id = register(client)
    marketing = ask(database, settings, registration_id, MARKETING)
    profile = ask(database, settings, registration_id, PROFILE)
    card = ask(database, settings, registration_id, CARD, subject="SMAREGI-CUSTOMER-4711")
    pages = []
    for language in LANGUAGES:
        query = f"?lang={language}"
        for confirmation_id in (marketing, profile, card):
            pages.append(client.get(path(settings, confirmation_id) + query))
        pages.append(client.get(path(settings, marketing, UNSUBSCRIBE) + query))
        pages.append(client.get("/confirm/not-a-token" + query))
    for confirmation_id in (marketing, profile, card):
        pages.append(client.post(path(settings, confirmation_id), data={"answer": "yes"}))
        pages.append(client.get(path(settings, confirmation_id)))
    pages.append(client.post(path(settings, marketing, UNSUBSCRIBE)))
    expired = ask(database, settings, register(client, email="kumiko.t@example.com"), CARD)
    set_expiry(database, expired, utcnow())
    pages.append(client.get(path(settings, expired)))
    assert {response.status_code for response in pages} == {200, 404}
    for response in pages:
        body = text(response).lower()
        for personal in PERSONAL_TEXTS:
            assert personal.lower() not in body, (response.request.path, personal)


def test_expire_due_expires_what_is_past_due_and_queues_only_cards(
    client: Any, settings: Settings, database: Database
) -> None:
    due = {kind: register(client, email=f"{kind}@example.com") for kind in (MARKETING, PROFILE, CARD)}
    asked = {kind: ask(database, settings, registration_id, kind) for kind, registration_id in due.items()}
    for confirmation_id in asked.values():
        set_expiry(database, confirmation_id, utcnow() - timedelta(seconds=1))
    not_yet = ask(database, settings, register(client, email="later@example.com"), CARD)
    before = {kind: outbox_ids(database, registration_id) for kind, registration_id in due.items()}

    queued = expire_due(database)

    assert {kind: row(database, confirmation_id).state for kind, confirmation_id in asked.items()} == {
        MARKETING: "expired",
        PROFILE: "expired",
        CARD: "expired",
    }
    assert all(row(database, c).decided_at is not None for c in asked.values())
    assert row(database, not_yet).state == "requested"
    # Only the card's registration is queued: it gets a card of its own.
    assert queued == [i for i in outbox_ids(database, due[CARD]) if i not in before[CARD]]
    assert len(queued) == 1
    assert outbox_ids(database, due[MARKETING]) == before[MARKETING]
    assert outbox_ids(database, due[PROFILE]) == before[PROFILE]
    assert expire_due(database) == []  # a second sweep finds nothing


def test_expiry_runs_every_quarter_hour_on_maintenance_and_publishes(
    client: Any, make_settings: Callable[..., Settings], database: Database, clean_redis: str
) -> None:
    settings = make_settings(REDIS_URL=clean_redis, CELERY_BROKER_URL=clean_redis)
    config = celery_config(settings)
    schedule = {entry["task"]: entry for entry in config["beat_schedule"].values()}
    assert schedule[EXPIRE_TASK]["schedule"] == 15 * 60
    assert config["task_routes"][EXPIRE_TASK] == {"queue": MAINTENANCE_QUEUE}

    registration_id = register(client)
    card = ask(database, settings, registration_id, CARD)
    set_expiry(database, card, utcnow() - timedelta(seconds=1))
    before = outbox_ids(database, registration_id)
    celery = create_celery_app(settings, database)
    celery.loader.import_default_modules()

    assert celery.tasks[EXPIRE_TASK].apply().get() == 1  # the card's follow-up went to the broker
    assert row(database, card).state == "expired"
    (follow_up,) = [i for i in outbox_ids(database, registration_id) if i not in before]
    with database.session() as session:
        message = session.get(OutboxMessage, follow_up)
        assert message is not None and message.published_at is not None
    assert celery.tasks[EXPIRE_TASK].apply().get() == 0


def test_the_pages_share_the_public_rate_limit(
    make_settings: Callable[..., Settings], database: Database, clean_redis: str
) -> None:
    settings = make_settings(INTAKE_RATE_LIMIT="3/minute", REDIS_URL=clean_redis)
    web = create_app(settings, database=database).test_client()
    answers = [web.get(f"/confirm/guess-{n}").status_code for n in range(4)]
    assert answers == [404, 404, 404, 429]
    limited = web.get("/confirm/guess-5")
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) > 0
    assert "Too many requests" in text(limited) or "アクセスが集中" in text(limited)
    assert limited.headers["Referrer-Policy"] == "no-referrer"


def test_every_text_version_has_its_words_in_every_language() -> None:
    for kind, version in TEXT_VERSIONS.items():
        for language in LANGUAGES:
            words = CONFIRMATION_QUESTIONS[version][language]
            assert {"title", "question", "yes"} <= set(words), (version, language)
            assert ("no" in words) == (kind != MARKETING)
    for language in LANGUAGES:
        assert set(CONFIRMATION_OUTCOMES[language]) == set(CONFIRMATION_OUTCOMES["en"])
