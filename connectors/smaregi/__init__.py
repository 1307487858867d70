"""Smaregi Platform API connector: POS members (会員), the member number and points.

`SmaregiClient` finds members by email or code, creates them with a deterministic `member_code`
(so a lost answer is found again) and changes their points; `MemberCodeTaken` says a code is in use.
"""

from connectors.smaregi.client import MemberCodeTaken, SmaregiClient
from connectors.smaregi.members import SmaregiMember, member_code

__all__ = ["MemberCodeTaken", "SmaregiClient", "SmaregiMember", "member_code"]
