"""Fifty registrations become fifty customers, members, contacts and welcome emails, all synced."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from registrations.models import Identity
from tests.support.pipeline import Pipeline, assert_exactly_once, person
from tests.support.services import BROKERS


@pytest.mark.parametrize("broker_url", BROKERS, indirect=True)
def test_fifty_registrations_are_synced_everywhere_once(pipeline: Pipeline, sandbox: Any) -> None:
    pipeline.start_worker()
    ids = [pipeline.register(person(number)) for number in range(50)]

    statuses = pipeline.wait_settled(ids)

    assert set(statuses.values()) == {"synced"}, statuses
    assert_exactly_once(sandbox, {f"member{number}@example.com" for number in range(50)})
    document = pipeline.client.get(f"/api/registrations/{ids[0]}").get_json()
    assert document["status"] == "synced"
    assert {step["state"] for step in document["steps"].values()} == {"succeeded"}
    # The public document is states only; ops see the vendor ids.
    assert set(document["steps"]["shopify"]) == {"state"}
    assert pipeline.ops_status(ids[0])["steps"]["shopify"]["external_id"].startswith(
        "gid://shopify/Customer/"
    )


def test_the_welcome_email_carries_the_smaregi_member_number(pipeline: Pipeline, sandbox: Any) -> None:
    pipeline.start_worker()
    registration_id = pipeline.register(person(7, locale="en"))
    assert pipeline.wait_settled([registration_id]) == {registration_id: "synced"}

    with pipeline.database.session() as session:
        identity = session.scalar(select(Identity).where(Identity.email == "member7@example.com"))
        assert identity is not None and identity.smaregi_customer_code
        code = identity.smaregi_customer_code
    (message,) = sandbox.messages()
    assert code in (message["text"] or "")
    members = sandbox.state("smaregi")["customers"]
    assert [m["customerCode"] for m in members] == [code]
    # Smaregi owns the number; Shopify shows it in the membersync.member_number metafield.
    (customer,) = sandbox.state("shopify")["customers"]
    assert code in str(customer)
