"""Flower's re-run button: what our Flower launcher (`cli.flower`) adds to the Flower we ship.

On the page of a failed `membersync.*` task whose failure names a dead letter (the message a
dead-lettered step ends with, `registrations.hints.dead_letter_summary`), Flower shows a panel:
the dead letter's status as the database has it now, a link to it in the ops console, and, while
it is open, a "Re-run" button. The button POSTs (with Tornado's XSRF token, the same-origin checks
Flower makes, and the ops login of Flower's basic auth) to our handler, which applies
`membersync.replay` with the dead letter's id and the signed-in operator (audited as via Flower).
Once the dead letter is replayed or resolved the panel says so instead of offering the button, and
Flower's task list shows the failure as "FAILURE (replayed)" (or resolved, discarded) rather than as
an open FAILURE: the database decides what is open, not Flower's own task history (which never
forgets a FAILURE).

The console path in every failure message (`/ops/dead-letters/<id>`) becomes a link too.

The panel is added to the HTML Flower renders, before a marker of its task page's markup: that
markup is Flower's own, so the extension installs only on the Flower version it was written for
(`FLOWER_VERSION`, pinned in pyproject.toml); on any other version Flower runs without it and the
launcher logs why.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from config.credentials import basic_credentials
from registrations.database import Database
from registrations.hints import REPLAY_TASK
from registrations.models import DeadLetter, Registration
from registrations.states import DeadLetterStatus

log = logging.getLogger(__name__)

# The Flower release whose task page this extension was written against (pyproject.toml pins it).
FLOWER_VERSION = "2.2.0"
# Where the panel goes: just before the task's details on Flower 2.2.0's task page.
PANEL_MARKER = '<section class="detail-card task-details-card"'
# The failure message of a dead-lettered step names its dead letter, and the console's page of it.
DEAD_LETTER_IN_MESSAGE = re.compile(r"dead-lettered as #(\d+)")
CONSOLE_PATH = re.compile(r"(?<![\w/\"'=])/ops/dead-letters/(\d+)\b")
TASK_ID = re.compile(r"[0-9a-fA-F-]{8,64}")
RERUN_ROUTE = "membersync-rerun"
# The message header `membersync.replay` takes its operator from (named in tasks.maintenance).
OPERATOR_HEADER = "membersync_operator"


@dataclass(frozen=True)
class LetterState:
    """What the database says now of the dead letter a failure names, and of its registration."""

    dead_letter_id: int
    status: str | None  # None: no such dead letter (deleted with its registration)
    registration_id: str | None = None
    registration_status: str | None = None

    @property
    def open(self) -> bool:
        return self.status == DeadLetterStatus.OPEN


def failed_dead_letter(task: Any) -> int | None:
    """The dead letter a failed `membersync.*` task names in its failure, else None."""
    return named_dead_letter(
        getattr(task, "name", None),
        getattr(task, "state", None),
        getattr(task, "exception", None),
        getattr(task, "result", None),
    )


def named_dead_letter(name: Any, state: Any, *texts: Any) -> int | None:
    """The dead letter a failed `membersync.*` task's failure texts name, else None."""
    if not str(name or "").startswith("membersync.") or state != "FAILURE":
        return None
    for text in texts:
        match = DEAD_LETTER_IN_MESSAGE.search(str(text or ""))
        if match:
            return int(match.group(1))
    return None


def mark_closed_failures(rows: list[dict[str, Any]], database: Database) -> None:
    """In Flower's task list rows: a failure whose dead letter is closed (replayed, resolved or
    discarded) shows as "FAILURE (replayed)" and so on, no longer as an open FAILURE."""
    named = {
        index: letter
        for index, row in enumerate(rows)
        if (
            letter := named_dead_letter(
                row.get("name"), row.get("state"), row.get("exception"), row.get("result")
            )
        )
        is not None
    }
    if not named:
        return
    with database.session() as session:
        rows_found = session.execute(
            select(DeadLetter.id, DeadLetter.status).where(DeadLetter.id.in_(set(named.values())))
        )
        statuses = {letter_id: status for letter_id, status in rows_found}
    for index, letter in named.items():
        status = statuses.get(letter)
        if status is not None and status != DeadLetterStatus.OPEN:
            rows[index]["state"] = f"FAILURE ({status})"


