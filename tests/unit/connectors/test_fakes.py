"""The in-process fakes: each satisfies its Protocol, keeps its vendor's rules and fails on request."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest

from connectors.errors import ConflictError, NotFoundError, PermanentError, ThrottledError, TransientError
from connectors.fakes import FakeHubSpot, FakeMailer, FakeShopify, FakeSmaregi
from connectors.hubspot import SubscriptionRefused
from connectors.interfaces import HubSpotApi, MailSender, ShopifyApi, SmaregiApi
from connectors.mailer import WelcomeMessage
from connectors.shopify import ConsentRefused, EmailTaken, PhoneTaken
from connectors.smaregi import member_code

EMAIL = "hanako@example.com"


def welcome(message_id: str = "<welcome.r1@shop.example>") -> WelcomeMessage:
    return WelcomeMessage(EMAIL, "Hanako", "Yamada", "ja", "4346996870082686", message_id)


def test_each_fake_satisfies_its_protocol() -> None:
    # Checked by mypy: a fake missing a method or changing a signature fails these assignments.
    shopify: ShopifyApi = FakeShopify()
    smaregi: SmaregiApi = FakeSmaregi()
    hubspot: HubSpotApi = FakeHubSpot()
    mailer: MailSender = FakeMailer()

    assert shopify.find_customers_by_email(EMAIL) == []
    assert smaregi.find_member_by_code("1") is None
    assert hubspot.upsert_contact(email=EMAIL, properties={}).created is True
    mailer.send_welcome(welcome())


# --- Shopify --------------------------------------------------------------------------------------


def test_shopify_ids_are_customer_gids_in_order() -> None:
    shopify = FakeShopify()
    first = shopify.create_customer(email=EMAIL, first_name="Hanako", last_name="Yamada")
    second = shopify.create_customer(email="taro@example.com", first_name="Taro", last_name="Yamada")
    assert (first.id, second.id) == ("gid://shopify/Customer/1", "gid://shopify/Customer/2")


def test_shopify_email_is_unique_in_any_case() -> None:
    shopify = FakeShopify()
    shopify.create_customer(email=EMAIL, first_name="Hanako", last_name="Yamada")
    with pytest.raises(EmailTaken) as taken:
        shopify.create_customer(email=" Hanako@Example.COM", first_name="H", last_name="Y")
    assert isinstance(taken.value, ConflictError) and EMAIL not in str(taken.value)
    assert len(shopify.customers) == 1


def test_shopify_phone_is_unique() -> None:
    shopify = FakeShopify()
    shopify.create_customer(email=EMAIL, first_name="Hanako", last_name="Yamada", phone="+819012345678")
    with pytest.raises(PhoneTaken):
        shopify.create_customer(
            email="taro@example.com", first_name="T", last_name="Y", phone="+819012345678"
        )
    shopify.create_customer(email="jiro@example.com", first_name="J", last_name="Y")  # no phone: no clash
    assert len(shopify.customers) == 2


def test_shopify_find_by_email_is_exact_and_case_insensitive() -> None:
    shopify = FakeShopify()
    hanako = shopify.create_customer(email="Hanako@Example.com", first_name="Hanako", last_name="Yamada")
    shopify.create_customer(email="xhanako@example.com", first_name="X", last_name="Y")
    assert shopify.find_customers_by_email(EMAIL) == [hanako]
    assert shopify.find_customers_by_email("hanako@example") == []


def test_shopify_set_member_number_stores_the_metafield() -> None:
    shopify = FakeShopify()
    customer = shopify.create_customer(email=EMAIL, first_name="Hanako", last_name="Yamada")
    shopify.set_member_number(customer.id, "4346996870082686")
    assert shopify.customers[customer.id].member_number == "4346996870082686"
    assert shopify.find_customers_by_email(EMAIL)[0].member_number == "4346996870082686"
    with pytest.raises(PermanentError):
        shopify.set_member_number("gid://shopify/Customer/999", "1")


def test_shopify_lost_answer_then_retry_adopts_the_customer() -> None:
    """The pipeline's recovery: create, answer lost, create again is EmailTaken, find and adopt."""
    shopify = FakeShopify()
    shopify.lose_next_answer("create_customer")
    with pytest.raises(TransientError) as lost:
        shopify.create_customer(email=EMAIL, first_name="Hanako", last_name="Yamada")
    assert not isinstance(lost.value, ThrottledError)
    with pytest.raises(EmailTaken):
        shopify.create_customer(email=EMAIL, first_name="Hanako", last_name="Yamada")
    (adopted,) = shopify.find_customers_by_email(EMAIL)
    assert list(shopify.customers) == [adopted.id]
    assert [name for name, _ in shopify.calls] == [
        "create_customer",
        "create_customer",
        "find_customers_by_email",
    ]


