"""What to do about a dead letter, in plain words: one line per reason it was written for
(`registrations.dead_letters.dead_letter_reason`), more precise where a vendor says more.

The sync-health page shows it beside each reason's count; a reason missing here gets the general
advice rather than nothing (tests check every reason the code writes has its own line).
"""

from __future__ import annotations

# (system, reason) → advice; (None, reason) is every system's.
ADVICE: dict[tuple[str | None, str], str] = {
    (None, "retries_exhausted"): (
        "The vendor kept failing (timeouts, server errors, or our rate budget) for the whole retry "
        "window. Check the vendor's status page and `membersync check`, then replay."
    ),
    (None, "worker_lost"): (
        "The worker running this step died (restarted or out of memory) too often. Check the "
        "worker's logs and memory, then replay."
    ),
    (None, "permanent"): (
        "The vendor refused the request and retrying will not change its mind. Read the message, "
        "fix the cause in the vendor's settings or the registration's data, then replay."
    ),
    ("smaregi", "permanent"): (
        "Smaregi refused the member. If the message names a field (entryDate or pointExpireDate, "
        "say), your contract makes it required: relax it under 会員必須項目設定 in Smaregi's settings "
        "or ask us to send it; a 403 means the customers API is not on your plan or the app lacks "
        "the pos.customers scopes. Then replay."
    ),
    ("shopify", "permanent"): (
        "Shopify refused the customer. Read the message: a missing scope (write_customers) needs the "
        "app reinstalled with it; invalid data needs the registration corrected. Then replay."
    ),
    ("hubspot", "permanent"): (
        "HubSpot refused the contact. A 403 means the private app's token lacks the crm.objects."
        "contacts scopes: add them in HubSpot's private app settings, then replay."
    ),
    ("email", "permanent"): (
        "The mail server refused the welcome mail (a bad address, or our sender not allowed). "
        "Check MAIL_FROM and the SMTP account; a bad address cannot be fixed by a replay."
    ),
    (None, "conflict"): (
        "The vendor already holds this record and did not say which one. Find it in the vendor's "
        "admin, link or merge it by hand, then resolve the dead letter with a note."
    ),
    (None, "not_found"): (
        "The record this step updates is gone from the vendor (deleted by someone). Recreate it, or "
        "replay to let the step create it again."
    ),
    (None, "ambiguous_match"): (
        "Several records in the vendor match this person. Merge the duplicates in the vendor's "
        "admin, then replay."
    ),
    ("shopify", "email_taken"): (
        "Another Shopify customer already has this e-mail address. Merge the two customers in "
        "Shopify's admin, then replay."
    ),
    ("shopify", "phone_taken"): (
        "Another Shopify customer already has this phone number. Remove it from one of them in "
        "Shopify's admin, then replay."
    ),
    ("shopify", "consent_refused"): (
        "Shopify refused the marketing consent (the shop's consent settings). Check the customer "
        "privacy settings in Shopify's admin, then replay."
    ),
    ("hubspot", "subscription_refused"): (
        "HubSpot refused the subscription for this contact (opted out before, or the subscription "
        "type is archived). Check HUBSPOT_SUBSCRIPTION_ID and the contact's preferences."
    ),
    ("hubspot", "no_subscription_type"): (
        "HUBSPOT_SUBSCRIPTION_ID names no subscription type of this HubSpot account. Set it to one "
        "listed in HubSpot's subscription types, then replay."
    ),
    ("hubspot", "validation_rule_refused"): (
        "A HubSpot property validation rule refused a value. Relax the rule in HubSpot's property "
        "settings or correct the registration, then replay."
    ),
    (None, "unknown"): "The failure gave no reason. Read the message and the worker's logs.",
}
GENERAL = "Read the message, fix what it names in the vendor or the registration, then replay."


def advice(system: str | None, reason: str) -> str:
    """What an operator should do about `system`'s dead letters of `reason`."""
    return ADVICE.get((system, reason)) or ADVICE.get((None, reason)) or GENERAL
