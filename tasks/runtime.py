"""What a task needs at run time (settings and database), built once per process."""

from __future__ import annotations

from dataclasses import dataclass

from config.settings import Settings
from tasks.database import Database


@dataclass
class Runtime:
    """Process-wide services shared by every task of one Celery app."""

    settings: Settings
    database: Database
