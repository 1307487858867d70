"""The welcome email: templates, the member-number barcode and the SMTP client."""

from connectors.mailer.barcode import BarcodeImage, code128_png
from connectors.mailer.client import (
    Mailer,
    WelcomeMessage,
    render_welcome,
    sender_domain,
    welcome_message_id,
)

__all__ = [
    "BarcodeImage",
    "Mailer",
    "WelcomeMessage",
    "code128_png",
    "render_welcome",
    "sender_domain",
    "welcome_message_id",
]