def letter_state(database: Database, dead_letter_id: int) -> LetterState:
    """The dead letter's status and its registration's, read now."""
    with database.session() as session:
        row = session.execute(
            select(DeadLetter.status, DeadLetter.registration_id, Registration.status)
            .outerjoin(Registration, Registration.id == DeadLetter.registration_id)
            .where(DeadLetter.id == dead_letter_id)
        ).first()
    if row is None:
        return LetterState(dead_letter_id, None)
    return LetterState(dead_letter_id, str(row[0]), row[1], row[2])


def link_console_paths(html: str, console: str) -> str:
    """Every `/ops/dead-letters/<id>` in the page's text as a link to that page of the console."""
    return CONSOLE_PATH.sub(
        lambda match: f'<a href="{console}/ops/dead-letters/{match.group(1)}">{match.group(0)}</a>', html
    )


def panel_html(handler: Any, task_id: str, state: LetterState, console: str, rerun: str | None) -> str:
    """The re-run panel of a failed task's page."""
    from tornado.escape import xhtml_escape

    letter = state.dead_letter_id
    href = f"{console}/ops/dead-letters/{letter}"
    link = f'<a href="{href}" id="membersync-console-link">dead letter #{letter}</a>'
    parts = ['<section class="detail-card" id="membersync-rerun" aria-label="Membersync">']
    if rerun:
        rerun_link = xhtml_escape(handler.reverse_url("task", rerun))
        parts.append(
            f'<p class="alert alert-info" id="membersync-rerun-queued">Re-run queued as task '
            f'<a href="{rerun_link}">{xhtml_escape(rerun)}</a>.</p>'
        )
    if state.status is None:
        parts.append(f"<p>Dead letter #{letter} no longer exists (its registration was deleted).</p>")
    elif state.open:
        action = xhtml_escape(handler.reverse_url(RERUN_ROUTE, task_id))
        parts.append(
            f'<p>This failure is <span class="badge text-bg-danger" id="membersync-letter-status">open</span>'
            f" as {link}. Fix its cause, then re-run it: <code>{REPLAY_TASK}</code> replays the "
            "registration's remaining steps.</p>"
            f'<form method="post" action="{action}">{handler.xsrf_form_html()}'
            '<button type="submit" class="btn btn-primary" id="membersync-rerun-button">Re-run</button>'
            "</form>"
        )
    else:
        registration = ""
        if state.registration_status:
            registration = (
                f" Registration <code>{xhtml_escape(state.registration_id or '')}</code> is "
                f'<span class="badge text-bg-secondary" id="membersync-registration-status">'
                f"{xhtml_escape(state.registration_status)}</span>."
            )
        parts.append(
            f"<p>This failure is closed: {link} is "
            '<span class="badge text-bg-success" id="membersync-letter-status">'
            f"{xhtml_escape(state.status)}</span>."
            f"{registration} Nothing is left to re-run here.</p>"
        )
    parts.append("</section>")
    return "".join(parts)


def current_operator(handler: Any) -> str:
    """The username of Flower's basic auth (already checked by `guard_flower_login`)."""
    given = basic_credentials(handler.request.headers.get("Authorization"))
    return given[0] if given else "flower"