# --- Smaregi --------------------------------------------------------------------------------------


def create_member(smaregi: FakeSmaregi, code: str, email: str = EMAIL) -> object:
    return smaregi.create_member(customer_code=code, last_name="山田", first_name="花子", mail_address=email)


def test_smaregi_ids_are_sequential_strings() -> None:
    smaregi = FakeSmaregi()
    first = smaregi.create_member(customer_code="1", last_name="山田", first_name="花子", mail_address=EMAIL)
    second = smaregi.create_member(
        customer_code="2", last_name="山田", first_name="太郎", mail_address="t@x.jp"
    )
    assert (first.customer_id, second.customer_id) == ("1", "2")
    assert first.point == "0" and first.mail_address == EMAIL


def test_smaregi_customer_code_is_unique() -> None:
    smaregi = FakeSmaregi()
    create_member(smaregi, "4346996870082686")
    with pytest.raises(PermanentError) as taken:
        create_member(smaregi, "4346996870082686", "somebody@example.com")
    assert taken.value.status == 400 and "@" not in str(taken.value)
    assert len(smaregi.members) == 1


def test_smaregi_has_no_email_search_but_lists_by_update_time_and_finds_by_code_or_id() -> None:
    assert not hasattr(FakeSmaregi(), "find_members_by_email")  # Smaregi documents none
    clock = iter([datetime(2026, 11, 29, 1, tzinfo=UTC), datetime(2026, 11, 29, 2, tzinfo=UTC)])
    smaregi = FakeSmaregi(clock=lambda: next(clock))
    create_member(smaregi, "A1", "Hanako@Example.com")
    create_member(smaregi, "A2", "xhanako@example.com")
    since = datetime(2026, 11, 29, 1, 30, tzinfo=UTC)
    assert [m.customer_code for m in smaregi.list_members(updated_from=since)] == ["A2"]
    assert [m.customer_code for m in smaregi.list_members(sort="updDateTime:desc")] == ["A2", "A1"]
    assert [m.customer_code for m in smaregi.list_members(page=2, limit=1)] == ["A2"]
    assert smaregi.get_member("1") is not None and smaregi.get_member("3") is None
    found = smaregi.find_member_by_code("A2")
    assert found is not None and found.customer_id == "2"
    assert smaregi.find_member_by_code("A3") is None


def test_smaregi_lost_answer_then_retry_finds_our_member_by_code() -> None:
    smaregi = FakeSmaregi()
    code = member_code(EMAIL, key=b"test-key")
    smaregi.lose_next_answer("create_member")
    with pytest.raises(TransientError):
        create_member(smaregi, code)
    with pytest.raises(PermanentError):
        create_member(smaregi, code)
    holder = smaregi.find_member_by_code(code)
    assert holder is not None and holder.mail_address == EMAIL
    assert len(smaregi.members) == 1 and smaregi.count("create_member") == 2


# --- HubSpot --------------------------------------------------------------------------------------


def test_hubspot_upsert_is_keyed_by_email_in_any_case() -> None:
    hubspot = FakeHubSpot()
    first = hubspot.upsert_contact(email=EMAIL, properties={"firstname": "Hanako"})
    second = hubspot.upsert_contact(email="HANAKO@example.com", properties={"lastname": "Yamada"})
    other = hubspot.upsert_contact(email="taro@example.com", properties={})

    assert first.id == second.id == "1" and other.id == "2"
    assert first.created is True and second.created is False
    assert second.email == EMAIL
    assert second.properties == {"firstname": "Hanako", "lastname": "Yamada", "email": EMAIL}
    with pytest.raises(ValueError):
        hubspot.upsert_contact(email=" ", properties={})


