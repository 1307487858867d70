"""Which passwords and keys are too weak to run production with.

Not a password-strength meter: a floor that refuses what an attacker tries first. The length alone
rules out most of the common-password lists (their entries are short), so the lists below only
need the long ones, plus the shapes people use to reach a length rule: a word repeated, a word
with digits or symbols around it, a keyboard run, one character many times.
"""

from __future__ import annotations

import re

MIN_PASSWORD_LENGTH = 12
MIN_KEY_LENGTH = 32

# Common passwords of 12 characters or more (shorter ones are refused by length), lower case.
COMMON_PASSWORDS = frozenset(
    {
        "123456789012",
        "1234567890123",
        "12345678901234",
        "123123123123",
        "111111111111",
        "000000000000",
        "abc123abc123",
        "1q2w3e4r5t6y",
        "1qaz2wsx3edc",
        "zaq12wsxcde3",
        "qazwsxedcrfv",
        "qwertyuiop12",
        "qwerty123456",
        "qwertyuiopasdfghjkl",
        "asdfghjkl123",
        "password1234",
        "password12345",
        "password123456",
        "passwordpassword",
        "p@ssw0rd1234",
        "passw0rd1234",
        "iloveyou1234",
        "letmein12345",
        "welcome12345",
        "changeme1234",
        "administrator",
        "administrator1",
        "trustno1trustno1",
        "mysecretpassword",
        "supersecretpassword",
        "thisisapassword",
        "thisismypassword",
        "correcthorsebatterystaple",
        "correct horse battery staple",
    }
)

# Words that, alone or repeated, with digits and symbols around them, make a guessable password.
GUESSABLE_WORDS = frozenset(
    {
        "ops",
        "admin",
        "administrator",
        "password",
        "passwd",
        "pass",
        "root",
        "user",
        "login",
        "secret",
        "changeme",
        "letmein",
        "welcome",
        "qwerty",
        "membersync",
        "flower",
        "metrics",
        "test",
        "guest",
        "default",
    }
)

# Known default or example keys, lower case; the dev-mode keys are public (they are in this code).
KNOWN_DEFAULT_KEYS = frozenset(
    {
        "membersync-dev-only-secret",
        "membersync-dev-only-member-code-key",
        "changeme",
        "change-me",
        "change_me",
        "please-change-me",
        "secret",
        "secret-key",
        "secret_key",
        "secretkey",
        "your-secret-key",
        "your_secret_key",
        "mysecretkey",
        "supersecret",
        "development",
        "dev",
        "test",
        "testing",
        "insecure",
        "notasecret",
        "keyboard cat",
        "default",
    }
)

# Keyboard and counting runs; a password or key that is a piece of one (repeated) is guessable.
RUNS = ("1234567890", "qwertyuiop", "asdfghjkl", "zxcvbnm", "abcdefghijklmnopqrstuvwxyz")
# What people type for letters to pass a "use a digit" rule.
LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s"})


def password_weakness(password: str, username: str | None) -> str | None:
    """Why `password` is too weak for the ops login (None: acceptable)."""
    if len(password.strip()) < MIN_PASSWORD_LENGTH:
        return f"is shorter than {MIN_PASSWORD_LENGTH} characters"
    lowered = password.lower()
    if lowered in COMMON_PASSWORDS or _is_a_run(lowered):
        return "is a common password"
    if len(set(lowered)) < 5:
        return "repeats too few different characters"
    words = GUESSABLE_WORDS | ({username.strip().lower()} if username and username.strip() else set())
    if _is_words(lowered, words):
        return "is the username or a variant of ops/admin/password"
    return None


def key_weakness(key: str) -> str | None:
    """Why `key` is too weak to sign sessions or key member numbers (None: acceptable)."""
    if len(key.strip()) < MIN_KEY_LENGTH:
        return f"is shorter than {MIN_KEY_LENGTH} characters"
    lowered = key.lower()
    if _is_words(lowered, KNOWN_DEFAULT_KEYS | GUESSABLE_WORDS) or any(
        default in lowered for default in ("membersync-dev-only", "changeme", "change-me", "change_me")
    ):
        return "is a known default"
    # A random 32-character hex key (the shortest `openssl rand -hex 16` gives) shows fewer than 8
    # different characters about once in 30 million; 10 refused about one in 10,000 genuine keys.
    if _is_a_run(lowered) or len(set(lowered)) < 8 or _repeats(lowered):
        return "is not random (too few different characters)"
    return None


def _repeats(text: str) -> bool:
    """`text` is a shorter piece said again and again ("secret-key-secret-key-...")."""
    return any(text[period:] == text[:-period] for period in range(1, len(text) // 2 + 1))


def _is_words(text: str, words: frozenset[str] | set[str]) -> bool:
    """`text` is one of `words` (or several of them in a row), with digits or symbols around or
    between them and the usual letter-for-digit swaps ("P@ssw0rd2024!", "ops-ops-ops-ops")."""
    stripped = re.sub(r"^[^a-z]+|[^a-z]+$", "", text)
    core = re.sub(r"[^a-z]", "", stripped.translate(LEET))
    if not core:
        return False  # digits and symbols only: judged by the other rules
    letters = sorted(
        (re.escape(re.sub(r"[^a-z]", "", w)) for w in words if re.sub(r"[^a-z]", "", w)), key=len
    )
    return bool(letters) and re.fullmatch(f"(?:{'|'.join(reversed(letters))})+", core) is not None


def _is_a_run(text: str) -> bool:
    """`text` (letters and digits only) is a piece of a keyboard or counting run, or of one repeated."""
    compact = re.sub(r"[^a-z0-9]", "", text)
    # "qwertyuiop123": a run with digits after it is a run too.
    letters = re.sub(r"^[0-9]+|[0-9]+$", "", compact)
    pieces = {compact} | ({letters} if len(letters) >= 6 else set())
    return bool(compact) and any(
        piece in run * (len(piece) // len(run) + 2) or piece in run[::-1] * (len(piece) // len(run) + 2)
        for piece in pieces
        for run in RUNS
    )