def install(console_url: str) -> bool:
    """Add the re-run panel and its handler to Flower's routes (before Flower's app is built).

    `console_url` is the ops console's base (the web app's public URL). False, and nothing added,
    on a Flower release other than FLOWER_VERSION.
    """
    import flower
    from flower import urls
    from flower.utils.tasks import get_task_by_id
    from flower.views import BaseHandler
    from flower.views.tasks import TasksDataTable, TaskView
    from tornado import web
    from tornado.ioloop import IOLoop

    if flower.__version__ != FLOWER_VERSION:
        log.warning(
            "Flower %s is not the %s the re-run button was written for: Flower runs without it",
            flower.__version__,
            FLOWER_VERSION,
        )
        return False
    console = console_url.rstrip("/")

    class RerunTaskView(TaskView):
        """Flower's task page, with the re-run panel on a failed step's page."""

        membersync_panel: str | None = None

        @web.authenticated
        async def get(self, task_id: str) -> None:
            task = get_task_by_id(self.application.events, task_id)
            letter = failed_dead_letter(task) if task is not None else None
            if letter is not None:
                database = self.application.capp.membersync.database
                state = await IOLoop.current().run_in_executor(None, letter_state, database, letter)
                rerun = self.get_argument("rerun", None)
                rerun = rerun if rerun and TASK_ID.fullmatch(rerun) else None
                self.membersync_panel = panel_html(self, task_id, state, console, rerun)
            super().get(task_id)

        def finish(self, chunk: Any = None) -> Any:
            if isinstance(chunk, (bytes, str)) and self.get_status() == 200:
                html = chunk.decode() if isinstance(chunk, bytes) else chunk
                html = link_console_paths(html, console)
                if self.membersync_panel and PANEL_MARKER in html:
                    html = html.replace(PANEL_MARKER, self.membersync_panel + PANEL_MARKER, 1)
                chunk = html
            return super().finish(chunk)

    class RerunHandler(BaseHandler):
        """POST: apply `membersync.replay` to the dead letter a failed task names, as the operator."""

        def check_xsrf_cookie(self) -> None:
            # Flower's own check makes the same-origin checks but skips the token under basic auth
            # (a browser resends basic credentials on its own, so a form elsewhere could post here).
            super().check_xsrf_cookie()
            web.RequestHandler.check_xsrf_cookie(self)

        @web.authenticated
        async def post(self, task_id: str) -> None:
            task = get_task_by_id(self.application.events, task_id)
            letter = failed_dead_letter(task) if task is not None else None
            if letter is None:
                raise web.HTTPError(404, "not a failed membersync step that names a dead letter")
            operator = current_operator(self)
            capp = self.application.capp
            sent = await IOLoop.current().run_in_executor(
                None,
                # Who, as a header `membersync.replay` reads (tasks.maintenance.OPERATOR_HEADER).
                lambda: capp.send_task(REPLAY_TASK, args=[str(letter)], headers={OPERATOR_HEADER: operator}),
            )
            log.info("flower: %s re-ran dead letter #%s as task %s", operator, letter, sent.id)
            self.redirect(f"{self.reverse_url('task', task_id)}?rerun={sent.id}")

    class ClosedFailuresDataTable(TasksDataTable):
        """Flower's task list, with failures whose dead letter is closed marked so."""

        def write(self, chunk: Any) -> None:
            if isinstance(chunk, dict) and isinstance(chunk.get("data"), list):
                mark_closed_failures(chunk["data"], self.application.capp.membersync.database)
            super().write(chunk)

    routes = {
        ("task" if handler.name == "task" else "datatable"): index
        for index, handler in enumerate(urls.handlers)
        if isinstance(handler, web.url)
        and (handler.name == "task" or handler.handler_class is TasksDataTable)
    }
    if set(routes) != {"task", "datatable"}:
        log.warning("Flower's task routes are not as expected: Flower runs without the re-run button")
        return False
    task_route, table_route = urls.handlers[routes["task"]], urls.handlers[routes["datatable"]]
    urls.handlers[routes["task"]] = web.url(task_route.regex.pattern, RerunTaskView, name="task")
    urls.handlers[routes["datatable"]] = web.url(table_route.regex.pattern, ClosedFailuresDataTable)
    # Before Flower's catch-all 404 (the last route).
    urls.handlers.insert(
        len(urls.handlers) - 1, web.url(r"/membersync/rerun/(.+)", RerunHandler, name=RERUN_ROUTE)
    )
    return True
