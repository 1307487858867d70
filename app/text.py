"""Which characters a person's text may hold, for every text field of the API, the form and the console.

Refused, each with its own reason: unpaired surrogates (not Unicode at all: they cannot be encoded,
stored or sent), control characters (C0, DEL and C1, U+0085 and U+009B among them: they break mail
headers, logs and CSV exports), format characters (Unicode category Cf: bidirectional controls that
make text read backwards in the console, zero-width characters that make two names look alike, the
byte-order mark), the line and paragraph separators U+2028/U+2029, and U+FFFD and the
noncharacters (what a broken client leaves of bytes that were not UTF-8). A registrant never types
any of them on purpose, and each would reach the three vendors, the mail and the console.

The check is made on what was sent, before any normalisation: NFKC and trimming would quietly drop
some of these (a trailing U+0085 is whitespace to Python) and let the rest through.
"""

from __future__ import annotations

import unicodedata

SURROGATE = "Must not contain unpaired surrogates (text that is not valid Unicode)."
CONTROL = "Must not contain control characters."
FORMAT = "Must not contain invisible formatting characters (such as bidirectional or zero-width marks)."
SEPARATOR = "Must not contain line or paragraph separators."
GARBLED = "Must not contain replacement characters or noncharacters (text garbled on the way)."

# The messages above, each reason once: app/i18n.py words every one of them in both languages.
MESSAGES = (SURROGATE, CONTROL, FORMAT, SEPARATOR, GARBLED)

_BY_CATEGORY = {"Cs": SURROGATE, "Cc": CONTROL, "Cf": FORMAT, "Zl": SEPARATOR, "Zp": SEPARATOR}


def _is_noncharacter(code: int) -> bool:
    # U+FDD0..U+FDEF and the last two code points of every plane (U+FFFE, U+FFFF, U+1FFFE, ...).
    return 0xFDD0 <= code <= 0xFDEF or (code & 0xFFFE) == 0xFFFE


def character_problem(character: str) -> str | None:
    """Why `character` may not appear in a text field, or None when it may."""
    reason = _BY_CATEGORY.get(unicodedata.category(character))
    if reason is not None:
        return reason
    code = ord(character)
    if code == 0xFFFD or _is_noncharacter(code):
        return GARBLED
    return None


def text_problem(value: str) -> str | None:
    """Why `value` is refused (the first refused character's reason), or None when it is fine."""
    if value.isascii():
        # The common case: only the C0 controls and DEL can be wrong in ASCII.
        return CONTROL if any(ch < " " or ch == "\x7f" for ch in value) else None
    for character in value:
        reason = character_problem(character)
        if reason is not None:
            return reason
    return None
