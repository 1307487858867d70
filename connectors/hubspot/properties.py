"""Membersync's custom contact properties in HubSpot: the member facts Smaregi owns, mirrored.

HubSpot has no standard property for a member number, points or a rank, so the connector creates
them through the Properties API (`POST /crm/properties/<version>/contacts`, scope
crm.schemas.contacts.write) before the first write that carries one. Names come from the ownership
map (`registrations.owned_fields`) takes them from here: a connector knows its vendor's names and
nothing of the domain above it. Points are a number.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

# The custom contact properties, by member fact.
HUBSPOT_FACT_PROPERTIES: dict[str, str] = {
    "member_number": "membersync_member_number",
    "points": "membersync_points",
    "rank": "membersync_rank",
}
# HubSpot's group for contact details; every portal has it.
GROUP_NAME = "contactinformation"


@dataclass(frozen=True)
class PropertyDefinition:
    """One contact property as the Properties API creates it (`type` and a `fieldType` that fits it)."""

    name: str
    label: str
    type: str  # "string" or "number"
    field_type: str  # "text" for a string, "number" for a number

    def as_api(self) -> dict[str, Any]:
        """The body of `POST /crm/properties/<version>/contacts`."""
        return {
            "name": self.name,
            "label": self.label,
            "type": self.type,
            "fieldType": self.field_type,
            "groupName": GROUP_NAME,
            "description": "Kept by Membersync from Smaregi; edits in HubSpot are overwritten.",
        }


MEMBER_PROPERTIES: tuple[PropertyDefinition, ...] = (
    PropertyDefinition(HUBSPOT_FACT_PROPERTIES["member_number"], "Member number", "string", "text"),
    PropertyDefinition(HUBSPOT_FACT_PROPERTIES["points"], "Member points", "number", "number"),
    PropertyDefinition(HUBSPOT_FACT_PROPERTIES["rank"], "Member rank", "string", "text"),
)
MEMBER_PROPERTY_NAMES: frozenset[str] = frozenset(definition.name for definition in MEMBER_PROPERTIES)


def names_member_property(names: Iterable[str]) -> bool:
    """Whether any of these property names is one of Membersync's custom properties."""
    return any(name in MEMBER_PROPERTY_NAMES for name in names)
