"""`membersync check`: each enabled vendor's credentials and scopes, proven by one cheap read.

The runner lives in `connectors.checks` (the console's sync health and `/readyz` use it too, and the
web app never imports `cli`); the command (cli/main.py) prints what it returns.
"""

from __future__ import annotations

from connectors.checks import FAILED, OK, SKIPPED, Outcome, check_all, check_one, summary

__all__ = ["FAILED", "OK", "SKIPPED", "Outcome", "check_all", "check_one", "summary"]
