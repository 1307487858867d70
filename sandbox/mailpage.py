"""The mail catcher's pages for people: the inbox, and each mail as its recipient would see it.

`install_mail_pages(app, mailbox)` adds to the catcher's Flask app:

- `GET /` the inbox (newest first: received, to, subject, size), each row a link to the mail;
- `GET /messages/<id>` one mail: its main headers, the HTML part in a sandboxed iframe (no scripts,
  no same-origin access, no network but this catcher), the text part, the attached and inline parts,
  every header, and a link to the raw source;
- `GET /messages/<id>/html` the HTML part alone, its `cid:` references pointing at
  `/messages/<id>/cid/<content-id>`, served under a Content-Security-Policy that allows images from
  this catcher and data: URIs only (the barcode of a welcome mail is an inline `cid:` PNG);
- `GET /messages/<id>/cid/<content-id>` and `/messages/<id>/parts/<n>` one part's decoded bytes.

Everything is UTF-8 and escaped: a mail is untrusted input, shown, never run.
"""

from __future__ import annotations

import html
import re
from typing import TYPE_CHECKING
from urllib.parse import quote

from flask import Flask, Response, abort

if TYPE_CHECKING:
    from sandbox.mailcatcher import CaughtMessage, Mailbox

# The framed HTML part may show images from this catcher or data: URIs, and inline styles; nothing
# else (no scripts, no forms, no remote fetches that would tell a tracker the mail was opened).
MAIL_HTML_POLICY = "sandbox; default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'"
PAGE_POLICY = "default-src 'none'; frame-src 'self'; img-src 'self' data:; style-src 'unsafe-inline'"
# src="cid:…", src='cid:…', url(cid:…): the Content-ID runs to the closing quote or bracket.
CID_REFERENCE = re.compile(r"cid:([^\"'\s)>]+)", re.IGNORECASE)
MAIN_HEADERS = ("From", "To", "Subject", "Date", "Message-ID")

STYLE = """
body { font: 15px/1.5 system-ui, "Hiragino Sans", "Noto Sans CJK JP", sans-serif; margin: 1.5rem }
table { border-collapse: collapse } th, td { text-align: left; padding: .3rem .6rem; vertical-align: top }
tr + tr td { border-top: 1px solid #ddd } th { background: #f3f3f3 }
iframe { width: 100%; max-width: 720px; height: 640px; border: 1px solid #bbb; resize: vertical }
pre { white-space: pre-wrap; background: #f7f7f7; padding: .8rem; max-width: 720px; border: 1px solid #ddd }
.muted { color: #666 } h2 { margin-top: 2rem; font-size: 1.1rem }
"""


