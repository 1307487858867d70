"""The welcome and member-number emails: templates, the member-number barcode and the SMTP client."""

from connectors.mailer.barcode import BarcodeImage, code128_png
from connectors.mailer.client import (
    Mailer,
    MemberNumberMessage,
    WelcomeMessage,
    member_number_message_id,
    render_member_number,
    render_welcome,
    sender_domain,
    welcome_message_id,
)

__all__ = [
    "BarcodeImage",
    "Mailer",
    "MemberNumberMessage",
    "WelcomeMessage",
    "code128_png",
    "member_number_message_id",
    "render_member_number",
    "render_welcome",
    "sender_domain",
    "welcome_message_id",
]
