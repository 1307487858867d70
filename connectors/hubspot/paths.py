"""Where HubSpot's CRM calls go, by API version (HUBSPOT_API_VERSION).

Since 2026-03-30 HubSpot versions its REST APIs by date, the version in the path after the API's
name: `/crm/objects/2026-09/contacts`, `/crm/properties/2026-09/contacts`, with the same bodies as
v3. The legacy `/crm/v3/objects/contacts` paths stay accepted (HubSpot's own Python client still
calls them) until they go unsupported in September 2027. From 2026-09 HubSpot enforces the portal's
admin-configured validation rules on CRM writes (`connectors.hubspot.answers.ValidationRuleRefused`).

The Communication Preferences calls keep `/communication-preferences/v3`: no dated path is
documented for them where we looked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

LEGACY_VERSION = "v3"
DEFAULT_VERSION = "2026-09"
_DATE_VERSION = re.compile(r"20\d\d-(0[1-9]|1[0-2])")


def is_api_version(version: str) -> bool:
    """Whether `version` names a HubSpot API version: a date (`2026-09`) or the legacy `v3`."""
    return version == LEGACY_VERSION or bool(_DATE_VERSION.fullmatch(version))


@dataclass(frozen=True)
class CrmPaths:
    """The CRM paths of one API version, for one object type (contacts)."""

    version: str = DEFAULT_VERSION
    object_type: str = "contacts"

    def __post_init__(self) -> None:
        if not is_api_version(self.version):
            raise ValueError(f"HubSpot API version {self.version!r} is neither a date such as 2026-09 nor v3")

    def _path(self, api: str) -> str:
        if self.version == LEGACY_VERSION:
            return f"/crm/v3/{api}/{self.object_type}"
        return f"/crm/{api}/{self.version}/{self.object_type}"

    @property
    def objects(self) -> str:
        """The records: `/crm/objects/2026-09/contacts` (legacy `/crm/v3/objects/contacts`)."""
        return self._path("objects")

    @property
    def properties(self) -> str:
        """Property definitions: `/crm/properties/2026-09/contacts` (`/crm/v3/properties/contacts`)."""
        return self._path("properties")
