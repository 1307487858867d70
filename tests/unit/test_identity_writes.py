"""The step bookkeeping's identity writes and reads: `learn` creates or updates the person's row in
one statement and touches only the columns it is given; `find_known` and `standing` read what a step
is given. On SQLite here; the PostgreSQL form runs in the pipeline tests."""

from __future__ import annotations

from datetime import timedelta

from registrations import confirmations
from registrations.identities import find_identity, find_known, learn
from registrations.models import Confirmation, utcnow
from registrations.steps.base import Known
from tests.support.world import World


def test_learn_creates_the_row_then_changes_only_what_it_is_given(world: World) -> None:
    with world.database.session() as session:
        assert find_known(session, "a@example.com") == Known()
        learn(session, "a@example.com", {"shopify_customer_id": "gid://shopify/Customer/1"})
    with world.database.session() as session:
        learn(session, "a@example.com", {"smaregi_customer_id": "7", "smaregi_customer_code": "M7"})
        learn(session, "b@example.com", {"hubspot_contact_id": "99"})
    with world.database.session() as session:
        known = find_known(session, "a@example.com")
        other = find_identity(session, "b@example.com")
    assert known == Known(
        shopify_customer_id="gid://shopify/Customer/1", smaregi_customer_id="7", smaregi_customer_code="M7"
    )
    assert other is not None and (other.hubspot_contact_id, other.shopify_customer_id) == ("99", None)


def test_standing_is_what_the_three_separate_reads_say(world: World) -> None:
    registration_id = world.accept()
    now = utcnow()
    rows = [
        ("card", "declined", "c-old", now - timedelta(hours=2), None),
        ("card", "requested", "c-new", now - timedelta(hours=1), None),
        ("marketing", "confirmed", None, now - timedelta(hours=3), now - timedelta(hours=2)),
        ("profile", "requested", None, now, None),
    ]
    with world.database.session() as session:
        for kind, state, subject, requested_at, decided_at in rows:
            session.add(
                Confirmation(
                    registration_id=registration_id,
                    kind=kind,
                    state=state,
                    email="hanako@example.com",
                    source="api",
                    text_version="v1",
                    subject=subject,
                    requested_at=requested_at,
                    expires_at=now + timedelta(days=1),
                    decided_at=decided_at,
                )
            )
    with world.database.session() as session:
        standing = confirmations.standing(session, registration_id)
        card = confirmations.latest(session, registration_id, confirmations.CARD)
        assert standing.requests == confirmations.open_requests(session, registration_id)
        assert standing.marketing == confirmations.marketing_consent(session, registration_id)
    assert set(standing.requests) == {"card", "profile"}
    assert card is not None and standing.card == (card.state, card.subject) == ("requested", "c-new")
    assert standing.marketing is not None and standing.marketing[0] == "confirmed"
