"""What each system receives at create never subscribes anyone: double opt-in starts with a request."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from connectors.hubspot.subscriptions import is_marketing_property
from registrations import profiles
from registrations.steps.base import Registrant

optional_text = st.none() | st.text(alphabet="abcdefghijklmnopqrstuvwxyz ", min_size=1, max_size=20)
registrants = st.builds(
    Registrant,
    email=st.just("hanako@example.com"),
    first_name=st.just("花子"),
    last_name=st.just("山田"),
    phone=st.none() | st.just("+819012345678"),
    postal_code=st.none() | st.just("150-0001"),
    address=optional_text,
    gender=st.none() | st.sampled_from(["female", "male", "unspecified"]),
    accepts_marketing=st.booleans(),
    locale=st.sampled_from(["ja", "en"]),
)


@given(registrants)
def test_smaregi_gets_mail_receive_flag_0_at_create_whatever_was_ticked(registrant: Registrant) -> None:
    assert profiles.smaregi_member(registrant)["mail_receive_flag"] is False


@given(registrants)
def test_hubspot_never_gets_a_marketing_property(registrant: Registrant) -> None:
    properties = profiles.hubspot_properties(registrant)
    assert not [name for name in properties if is_marketing_property(name) or "marketing" in name]


@given(registrants)
def test_shopify_gets_the_request_only_it_turns_into_pending(registrant: Registrant) -> None:
    assert profiles.shopify_customer(registrant)["accepts_marketing"] is registrant.accepts_marketing
