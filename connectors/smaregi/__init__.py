"""Smaregi Platform API connector: POS members (会員), the member number and points.

`SmaregiClient` lists members (by page, or by update time for the member directory), looks one up
by code or id, creates them with a deterministic `member_code` (so a lost answer is found again by
its code) and changes their points. Smaregi has no e-mail search: matching by e-mail happens in
Membersync's own member directory.
"""

from connectors.smaregi.client import MAX_PAGE_SIZE, SmaregiClient
from connectors.smaregi.members import SmaregiMember, member_code

__all__ = ["MAX_PAGE_SIZE", "SmaregiClient", "SmaregiMember", "member_code"]
