"""The text for people the CLI prints, and its progress line on stderr."""

from __future__ import annotations

import io

from cli.output import Progress, table
from cli.views import dead_letters_text, replay_text


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_table_aligns_its_columns_and_shows_nothing_as_a_dash() -> None:
    text = table(["#", "system"], [[7, "smaregi"], [12, None]])
    assert text.splitlines() == ["#   system", "--  -------", "7   smaregi", "12  -"]


def test_progress_in_a_log_is_a_line_every_n_items_and_at_the_end() -> None:
    out = io.StringIO()
    progress = Progress("replaying", 25, out=out, every=10)
    for _ in range(25):
        progress.advance()
    progress.finish()
    lines = out.getvalue().splitlines()
    assert [line.split(" (")[0] for line in lines] == [
        "replaying [############..................] 10/25",
        "replaying [########################......] 20/25",
        "replaying [##############################] 25/25",
    ]


def test_progress_on_a_terminal_is_redrawn_in_place_and_counts_without_a_total() -> None:
    out = Terminal()
    progress = Progress("members read", out=out, every=0)
    progress.update(1000)
    progress.finish()
    drawn = out.getvalue()
    assert drawn.startswith("\r\033[Kmembers read: 1,000") and drawn.endswith("\n") and drawn.count("\n") == 1


def test_views_say_what_happened_in_words() -> None:
    assert dead_letters_text([], "open") == "No open dead letters."
    assert dead_letters_text([], "all") == "No dead letters."
    replayed = {
        "replayed": [{"registration_id": "r-1", "systems": ["smaregi", "hubspot"]}],
        "count": 1,
        "not_published": [{"registration_id": "r-2", "systems": [], "change_id": 4}],
    }
    assert replay_text(replayed).splitlines()[:4] == [
        "Replayed 1:",
        "  registration r-1: smaregi, hubspot",
        "Reopened but NOT published (1):",
        "  registration r-2 (change 4)",
    ]