def test_hubspot_lost_answer_is_harmless_to_retry() -> None:
    hubspot = FakeHubSpot()
    hubspot.lose_next_answer("upsert_contact")
    with pytest.raises(TransientError):
        hubspot.upsert_contact(email=EMAIL, properties={"firstname": "Hanako"})
    again = hubspot.upsert_contact(email=EMAIL, properties={"firstname": "Hanako"})
    assert again.created is False and list(hubspot.contacts) == [again.id]


# --- the mailer -----------------------------------------------------------------------------------


def test_mailer_records_every_message_and_deduplicates_nothing() -> None:
    mailer = FakeMailer()
    mailer.send_welcome(welcome())
    mailer.send_welcome(welcome())
    assert mailer.sent == [welcome(), welcome()]


def test_mailer_lost_answer_still_sends() -> None:
    mailer = FakeMailer()
    mailer.lose_next_answer("send_welcome")
    with pytest.raises(TransientError):
        mailer.send_welcome(welcome())
    assert mailer.sent == [welcome()]  # the duplicate a retry would make is the pipeline's to prevent


# --- fault injection and the call log -------------------------------------------------------------


def test_queued_failures_come_in_order_and_change_nothing() -> None:
    shopify = FakeShopify()
    down = TransientError("shopify is down", system="shopify")
    refused = PermanentError("shopify refused", system="shopify")
    shopify.fail_next("create_customer", down, refused)

    for expected in (down, refused):
        with pytest.raises(type(expected)) as raised:
            shopify.create_customer(email=EMAIL, first_name="Hanako", last_name="Yamada")
        assert raised.value is expected
    assert shopify.customers == {}
    shopify.create_customer(email=EMAIL, first_name="Hanako", last_name="Yamada")
    assert len(shopify.customers) == 1


def test_failures_are_per_method() -> None:
    smaregi = FakeSmaregi()
    smaregi.fail_next("create_member", TransientError("down"))
    assert smaregi.find_member_by_code("1") is None
    with pytest.raises(TransientError):
        create_member(smaregi, "1")


def test_lost_answers_can_repeat() -> None:
    hubspot = FakeHubSpot()
    hubspot.lose_next_answer("upsert_contact", times=2)
    for _ in range(2):
        with pytest.raises(TransientError):
            hubspot.upsert_contact(email=EMAIL, properties={})
    assert hubspot.upsert_contact(email=EMAIL, properties={}).id == "1"


def test_the_call_log_keeps_every_call_with_its_arguments() -> None:
    shopify = FakeShopify()
    shopify.fail_next("find_customers_by_email", TransientError("down"))
    with pytest.raises(TransientError):
        shopify.find_customers_by_email(EMAIL)
    customer = shopify.create_customer(email=EMAIL, first_name="Hanako", last_name="Yamada", locale="ja")
    shopify.set_member_number(customer.id, "7")

    assert shopify.calls[0] == ("find_customers_by_email", {"email": EMAIL})
    name, arguments = shopify.calls[1]
    assert name == "create_customer" and arguments["locale"] == "ja" and arguments["phone"] is None
    assert shopify.calls[2] == ("set_member_number", {"customer_id": customer.id, "member_number": "7"})
    assert shopify.count("create_customer") == 1


@pytest.mark.parametrize("method", ["create", "calls", "_run", "fail_next"])
def test_faults_for_an_unknown_method_are_refused(method: str) -> None:
    with pytest.raises(ValueError):
        FakeShopify().fail_next(method, TransientError("x"))
    with pytest.raises(ValueError):
        FakeShopify().lose_next_answer(method)


# --- threads --------------------------------------------------------------------------------------


def race(workers: int, attempt: Callable[[], object]) -> list[object]:
    """Run `attempt` on `workers` threads released together; each result or raised error."""
    start = threading.Barrier(workers)

    def one() -> object:
        start.wait()
        try:
            return attempt()
        except Exception as error:
            return error

    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda _: one(), range(workers)))


def test_concurrent_creates_of_one_email_make_one_customer() -> None:
    shopify = FakeShopify()
    outcomes = race(16, lambda: shopify.create_customer(email=EMAIL, first_name="H", last_name="Y"))
    assert sum(not isinstance(outcome, Exception) for outcome in outcomes) == 1
    assert sum(isinstance(outcome, EmailTaken) for outcome in outcomes) == 15
    assert len(shopify.customers) == 1 and shopify.count("create_customer") == 16