def install_mail_pages(app: Flask, mailbox: Mailbox) -> None:
    """The inbox and message pages over `mailbox` (see the module's docstring)."""

    def message_or_404(message_id: str) -> CaughtMessage:
        message = mailbox.get(message_id)
        if message is None:
            abort(404)
        return message

    @app.get("/")
    def inbox_page() -> Response:
        messages = mailbox.newest_first()
        rows = "".join(
            "<tr><td><a href='/messages/{id}'>#{id}</a></td><td>{received}</td><td>{to}</td>"
            "<td><a href='/messages/{id}'>{subject}</a></td><td>{size}</td></tr>".format(
                id=_e(message.id),
                received=_e(message.received_at),
                to=_e(", ".join(message.recipients)),
                subject=_e(message.header("Subject") or "(no subject)"),
                size=f"{len(message.raw):,} B",
            )
            for message in messages
        )
        body = (
            "<h1>Caught mail</h1>"
            f"<p class='muted'>{len(messages)} message(s), newest first. Nothing here leaves this machine. "
            "<a href='/'>Refresh</a> · JSON: <a href='/api/messages'>/api/messages</a></p>"
            "<table id='messages'><thead><tr><th>#</th><th>received (UTC)</th><th>to</th><th>subject</th>"
            f"<th>size</th></tr></thead><tbody>{rows}</tbody></table>"
        )
        return _page("Caught mail", body)

    @app.get("/messages/<message_id>")
    def message_page(message_id: str) -> Response:
        message = message_or_404(message_id)
        main = "".join(
            f"<tr><th>{name}</th><td>{_e(message.header(name) or '')}</td></tr>" for name in MAIN_HEADERS
        )
        text = message.text("plain")
        has_html = message.text("html") is not None
        parts = "".join(
            "<li><a href='/messages/{id}/parts/{index}'>{name}</a> {type}, {size:,} B{cid}</li>".format(
                id=_e(message.id),
                index=index,
                name=_e(part["filename"] or f"part {index}"),
                type=_e(part["content_type"]),
                size=part["size"],
                cid=f" <span class='muted'>(inline {_e(part['content_id'])})</span>"
                if part["content_id"]
                else "",
            )
            for index, part in enumerate(message.parts())
        )
        every_header = "".join(
            f"<tr><th>{_e(name)}</th><td>{_e(str(value))}</td></tr>" for name, value in message.parsed.items()
        )
        body = (
            f"<p><a href='/'>← all mail</a> · <a href='/api/messages/{_e(message.id)}/raw'>raw source</a>"
            f" · <a href='/api/messages/{_e(message.id)}'>JSON</a></p>"
            f"<h1 id='subject'>{_e(message.header('Subject') or '(no subject)')}</h1>"
            f"<table id='headers'>{main}</table>"
            "<h2>As the recipient sees it (HTML part)</h2>"
            + (
                # No allow-scripts, no allow-same-origin: the mail's HTML cannot run or reach this page.
                f"<iframe id='html-part' sandbox='' title='HTML part' src='/messages/{_e(message.id)}/html'>"
                "</iframe>"
                if has_html
                else "<p class='muted' id='html-part'>This mail has no HTML part.</p>"
            )
            + "<h2>Text part</h2>"
            + (
                f"<pre id='text-part'>{_e(text)}</pre>"
                if text is not None
                else "<p class='muted' id='text-part'>This mail has no text part.</p>"
            )
            + f"<h2>Attachments and inline parts</h2><ul id='parts'>{parts or '<li>none</li>'}</ul>"
            + "<details><summary>Every header</summary>"
            + f"<table id='all-headers'>{every_header}</table></details>"
        )
        return _page(message.header("Subject") or "Mail", body)

    @app.get("/messages/<message_id>/html")
    def message_html(message_id: str) -> Response:
        message = message_or_404(message_id)
        markup = message.text("html")
        if markup is None:
            abort(404)
        base = f"/messages/{quote(message.id, safe='')}/cid/"
        framed = CID_REFERENCE.sub(lambda found: base + quote(found.group(1), safe="@"), markup)
        response = Response(framed, mimetype="text/html")
        response.headers["Content-Security-Policy"] = MAIL_HTML_POLICY
        return _no_sniff(response)

    @app.get("/messages/<message_id>/cid/<path:content_id>")
    def message_inline_part(message_id: str, content_id: str) -> Response:
        found = message_or_404(message_id).part_by_content_id(content_id)
        if found is None:
            abort(404)
        content_type, payload = found
        return _no_sniff(Response(payload, mimetype=content_type))

    @app.get("/messages/<message_id>/parts/<int:index>")
    def message_part(message_id: str, index: int) -> Response:
        found = message_or_404(message_id).part_at(index)
        if found is None:
            abort(404)
        content_type, payload = found
        # Shown by the browser only when it is an image; anything else is a download.
        response = Response(payload, mimetype=content_type)
        if not content_type.startswith("image/"):
            response.headers["Content-Disposition"] = "attachment"
        return _no_sniff(response)


def _e(value: str | None) -> str:
    return html.escape(value or "")


def _no_sniff(response: Response) -> Response:
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _page(title: str, body: str) -> Response:
    document = (
        "<!doctype html><html lang='ja'><head><meta charset='utf-8'>"
        f"<title>{_e(title)} · Membersync mail catcher</title><style>{STYLE}</style></head>"
        f"<body>{body}</body></html>"
    )
    response = Response(document, mimetype="text/html")  # Flask adds charset=utf-8
    response.headers["Content-Security-Policy"] = PAGE_POLICY
    return _no_sniff(response)
