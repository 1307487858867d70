"""The ops alert (dead-letter digest, steps past their budget): one builder in the mailer, plain text
with a summary and one line per item, a fresh Message-ID each time, a plain recipient, sent like the
other mail."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.errors import PermanentError
from connectors.mailer import OpsAlertMessage, render_ops_alert
from tests.support.mail import MAIL_FROM, recording_mailer


def alert(**changes: Any) -> OpsAlertMessage:
    fields: dict[str, Any] = {
        "to": "ops@shop.example",
        "subject": "[Membersync] 2 new dead letter(s)",
        "summary": ("2 registration step(s) could not be synced.", "Replay with `membersync dlq replay ID`."),
        "lines": ("#1  smaregi  registration r-1", "#2  hubspot  registration r-2"),
        "kind": "dead-letters",
        **changes,
    }
    return OpsAlertMessage(**fields)


def test_the_alert_is_plain_text_summary_then_one_line_each() -> None:
    rendered = render_ops_alert(alert(), mail_from=MAIL_FROM)
    assert (rendered["From"], rendered["To"]) == (MAIL_FROM, "ops@shop.example")
    assert rendered["Subject"] == "[Membersync] 2 new dead letter(s)"
    assert rendered["Auto-Submitted"] == "auto-generated" and rendered["Date"]
    assert not rendered.is_multipart() and rendered.get_content_type() == "text/plain"
    assert rendered.get_content() == (
        "2 registration step(s) could not be synced.\n"
        "Replay with `membersync dlq replay ID`.\n"
        "\n"
        "#1  smaregi  registration r-1\n"
        "#2  hubspot  registration r-2\n"
    )


def test_each_alert_is_a_new_message_in_the_senders_domain() -> None:
    first, second = (render_ops_alert(alert(), mail_from=MAIL_FROM)["Message-ID"] for _ in range(2))
    assert first != second
    assert first.startswith("<") and first.endswith(".dead-letters@membersync.example>")


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60))
def test_a_line_never_becomes_a_header_or_markup(line: str) -> None:
    # Whatever a line holds (a scrubbed vendor message), it stays in the body: no header is added.
    rendered = render_ops_alert(alert(lines=(f"#1 {line}",)), mail_from=MAIL_FROM)
    assert sorted(rendered.keys()) == sorted(
        [
            "From",
            "To",
            "Subject",
            "Date",
            "Message-ID",
            "Auto-Submitted",
            "Content-Type",
            "Content-Transfer-Encoding",
            "MIME-Version",
        ]
    )


def test_send_ops_alert_renders_and_sends_once() -> None:
    mailer, connections = recording_mailer()
    mailer.send_ops_alert(alert(kind="over-budget"))
    [smtp] = connections
    [sent] = smtp.sent
    assert sent["To"] == "ops@shop.example" and ".over-budget@" in sent["Message-ID"]


@pytest.mark.parametrize(
    "broken",
    [
        alert(to='"ops team"@shop.example'),
        alert(to="ops@shop.example\r\nBcc: x@evil.example"),
        alert(kind="a b"),
    ],
)
def test_an_unrenderable_alert_is_permanent_and_never_connects(broken: OpsAlertMessage) -> None:
    mailer, connections = recording_mailer()
    with pytest.raises(PermanentError, match="ops alert cannot be rendered"):
        mailer.send_ops_alert(broken)
    assert connections == []
