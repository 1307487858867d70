"""The one rule for what an e-mail address is: `canonical_email`.

Every place that stores, compares, hashes or looks up an address uses this function (the intake, the
ops console's search, the per-person lock, the member number, the Smaregi member directory, the
connectors and their fakes), so two spellings of one mailbox are one person everywhere. It lives in
`config` because that is the bottom layer: connectors and registrations may both import it.
"""

from __future__ import annotations

import unicodedata


def canonical_email(address: str) -> str:
    """`address` as Membersync stores and compares it: NFKC, trimmed, lower case, NFKC again.

    Why NFKC: addresses reach us typed on Japanese keyboards and tills, where full-width letters
    (ｈａｎａｋｏ＠ｅｘａｍｐｌｅ．ｃｏｍ) and ideographic spaces are common. NFKC folds them into the
    ASCII a mail server understands, and every other text field of the intake is NFKC-normalised
    too. The second NFKC makes the rule idempotent: lower-casing can leave a string that is no
    longer normalised (U+0130 followed by a combining mark becomes "i", the mark, U+0307, in
    another order than NFKC gives), and a canonical form must not change when applied twice.

    Why lower case, local part included: RFC 5321 lets a server treat the local part as case
    sensitive, but no provider we reach does; Shopify and HubSpot both match addresses without
    regard to case, and the owner of `Hanako@Example.com` is the owner of `hanako@example.com`. We
    lower-case rather than case-fold: case folding maps "ß" to "ss", which would merge two distinct
    mailboxes.

    Domains: lower-cased only, no IDNA (punycode) conversion. The intake accepts only ASCII
    letter-digit-hyphen domain names (an internationalised domain is typed in its `xn--` form) and
    an unquoted ASCII local part, so every address we accept is ASCII, and for ASCII this rule is
    plain trim-and-lower-case: member numbers computed from addresses that were already in that
    form do not change. Addresses we only read (typed at a Smaregi till, say) may be non-ASCII;
    they are canonicalised by the same rule so they compare equal to what the intake stored, and a
    conversion that can fail (IDNA refuses many strings) is kept out of a function that must
    always answer.

    Lower-casing can lengthen a string ("İ" becomes two code points, three UTF-8 bytes): any limit
    is checked on the result, never on what was typed.
    """
    folded = unicodedata.normalize("NFKC", address).strip().lower()
    return unicodedata.normalize("NFKC", folded)
