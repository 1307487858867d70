"""How `membersync` commands print: text for a person by default, JSON for a script with `--json`.

`--json` is taken after any command that has it and after `membersync` itself (`membersync --json dlq
list`); both set one flag in the shared click context. Commands whose JSON the contract fixes
(`status`, `check`, `reconcile`, `bench`) keep it on stdout and write their text for people to stderr.
Progress goes to stderr too, so stdout stays what a script reads.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TextIO, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])
_JSON = "membersync.json"


def _remember(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        ctx.meta[_JSON] = True


def json_option(function: F) -> F:
    """The `--json` flag (not passed to the command: read it with `wants_json()`)."""
    return click.option(
        "--json",
        "as_json",
        is_flag=True,
        expose_value=False,
        callback=_remember,
        help="Print JSON (for scripts) instead of text for people.",
    )(function)


def wants_json() -> bool:
    """Whether `--json` was given to this command or to `membersync`."""
    context = click.get_current_context(silent=True)
    return bool(context is not None and context.meta.get(_JSON))


def dump(document: Any) -> str:
    """A document as the JSON the commands print (UTF-8 as it is, no \\u escapes)."""
    return json.dumps(document, indent=2, ensure_ascii=False, default=str)


def emit(document: Any, text: Callable[[Any], str]) -> None:
    """`document` as JSON with `--json`, else `text(document)`, on stdout."""
    click.echo(dump(document) if wants_json() else text(document))


def emit_json_and_text(document: Any, text: Callable[[Any], str]) -> None:
    """For a command whose stdout the contract fixes as JSON: the JSON on stdout, and (unless
    `--json`) the text for people on stderr, before it."""
    if not wants_json():
        click.echo(text(document), err=True)
    click.echo(dump(document))


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """Rows under their headers in aligned columns (None shows as '-')."""
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [max([len(header), *(len(row[index]) for row in cells)]) for index, header in enumerate(headers)]
    lines = [headers, ["-" * width for width in widths], *cells]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
                     for line in lines)  # fmt: skip


def fields(pairs: Iterable[tuple[str, Any]]) -> str:
    """`label: value` lines, the labels aligned."""
    listed = [(label, _cell(value)) for label, value in pairs]
    width = max((len(label) for label, _ in listed), default=0)
    return "\n".join(f"{label + ':':<{width + 1}} {value}" for label, value in listed)


def _cell(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value).replace("\n", " ")


class Progress:
    """A progress line on stderr: a bar when the total is known, a running count when it is not.

    Redrawn in place on a terminal (at most ten times a second); elsewhere (a log, a pipe) one line
    every `every` items and at the end, so a cron job's output stays short. Quiet with `--json`
    unless `always`.
    """

    def __init__(
        self, label: str, total: int | None = None, *, out: TextIO | None = None, every: int = 100
    ) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self.out = out or sys.stderr
        self.every = every
        self.terminal = bool(getattr(self.out, "isatty", lambda: False)())
        self._drawn = 0.0
        self._started = time.monotonic()

    def advance(self, by: int = 1, *, label: str | None = None) -> None:
        self.done += by
        self._draw(label)

    def update(self, done: int, *, label: str | None = None, total: int | None = None) -> None:
        self.done = done
        if total is not None:
            self.total = total
        self._draw(label)

    def finish(self) -> None:
        self._draw(None, final=True)
        if self.terminal:
            self.out.write("\n")
            self.out.flush()

    def line(self) -> str:
        seconds = time.monotonic() - self._started
        if self.total:
            width = 30
            filled = width * min(self.done, self.total) // self.total
            bar = "#" * filled + "." * (width - filled)
            return f"{self.label} [{bar}] {self.done:,}/{self.total:,} ({seconds:.0f} s)"
        return f"{self.label}: {self.done:,} ({seconds:.0f} s)"

    def _draw(self, label: str | None, *, final: bool = False) -> None:
        if label is not None:
            self.label = label
        now = time.monotonic()
        if self.terminal:
            if final or now - self._drawn >= 0.1:
                self._drawn = now
                self.out.write("\r\033[K" + self.line())
                self.out.flush()
        elif final or (self.every and self.done % self.every == 0 and self.done):
            self.out.write(self.line() + "\n")
            self.out.flush()
