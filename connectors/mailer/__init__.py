"""The welcome, member-number and "already a member" emails and the ops alert: templates, the
member-number barcode and the SMTP client."""

from connectors.mailer.barcode import BarcodeImage, code128_png
from connectors.mailer.client import (
    CardQuestionMessage,
    Mailer,
    MemberNumberMessage,
    NoticeMessage,
    OpsAlertMessage,
    WelcomeMessage,
    card_question_message_id,
    member_number_message_id,
    notice_message_id,
    recipient,
    render_card_question,
    render_member_number,
    render_notice,
    render_ops_alert,
    render_welcome,
    sender_domain,
    welcome_message_id,
)

__all__ = [
    "BarcodeImage",
    "CardQuestionMessage",
    "Mailer",
    "MemberNumberMessage",
    "NoticeMessage",
    "OpsAlertMessage",
    "WelcomeMessage",
    "card_question_message_id",
    "code128_png",
    "member_number_message_id",
    "notice_message_id",
    "recipient",
    "render_card_question",
    "render_member_number",
    "render_notice",
    "render_ops_alert",
    "render_welcome",
    "sender_domain",
    "welcome_message_id",
]