def test_concurrent_upserts_of_one_email_make_one_contact() -> None:
    hubspot = FakeHubSpot()
    outcomes = race(16, lambda: hubspot.upsert_contact(email=EMAIL, properties={}))
    assert len(hubspot.contacts) == 1
    assert {getattr(outcome, "id", None) for outcome in outcomes} == {"1"}


# --- marketing consent ----------------------------------------------------------------------------


def test_the_shopify_fake_creates_without_consent_or_with_a_request_and_never_subscribed() -> None:
    shopify = FakeShopify()
    quiet = shopify.create_customer(email=EMAIL, first_name="H", last_name="Y")
    asked = shopify.create_customer(
        email="other@example.com", first_name="O", last_name="T", accepts_marketing=True
    )
    assert quiet.marketing_state == "NOT_SUBSCRIBED"
    assert (asked.marketing_state, asked.marketing_opt_in_level) == ("PENDING", "CONFIRMED_OPT_IN")


@pytest.mark.parametrize("state", ["NOT_SUBSCRIBED", "INVALID", "REDACTED"])
def test_the_shopify_fake_refuses_the_states_shopify_refuses(state: str) -> None:
    shopify = FakeShopify()
    customer = shopify.create_customer(email=EMAIL, first_name="H", last_name="Y", accepts_marketing=True)
    with pytest.raises(ConsentRefused):
        shopify.update_marketing_consent(customer.id, state)
    assert shopify.customers[customer.id].marketing_state == "PENDING"


def test_the_shopify_fake_stores_a_confirmation_and_a_withdrawal() -> None:
    shopify = FakeShopify()
    customer = shopify.create_customer(email=EMAIL, first_name="H", last_name="Y", accepts_marketing=True)
    confirmed_at = datetime(2026, 11, 29, 1, 0, tzinfo=UTC)

    confirmed = shopify.update_marketing_consent(
        customer.id, "SUBSCRIBED", opt_in_level="CONFIRMED_OPT_IN", consent_updated_at=confirmed_at
    )
    withdrawn = shopify.update_marketing_consent(customer.id, "UNSUBSCRIBED")

    assert (confirmed.marketing_state, confirmed.marketing_updated_at) == (
        "SUBSCRIBED",
        "2026-11-29T01:00:00Z",
    )
    assert withdrawn.marketing_state == "UNSUBSCRIBED"
    with pytest.raises(PermanentError):
        shopify.update_marketing_consent("gid://shopify/Customer/404", "SUBSCRIBED")


def test_the_smaregi_fake_keeps_the_flag_given_at_create_and_changes_it() -> None:
    smaregi = FakeSmaregi()
    member = smaregi.create_member(
        customer_code="1", last_name="Y", first_name="H", mail_address=EMAIL, mail_receive_flag=False
    )
    assert member.mail_receive_flag is False
    assert smaregi.set_mail_receive_flag(member.customer_id, True).mail_receive_flag is True
    with pytest.raises(NotFoundError):
        smaregi.set_mail_receive_flag("404", True)


def test_the_hubspot_fake_keeps_the_legal_basis_and_never_resubscribes_an_opt_out() -> None:
    hubspot = FakeHubSpot()
    assert not hubspot.subscription_status(EMAIL).subscribed

    first = hubspot.subscribe(EMAIL, legal_basis="CONSENT_WITH_NOTICE", explanation="confirmed by link")
    again = hubspot.subscribe(EMAIL.upper(), legal_basis="CONSENT_WITH_NOTICE", explanation="again")
    assert first == again and first.legal_basis == "CONSENT_WITH_NOTICE"
    assert hubspot.subscription_status(EMAIL).legal_basis_explanation == "confirmed by link"

    hubspot.unsubscribe(EMAIL, explanation="withdrawn")
    assert not hubspot.subscription_status(EMAIL).subscribed
    with pytest.raises(SubscriptionRefused):
        hubspot.subscribe(EMAIL, legal_basis="CONSENT_WITH_NOTICE", explanation="once more")


def test_the_hubspot_fake_refuses_a_marketing_property_as_the_client_does() -> None:
    hubspot = FakeHubSpot()
    with pytest.raises(ValueError, match="hs_marketable_status"):
        hubspot.upsert_contact(email=EMAIL, properties={"hs_marketable_status": "true"})
    assert hubspot.contacts == {}
