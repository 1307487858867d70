"""The card question reconciliation mails to a walk-in's address owner: the link, its validity, no
personal data, a Message-ID of its own kind."""

from __future__ import annotations

import pytest

from connectors.mailer import CardQuestionMessage, card_question_message_id, render_card_question

LINK = "https://members.example/confirm/abc.def"


def parts(message: CardQuestionMessage) -> tuple[str, str, str]:
    mime = render_card_question(message, mail_from="Shop <welcome@shop.example>")
    text = mime.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = mime.get_body(("html",)).get_content()  # type: ignore[union-attr]
    return str(mime["Subject"]), text, html


@pytest.mark.parametrize("locale", ["ja", "en"])
def test_the_question_carries_its_link_and_validity_and_nothing_personal(locale: str) -> None:
    message_id = card_question_message_id("4f1c2a9e-0000-4000-8000-000000000001", domain="shop.example")
    message = CardQuestionMessage(
        to="hanako@example.com", locale=locale, message_id=message_id, confirm_url=LINK, confirm_days=7
    )
    subject, text, html = parts(message)
    assert subject
    assert LINK in text and LINK in html
    assert "7" in text
    assert "hanako" not in text and "hanako" not in html  # the address is the envelope's only
    assert message_id == "<card.4f1c2a9e-0000-4000-8000-000000000001@shop.example>"


def test_a_question_without_a_plain_link_is_refused() -> None:
    with pytest.raises(ValueError):
        parts(
            CardQuestionMessage(
                to="a@example.com", locale="ja", message_id="<card.x@e.example>", confirm_url="javascript:x"
            )
        )
