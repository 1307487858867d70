"""Named operator accounts: several people, each with their own password, so that the audit trail
says who did what (the shared OPS_USERNAME / OPS_PASSWORD login keeps working beside them).

OPS_USERS holds `name:hash` pairs separated by commas, OPS_USERS_FILE a file of `name:hash` lines
(blank lines and `#` comments ignored); both may be set, and a name may appear once. A hash is
werkzeug's salted scrypt (`membersync ops-user hash NAME` prints a line to paste): the environment
and the file never hold a password. Read once as a process starts; a change takes a restart.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from types import MappingProxyType

from werkzeug.security import check_password_hash, generate_password_hash

from config.settings import ConfigError, Settings

# A name as the audit trail shows it: letters, digits and . _ @ - (no ':' or ',', the separators).
_NAME = re.compile(r"[A-Za-z0-9._@-]{1,64}")
# werkzeug's hash methods this accepts (a plain-text "password" pasted as the hash is refused).
_HASH_PREFIXES = ("scrypt:", "pbkdf2:")


@cache
def _unknown_hash() -> str:
    return generate_password_hash("membersync: no such operator", method="scrypt")


def hash_password(password: str) -> str:
    """The hash to put beside an operator's name (salted scrypt)."""
    return generate_password_hash(password, method="scrypt")


def parse_operators(text: str, *, source: str) -> dict[str, str]:
    """`name:hash` entries (comma- or line-separated) as {name: hash}; ConfigError names `source`."""
    operators: dict[str, str] = {}
    for raw in re.split(r"[,\n]", text):
        entry = raw.strip()
        if not entry or entry.startswith("#"):
            continue
        name, colon, hashed = entry.partition(":")
        name, hashed = name.strip(), hashed.strip()
        if not colon or not _NAME.fullmatch(name):
            raise ConfigError(
                f"{source}: expected name:hash entries (names of letters, digits and . _ @ -); "
                "make a hash with `membersync ops-user hash NAME`"
            )
        if not hashed.startswith(_HASH_PREFIXES):
            raise ConfigError(
                f"{source}: the entry of {name!r} is not a password hash; make one with "
                "`membersync ops-user hash NAME` (never put a password there)"
            )
        if name in operators:
            raise ConfigError(f"{source}: {name!r} appears twice")
        operators[name] = hashed
    return operators


def load_operators(settings: Settings) -> Mapping[str, str]:
    """Every named operator from OPS_USERS and OPS_USERS_FILE (empty when neither is set)."""
    operators = parse_operators(settings.ops_users.value, source="OPS_USERS")
    if settings.ops_users_file:
        path = Path(settings.ops_users_file)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as error:
            raise ConfigError(f"OPS_USERS_FILE={path}: cannot be read ({error.strerror})") from None
        for name, hashed in parse_operators(text, source=f"OPS_USERS_FILE={path}").items():
            if name in operators:
                raise ConfigError(f"{name!r} is in both OPS_USERS and OPS_USERS_FILE")
            operators[name] = hashed
    return MappingProxyType(operators)


def operator_matches(operators: Mapping[str, str], username: str, password: str) -> bool:
    """True when `username` is a named operator and `password` is theirs; as slow for an unknown name."""
    if not operators:
        return False  # no named operators: nothing to check, nothing to hide
    hashed = operators.get(username)
    # An unknown name is checked against a hash too: the time taken does not tell whether it exists.
    matches = check_password_hash(hashed or _unknown_hash(), password)
    return matches and hashed is not None


class RememberedOperators:
    """`operator_matches` for a caller that checks the same pair on every request (Flower's basic
    auth: a page makes many): a pair that matched is remembered in this process for a few minutes,
    under a keyed digest (never the password), so scrypt runs once per operator, not per request."""

    REMEMBER_SECONDS = 300.0

    def __init__(self, operators: Mapping[str, str]) -> None:
        self.operators = operators
        self._key = secrets.token_bytes(32)
        self._matched: dict[bytes, float] = {}

    def matches(self, username: str, password: str) -> bool:
        digest = hmac.new(
            self._key, f"{username}\0{password}".encode("utf-8", "surrogatepass"), hashlib.sha256
        ).digest()
        now = time.monotonic()
        if self._matched.get(digest, 0.0) > now:
            return True
        if not operator_matches(self.operators, username, password):
            return False
        self._matched = {key: until for key, until in self._matched.items() if until > now}
        self._matched[digest] = now + self.REMEMBER_SECONDS
        return True
